-- One strategy's decision per pool uid. A row that can never be trained on
-- (pool_features.ineligible_reason: URL duplicate, failed download, not embedded, eval
-- near-duplicate) is dropped with that reason by every strategy; otherwise the filter's own
-- reason applies (NULL: kept). Filters therefore state only their own rule.
SELECT
    p.uid,
    coalesce(p.ineligible_reason, f.reason) IS NULL AS keep,
    coalesce(p.ineligible_reason, f.reason) AS reason
FROM {{ source('pool_features') }} p
JOIN {{ source('filter') }} f ON f.uid = p.uid
