-- The rows of one shard that failed validation, whole, with the reason code and a detail.
SELECT
    v.shard, r.row_idx, v.reason, v.reason_detail,
    v.uid, r.url, r.text, r.original_width, r.original_height,
    r.clip_b32_similarity_score, r.clip_l14_similarity_score, r.face_bboxes, r.sha256
FROM {{ source('raw_shard') }} r
JOIN {{ ref('stg_pool_rows') }} v ON v.row_idx = r.row_idx
WHERE v.reason IS NOT NULL
