-- clip_score_threshold (DataComp's clip_score_b32_25): keep CLIP score >= $min_score.
SELECT
    uid,
    reason IS NULL AS keep,
    reason
FROM (
    SELECT
        uid,
        CASE
            WHEN ineligible_reason IS NOT NULL THEN ineligible_reason
            WHEN clip_score < $min_score THEN 'clip_score_below_threshold'
        END AS reason
    FROM {{ source('pool_features') }}
)
