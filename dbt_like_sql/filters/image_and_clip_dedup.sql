-- image_and_clip_dedup: DataComp-1B's recipe (image_and_clip) on a pool without near-duplicate
-- images. A row an earlier image makes redundant (near_duplicates: its pHash within the curation
-- resource's phash_max_distance bits of an earlier image's, or its embedding at least
-- semantic_threshold similar to an earlier one's in its image cluster) is dropped as
-- near_duplicate_image or semantic_duplicate; pool_features' phash_duplicate_of and
-- semantic_duplicate_of name the image kept in its place. Otherwise image_and_clip decides.
SELECT
    p.uid,
    CASE
        WHEN p.phash_duplicate_of IS NOT NULL THEN 'near_duplicate_image'
        WHEN p.semantic_duplicate_of IS NOT NULL THEN 'semantic_duplicate'
        ELSE c.reason
    END AS reason
FROM {{ source('pool_features') }} p
JOIN {{ ref('image_and_clip') }} c ON c.uid = p.uid
