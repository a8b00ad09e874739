-- clip_score_threshold (DataComp's clip_score_b32_25): keep a score >= $min_score; a row without
-- a score (NULL or NaN) is dropped. $score_column names the score: clip_score (poolsieve's
-- scorer), clip_b32_score or clip_l14_score (the pool's precomputed scores).
WITH scored AS (
    SELECT uid, score_of($score_column, clip_score, clip_b32_score, clip_l14_score) AS score
    FROM {{ source('pool_features') }}
)
SELECT
    uid,
    CASE
        WHEN score IS NULL THEN 'no_clip_score'
        WHEN score < $min_score THEN 'clip_score_below_threshold'
    END AS reason
FROM scored
