-- Every pool row carrying $uid, valid or quarantined, with what each per-shard step decided for
-- it: URL dedup, download, CLIP score, eval decontamination, and its pool features (with the
-- earlier images near_duplicates found it a copy of).
WITH occurrences AS (
    SELECT shard, row_idx, uid, url, url_norm, text,
           NULL::VARCHAR AS quarantine_reason, NULL::VARCHAR AS quarantine_detail
    FROM {{ source('rows') }}
    WHERE uid = $uid
    UNION ALL BY NAME
    SELECT shard, row_idx, uid, url, NULL::VARCHAR AS url_norm, text,
           reason AS quarantine_reason, reason_detail AS quarantine_detail
    FROM {{ source('quarantine') }}
    WHERE uid = $uid
)
SELECT
    o.*,
    d.keep AS dedup_keep,
    d.reason AS dedup_reason,
    d.duplicate_of,
    s.status AS download_status,
    s.error_category AS download_error,
    s.error_message AS download_message,
    e.clip_score,
    x.max_similarity AS eval_max_similarity,
    x.nearest_eval,
    x.flagged AS eval_near_duplicate,
    f.language,
    f.ineligible_reason,
    f.phash_duplicate_of,
    f.phash_distance,
    f.semantic_duplicate_of,
    f.semantic_similarity,
    f.removed_by_list,
    f.removed_by_entry,
    f.removed_matched_on,
    f.removed_reference
FROM occurrences o
LEFT JOIN {{ source('decisions') }} d ON d.shard = o.shard AND d.row_idx = o.row_idx
LEFT JOIN {{ source('download_status') }} s ON d.keep AND s.uid = o.uid
LEFT JOIN {{ source('embeddings') }} e ON d.keep AND e.uid = o.uid
LEFT JOIN {{ source('decontamination') }} x ON d.keep AND x.uid = o.uid
LEFT JOIN {{ source('pool_features') }} f ON f.shard = o.shard AND f.row_idx = o.row_idx
ORDER BY o.shard, o.row_idx
