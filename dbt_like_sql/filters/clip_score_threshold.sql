-- clip_score_threshold (DataComp's clip_score_b32_25): keep CLIP score >= $min_score.
SELECT
    uid,
    CASE
        WHEN clip_score < $min_score THEN 'clip_score_below_threshold'
    END AS reason
FROM {{ source('pool_features') }}
