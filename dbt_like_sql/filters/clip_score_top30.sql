-- clip_score_top30 (DataComp's CLIP-score filter): keep a score >= the global threshold, the
-- value at index int($fraction * N) of the N eligible scores sorted descending (ties at the
-- threshold are all kept; when that index is past the end, every eligible row is kept).
WITH eligible AS (
    SELECT clip_score FROM {{ source('pool_features') }} WHERE ineligible_reason IS NULL
),
ranked AS (
    SELECT clip_score, row_number() OVER (ORDER BY clip_score DESC) - 1 AS idx FROM eligible
),
threshold AS (
    SELECT max(clip_score) AS value
    FROM ranked
    WHERE idx = (SELECT floor($fraction * count(*))::BIGINT FROM eligible)
)
SELECT
    f.uid,
    CASE WHEN f.clip_score < t.value THEN 'clip_score_below_top_fraction' END AS reason
FROM {{ source('pool_features') }} f
CROSS JOIN threshold t
