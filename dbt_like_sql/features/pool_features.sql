-- One row per uid of the pool (every normalized row except later copies of a uid, which
-- url_dedup already records as duplicate_uid): every feature a filter may use, and
-- ineligible_reason, why a row can never be trained on whatever the filter (NULL: eligible):
-- dropped by URL dedup, image not downloaded, image not embedded, or an eval near-duplicate.
SELECT
    r.uid,
    r.shard,
    r.row_idx,
    r.url,
    r.text,
    CASE
        WHEN trim(coalesce(r.text, '')) = '' THEN 0
        ELSE len(string_split(regexp_replace(trim(r.text), '\s+', ' ', 'g'), ' '))
    END AS caption_words,
    length(coalesce(r.text, '')) AS caption_chars,
    d.keep AS dedup_keep,
    d.reason AS dedup_reason,
    d.duplicate_of,
    s.status AS download_status,
    s.error_category AS download_error,
    coalesce(s.original_width, r.original_width) AS width,
    coalesce(s.original_height, r.original_height) AS height,
    e.clip_score,
    l.language,
    l.language_confidence,
    x.max_similarity AS eval_max_similarity,
    x.nearest_eval,
    coalesce(x.flagged, false) AS eval_near_duplicate,
    c.image_cluster,
    coalesce(c.exemplar_cluster, false) AS exemplar_cluster,
    CASE
        WHEN NOT d.keep THEN d.reason
        WHEN s.status IS DISTINCT FROM 'success' THEN 'download_failed'
        WHEN e.clip_score IS NULL THEN 'not_embedded'
        WHEN x.flagged THEN 'eval_near_duplicate'
    END AS ineligible_reason
FROM {{ source('rows') }} r
JOIN {{ source('decisions') }} d ON d.shard = r.shard AND d.row_idx = r.row_idx
LEFT JOIN {{ source('download_status') }} s ON d.keep AND s.uid = r.uid
LEFT JOIN {{ source('embeddings') }} e ON d.keep AND e.uid = r.uid
LEFT JOIN {{ source('languages') }} l ON l.uid = r.uid
LEFT JOIN {{ source('decontamination') }} x ON d.keep AND x.uid = r.uid
LEFT JOIN {{ source('image_clusters') }} c ON d.keep AND c.uid = r.uid
WHERE d.reason IS DISTINCT FROM 'duplicate_uid'
