-- One row per row of one source shard: its verdict - the (possibly derived) uid, the normalized
-- URL and both dedup keys, and the first validation failure (reason NULL = the row is valid).
-- Narrow on purpose: the wide columns (caption, sizes, boxes) stream from the source file when
-- pool_shard_rows / pool_shard_quarantine are written, instead of being copied here.
WITH src AS (
    SELECT
        *,
        CASE WHEN $uid_derived
             THEN md5(coalesce(url, '') || chr(31) || coalesce(text, ''))
             ELSE uid END AS uid_final,
        normalize_url(url) AS url_norm,
        -- sizes and scores are judged on the source's numbers (raw_*, DOUBLE) before any cast:
        -- NaN, 1e19, 2^64-1 or a fraction is a bad size, 1e300 a bad score, not a failed file
        isnan(raw_original_width) OR raw_original_width <= 0
            OR raw_original_width > $max_image_side
            OR raw_original_width <> trunc(raw_original_width) AS width_bad,
        isnan(raw_original_height) OR raw_original_height <= 0
            OR raw_original_height > $max_image_side
            OR raw_original_height <> trunc(raw_original_height) AS height_bad,
        isnan(raw_clip_b32_similarity_score) OR abs(raw_clip_b32_similarity_score) > 1 AS b32_bad,
        isnan(raw_clip_l14_similarity_score) OR abs(raw_clip_l14_similarity_score) > 1 AS l14_bad
    FROM {{ source('raw_shard') }}
),
keyed AS (
    SELECT *, uid_key(uid_final) AS uid_key FROM src
),
uid_first AS (  -- uids used by more than one row: the first row owns them (usually empty)
    SELECT uid_key, min(row_idx) AS first_row
    FROM keyed
    WHERE uid_key IS NOT NULL
    GROUP BY uid_key
    HAVING count(*) > 1
),
checked AS (
    SELECT
        k.*,
        f.first_row AS uid_first_row,
        CASE
            WHEN url IS NULL OR regexp_full_match(url, '[[:space:]]*') THEN 'url_missing'
            WHEN url_norm IS NOT NULL AND NOT (url_norm LIKE 'http://%' OR url_norm LIKE 'https://%')
                THEN 'url_scheme'
            WHEN url_norm IS NULL AND url_scheme(url) NOT IN ('http', 'https') THEN 'url_scheme'
            WHEN url_norm IS NULL OR length(url) > $max_url_length
                 OR regexp_matches(url, '[\x00-\x1f\x7f]') THEN 'url_unparseable'
            WHEN width_bad OR height_bad THEN 'size_invalid'
            WHEN b32_bad OR l14_bad THEN 'score_invalid'
            WHEN k.uid_key IS NULL THEN 'uid_malformed'
        END AS first_failure
    FROM keyed k
    LEFT JOIN uid_first f ON f.uid_key = k.uid_key
)
SELECT
    $shard AS shard,
    row_idx,
    uid_final AS uid,
    url_norm,
    url_key(url_norm) AS url_key,
    uid_key,
    coalesce(first_failure,
             CASE WHEN row_idx > uid_first_row THEN 'uid_repeated' END) AS reason,
    CASE
        WHEN first_failure = 'url_scheme' THEN 'scheme ' || coalesce(nullif(url_scheme(url), ''), '(none)')
        WHEN first_failure = 'url_unparseable' AND length(url) > $max_url_length
            THEN 'length ' || length(url) || ' > ' || $max_url_length
        WHEN first_failure = 'url_unparseable' AND regexp_matches(url, '[\x00-\x1f\x7f]')
            THEN 'control character'
        WHEN first_failure = 'size_invalid'  -- the source's numbers: whole ones without '.0'
            THEN 'size ' || coalesce(CASE WHEN raw_original_width = trunc(raw_original_width)
                AND abs(raw_original_width) < 1e15 THEN raw_original_width::BIGINT::VARCHAR
                ELSE raw_original_width::VARCHAR END, '?')
                || 'x' || coalesce(CASE WHEN raw_original_height = trunc(raw_original_height)
                AND abs(raw_original_height) < 1e15 THEN raw_original_height::BIGINT::VARCHAR
                ELSE raw_original_height::VARCHAR END, '?')
        WHEN first_failure = 'score_invalid' AND b32_bad
            THEN 'clip_b32_similarity_score ' || raw_clip_b32_similarity_score::VARCHAR
        WHEN first_failure = 'score_invalid'
            THEN 'clip_l14_similarity_score ' || raw_clip_l14_similarity_score::VARCHAR
        WHEN first_failure = 'uid_malformed' THEN 'uid ' || coalesce(uid_final, 'NULL')
        WHEN first_failure IS NULL AND row_idx > uid_first_row THEN 'first at row ' || uid_first_row
    END AS reason_detail
FROM checked
