-- The dedup keys of one shard's valid rows: what the URL registry stores.
SELECT shard, row_idx, url_key, uid_key
FROM {{ ref('stg_pool_rows') }}
WHERE reason IS NULL
