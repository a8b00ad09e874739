-- basic (DataComp): English caption of more than $min_words words and more than $min_chars
-- characters; the image's shorter side >= $min_side px and its aspect ratio (longer side over
-- shorter) <= $max_aspect. $size_source picks the sizes: image (width/height: the downloaded
-- image's, else the metadata's) or metadata (meta_width/meta_height, the pool's stated sizes,
-- as DataComp reads them). A row without both sizes is dropped (DataComp's size comparisons are
-- False for a missing size).
WITH sized AS (
    SELECT
        *,
        CASE $size_source WHEN 'image' THEN width WHEN 'metadata' THEN meta_width END AS w,
        CASE $size_source WHEN 'image' THEN height WHEN 'metadata' THEN meta_height END AS h
    FROM {{ source('pool_features') }}
)
SELECT
    uid,
    CASE
        WHEN language IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN coalesce(caption_words, 0) <= $min_words
             OR coalesce(caption_chars, 0) <= $min_chars THEN 'caption_too_short'
        WHEN w IS NULL OR h IS NULL THEN 'image_size_missing'
        WHEN least(w, h) < $min_side THEN 'image_too_small'
        WHEN greatest(w, h) > $max_aspect * least(w, h) THEN 'aspect_ratio'
    END AS reason
FROM sized
