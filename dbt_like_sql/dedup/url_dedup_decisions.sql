-- One row per registered row of the shards being decided ($shards): kept, or dropped with the
-- uid it duplicates. Pool order decides: the row with the smallest (shard_seq, row_idx) wins.
--   duplicate_uid: an earlier shard already holds this uid (within a shard uids are unique:
--                  staging quarantines repeats);
--   duplicate_url: an earlier row with the same normalized URL is its uid's first occurrence.
-- Only rows of shards at or before a decided row can beat it, so a shard's decisions do not
-- depend on shards that came later or on the order in which shards were materialized.
-- Inputs, gathered one bucket group at a time (poolsieve/pool/dedup.py): url_rows, every
-- registry row sharing a URL with the decided rows (dedup_url_rows of each URL group, the decided
-- rows included); uid_repeats, those rows' uids that more than one shard holds, with the first
-- shard holding each (dedup_uid_repeats of each uid group).
-- Speed: uid_repeats keeps only uids seen more than once and url_winner only URLs held by more
-- than one candidate, so the joins back to the batch build on small tables.
WITH url_rows AS (
    SELECT shard, shard_seq, row_idx, url_key, uid_key, uid_hi, uid_lo
    FROM {{ source('url_rows') }}
),
batch AS (
    SELECT * FROM url_rows WHERE list_contains($shards, shard)
),
uid_repeats AS (
    SELECT uid_hi, uid_lo, first_seq FROM {{ source('uid_repeats') }}
),
url_candidates AS (  -- url_rows whose uid is a first occurrence
    SELECT u.*
    FROM url_rows u
    LEFT JOIN uid_repeats r ON r.uid_hi = u.uid_hi AND r.uid_lo = u.uid_lo
    WHERE r.first_seq IS NULL OR r.first_seq = u.shard_seq
),
url_winner AS (  -- URLs held by more than one candidate row, with the first such row
    SELECT
        url_key,
        arg_min(uid_key, (shard_seq::BIGINT << 40) + row_idx) AS winner_uid_key,
        min((shard_seq::BIGINT << 40) + row_idx) AS winner_order
    FROM url_candidates
    GROUP BY url_key
    HAVING count(*) > 1
),
decided AS (
    SELECT
        b.shard,
        b.row_idx,
        b.uid_key,
        CASE
            WHEN r.first_seq < b.shard_seq THEN 'duplicate_uid'
            WHEN w.winner_order < (b.shard_seq::BIGINT << 40) + b.row_idx THEN 'duplicate_url'
        END AS reason,
        CASE
            WHEN r.first_seq < b.shard_seq THEN b.uid_key
            WHEN w.winner_order < (b.shard_seq::BIGINT << 40) + b.row_idx THEN w.winner_uid_key
        END AS duplicate_of_key
    FROM batch b
    LEFT JOIN uid_repeats r ON r.uid_hi = b.uid_hi AND r.uid_lo = b.uid_lo
    LEFT JOIN url_winner w ON w.url_key = b.url_key
)
SELECT
    shard,
    row_idx,
    lower(lpad(to_hex(uid_key), 32, '0')) AS uid,
    reason IS NULL AS keep,
    reason,
    lower(lpad(to_hex(duplicate_of_key), 32, '0')) AS duplicate_of
FROM decided
