-- One shard's URL registry entries, before they are split into its bucket files
-- (poolsieve/pool/registry.py): its position in pool order, each row's 128-bit keys as two
-- 64-bit halves (parquet has no 128-bit integer: DuckDB writes UHUGEINT as DOUBLE, losing bits)
-- and the bucket group of each key, out of $partitions (a power of two):
--   url_group: the 10-bit bucket (top 10 bits of url_key) divided into $partitions groups, so
--              every occurrence of a URL lives in one group (the url rule joins per group);
--   uid_group: the low bits of uid_key (the uid rule joins per group; low bits spread uids that
--              are small numbers too). by_url files carry it: the one place it is computed.
SELECT
    $shard AS shard,
    $shard_seq::INTEGER AS shard_seq,
    row_idx,
    (url_key >> 64)::UBIGINT AS url_hi,
    (url_key & 18446744073709551615::UHUGEINT)::UBIGINT AS url_lo,
    (uid_key >> 64)::UBIGINT AS uid_hi,
    (uid_key & 18446744073709551615::UHUGEINT)::UBIGINT AS uid_lo,
    ((url_key >> 118)::USMALLINT // (1024 // $partitions::USMALLINT))::USMALLINT AS url_group,
    (uid_key % $partitions::USMALLINT)::USMALLINT AS uid_group
FROM {{ source('shard_keys') }}
