-- Metadata mode: the url_dedup-kept rows to download, one row per uid in shard and row order,
-- with the strategies whose subsets keep it. $everything: every kept row (strategies may then
-- be empty); otherwise only rows at least one chosen strategy keeps.
SELECT
    d.shard,
    d.row_idx,
    d.uid,
    coalesce(
        list(s.strategy ORDER BY s.strategy) FILTER (WHERE s.strategy IS NOT NULL), []
    ) AS strategies
FROM {{ source('decisions') }} d
LEFT JOIN {{ source('subset_uids') }} s ON s.uid = d.uid
WHERE d.keep
GROUP BY d.shard, d.row_idx, d.uid
HAVING $everything OR count(s.strategy) > 0
ORDER BY d.shard, d.row_idx
