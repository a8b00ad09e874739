-- One uid bucket group's share of the uid rule ($group): of the uids of the rows that share a URL
-- with the decided shards (dedup_url_rows of every URL group, the decided rows included) that fall
-- in this group, those held by more than one registry row (the by_uid files of the group), with
-- the first shard holding each. A uid lives in one group, so the groups are joined independently.
SELECT
    u.uid_hi,
    u.uid_lo,
    min(u.shard_seq) AS first_seq
FROM {{ source('uid_bucket') }} u
SEMI JOIN (
    SELECT uid_hi, uid_lo FROM {{ source('url_rows') }} WHERE uid_group = $group::USMALLINT
) l USING (uid_hi, uid_lo)
GROUP BY u.uid_hi, u.uid_lo
HAVING count(*) > 1
