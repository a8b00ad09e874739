-- laion (LAION-2B's rule, as DataComp ran it): English caption and CLIP score >= $min_score.
SELECT
    uid,
    CASE
        WHEN language IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN clip_score < $min_score THEN 'clip_score_below_threshold'
    END AS reason
FROM {{ source('pool_features') }}
