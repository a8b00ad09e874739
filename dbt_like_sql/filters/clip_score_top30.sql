-- clip_score_top30 (DataComp's CLIP-score filter): keep a score >= the global threshold, the
-- value at index int($fraction * N) of the N scores sorted descending, N = every pool row that
-- has a score (ineligible rows too: DataComp takes it over its whole pool). Ties at the
-- threshold are all kept; when that index is past the end, every scored row is kept. A row
-- without a score (NULL or NaN) is dropped (DataComp's `score >= threshold` is False for NaN).
-- $score_column names the score: clip_score (poolsieve's scorer), clip_b32_score or
-- clip_l14_score (the pool's precomputed OpenAI B/32 and L/14 scores).
WITH scored AS (
    SELECT uid, score_of($score_column, clip_score, clip_b32_score, clip_l14_score) AS score
    FROM {{ source('pool_features') }}
),
ranked AS (
    SELECT score, row_number() OVER (ORDER BY score DESC) - 1 AS idx
    FROM scored
    WHERE score IS NOT NULL
),
threshold AS (
    SELECT max(score) AS value
    FROM ranked
    WHERE idx = (SELECT floor($fraction * count(*))::BIGINT FROM ranked)
)
SELECT
    s.uid,
    CASE
        WHEN s.score IS NULL THEN 'no_clip_score'
        WHEN s.score < t.value THEN 'clip_score_below_top_fraction'
    END AS reason
FROM scored s
CROSS JOIN threshold t
