-- image_based (DataComp): English caption of more than $min_words words and more than
-- $min_chars characters, and the image's k-means cluster is the nearest cluster of some exemplar
-- image (ImageNet-1k training images in DataComp; the trusted set in the demo). The clustering
-- is computed with pool_features (poolsieve/curate/clusters.py).
SELECT
    uid,
    CASE
        WHEN language IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN caption_words <= $min_words OR caption_chars <= $min_chars THEN 'caption_too_short'
        WHEN NOT exemplar_cluster THEN 'not_in_exemplar_cluster'
    END AS reason
FROM {{ source('pool_features') }}
