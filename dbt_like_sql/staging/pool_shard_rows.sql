-- The valid rows of one shard, in the canonical (DataComp) schema plus lineage columns.
SELECT
    uid, url, text, original_width, original_height,
    clip_b32_similarity_score, clip_l14_similarity_score, face_bboxes, sha256,
    shard, row_idx, url_norm, url_key, uid_key
FROM {{ ref('stg_pool_rows') }}
WHERE reason IS NULL
