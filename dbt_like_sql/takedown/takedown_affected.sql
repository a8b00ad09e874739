-- Per subset (strategy) whose decisions hold a removed uid: how many removed uids it keeps and
-- how many it drops, and up to $examples kept ones (the smallest) as examples. 'decisions' is
-- every subset's decisions.parquet read with its file name; the strategy is the name of the
-- file's partition folder, unquoted (the lake quotes partition keys as URL components).
WITH decided AS (
    SELECT
        url_decode(regexp_extract(d.filename, '([^/]+)/[^/]+$', 1)) AS strategy,
        d.uid,
        coalesce(d.keep, false) AS keep
    FROM {{ source('decisions') }} d
    SEMI JOIN {{ source('removed') }} r ON r.uid = d.uid
)
SELECT
    strategy,
    count(DISTINCT uid) FILTER (WHERE keep) AS kept,
    count(DISTINCT uid) FILTER (WHERE NOT keep) AS dropped,
    coalesce(list_sort(list(DISTINCT uid) FILTER (WHERE keep))[1:$examples], []) AS examples
FROM decided
GROUP BY strategy
