-- laion (LAION-2B's rule, as DataComp ran it): English caption and a score >= $min_score.
-- $language_column names the language: language (the configured detector) or language_cld3
-- (gcld3, LAION's). $score_column names the score as in clip_score_threshold. A row without a
-- score (NULL or NaN) is dropped.
WITH scored AS (
    SELECT
        uid,
        language_of($language_column, language, language_cld3) AS lang,
        score_of($score_column, clip_score, clip_b32_score, clip_l14_score) AS score
    FROM {{ source('pool_features') }}
)
SELECT
    uid,
    CASE
        WHEN lang IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN score IS NULL THEN 'no_clip_score'
        WHEN score < $min_score THEN 'clip_score_below_threshold'
    END AS reason
FROM scored
