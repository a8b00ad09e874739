-- The rows of one shard that failed validation, whole, with the reason code and a detail.
SELECT
    shard, row_idx, reason, reason_detail,
    uid, url, text, original_width, original_height,
    clip_b32_similarity_score, clip_l14_similarity_score, face_bboxes, sha256
FROM {{ ref('stg_pool_rows') }}
WHERE reason IS NOT NULL
