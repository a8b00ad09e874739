-- basic (DataComp): English caption of more than $min_words words and more than $min_chars
-- characters; the image's shorter side >= $min_side px and its aspect ratio <= $max_aspect.
SELECT
    uid,
    CASE
        WHEN language IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN caption_words <= $min_words OR caption_chars <= $min_chars THEN 'caption_too_short'
        WHEN least(width, height) < $min_side THEN 'image_too_small'
        WHEN greatest(width, height) > $max_aspect * least(width, height) THEN 'aspect_ratio'
    END AS reason
FROM {{ source('pool_features') }}
