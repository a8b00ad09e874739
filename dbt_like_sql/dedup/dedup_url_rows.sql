-- One URL bucket group's share of the url rule: every registry row of the group (the by_url
-- files its shards' records name) that shares a normalized URL with a row of the decided shards
-- in that group, those rows included. Every occurrence of a URL lives in one group, so the groups
-- are joined independently (by any worker) and their rows together are all the rows that share
-- a URL with the decided shards. Keys come back as 128-bit integers for the decisions.
SELECT
    u.shard,
    u.shard_seq,
    u.row_idx,
    (u.url_hi::UHUGEINT << 64) | u.url_lo AS url_key,
    (u.uid_hi::UHUGEINT << 64) | u.uid_lo AS uid_key,
    u.uid_hi,
    u.uid_lo,
    u.uid_group
FROM {{ source('url_bucket') }} u
SEMI JOIN {{ source('decided_bucket') }} d USING (url_hi, url_lo)
