-- image_based (DataComp): English caption of more than $min_words words and more than
-- $min_chars characters, and the image's k-means cluster is the nearest cluster of some exemplar
-- image (ImageNet-1k training images in DataComp; the trusted set in the demo). Which embeddings
-- are clustered (the scorer's, or the pool's L/14 or B/32 .npz) is the curation resource's
-- cluster_embeddings (image_centroids, shard_clusters); a row without a cluster is dropped.
SELECT
    uid,
    CASE
        WHEN language IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN coalesce(caption_words, 0) <= $min_words
             OR coalesce(caption_chars, 0) <= $min_chars THEN 'caption_too_short'
        WHEN exemplar_cluster IS NOT TRUE THEN 'not_in_exemplar_cluster'
    END AS reason
FROM {{ source('pool_features') }}
