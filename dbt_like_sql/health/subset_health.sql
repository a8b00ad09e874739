-- Each strategy's share of its kept rows still downloadable, measured on the rows the latest
-- pool_health check of each shard re-fetched (a sample: checked says how many). Still
-- downloadable: the same bytes (alive) or the same picture in other bytes (reencoded);
-- same_bytes: only those whose sha256 still matches.
SELECT
    d.strategy,
    count(*) AS checked,
    count(*) FILTER (WHERE c.outcome IN ('alive', 'reencoded')) AS downloadable,
    count(*) FILTER (WHERE c.outcome = 'alive') AS same_bytes,
    count(*) FILTER (WHERE c.outcome IN ('alive', 'reencoded')) / count(*) AS downloadable_share,
    count(*) FILTER (WHERE c.outcome = 'alive') / count(*) AS same_bytes_share,
    max(c.checked_at) AS checked_at
FROM {{ source('subset_decisions') }} d
JOIN {{ source('health_checks') }} c ON c.uid = d.uid
WHERE d.keep
GROUP BY d.strategy
ORDER BY d.strategy
