-- The valid rows of one shard, in the canonical (DataComp) schema plus lineage columns.
SELECT
    v.uid, r.url, r.text, r.original_width, r.original_height,
    r.clip_b32_similarity_score, r.clip_l14_similarity_score, r.face_bboxes, r.sha256,
    v.shard, r.row_idx, v.url_norm
FROM {{ source('raw_shard') }} r
JOIN {{ ref('stg_pool_rows') }} v ON v.row_idx = r.row_idx
WHERE v.reason IS NULL
