-- One row per uid of the pool (every normalized row except later copies of a uid, which
-- url_dedup already records as duplicate_uid): a union of the shards' own features
-- (shard_features: caption counts, languages, precomputed scores and sizes; shard_clusters)
-- with the pool-wide dedup decisions and, in download mode, what the images gave (download
-- status, CLIP score of poolsieve's scorer, eval near-duplicates; NULL in metadata mode) and
-- the near-duplicate images an earlier image makes redundant (near_duplicates: by pHash and by
-- embedding; not a reason of their own: the filters that want them drop them).
-- ineligible_reason: why a row can never be trained on whatever the filter (NULL: eligible):
-- removed by a takedown or hash list (removals; removed_by_* name the first entry that matched);
-- dropped by URL dedup; opted out by its site (download_status: a host file or the image's
-- headers; optout_signal names which, download_message the rule); in download mode also image
-- not downloaded, image not embedded, or an
-- eval near-duplicate. $mode: 'download' or 'metadata' (DataComp's filtering track).
-- A features row is joined on (shard, row_idx, uid): a shard whose features are missing or
-- older than its rows gets NULL features, which the YAML's not_null tests catch.
SELECT
    r.uid,
    r.shard,
    r.row_idx,
    r.url,
    r.text,
    f.caption_words,
    f.caption_chars,
    d.keep AS dedup_keep,
    d.reason AS dedup_reason,
    d.duplicate_of,
    s.status AS download_status,
    s.error_category AS download_error,
    s.optout_signal,
    coalesce(s.original_width, f.meta_width) AS width,
    coalesce(s.original_height, f.meta_height) AS height,
    e.clip_score,
    f.language,
    f.language_confidence,
    x.max_similarity AS eval_max_similarity,
    x.nearest_eval,
    coalesce(x.flagged, false) AS eval_near_duplicate,
    c.image_cluster,
    coalesce(c.exemplar_cluster, false) AS exemplar_cluster,
    ph.duplicate_of AS phash_duplicate_of,
    ph.distance::INTEGER AS phash_distance,
    se.duplicate_of AS semantic_duplicate_of,
    (1 - se.distance)::FLOAT AS semantic_similarity,
    rm.list AS removed_by_list,
    rm.entry AS removed_by_entry,
    rm.matched_on AS removed_matched_on,
    rm.reference AS removed_reference,
    CASE
        WHEN rm.uid IS NOT NULL THEN 'removed'
        WHEN NOT d.keep THEN d.reason
        WHEN s.error_category = 'opted_out' THEN 'opted_out'
        WHEN $mode = 'metadata' THEN NULL
        WHEN s.status IS DISTINCT FROM 'success' THEN 'download_failed'
        WHEN e.clip_score IS NULL THEN 'not_embedded'
        WHEN x.flagged THEN 'eval_near_duplicate'
    END AS ineligible_reason,
    f.clip_b32_score,
    f.clip_l14_score,
    f.language_cld3,
    f.language_cld3_confidence,
    f.meta_width,
    f.meta_height
FROM {{ source('rows') }} r
JOIN {{ source('decisions') }} d ON d.shard = r.shard AND d.row_idx = r.row_idx
LEFT JOIN {{ source('features') }} f
    ON f.shard = r.shard AND f.row_idx = r.row_idx AND f.uid = r.uid
LEFT JOIN {{ source('download_status') }} s ON d.keep AND s.uid = r.uid
LEFT JOIN {{ source('embeddings') }} e ON d.keep AND e.uid = r.uid
LEFT JOIN {{ source('decontamination') }} x ON d.keep AND x.uid = r.uid
LEFT JOIN {{ source('clusters') }} c ON d.keep AND c.uid = r.uid
LEFT JOIN (  -- the first entry (list, entry) of the takedown lists that matched the row
    SELECT uid, shard, row_idx,
           arg_min(list, (list, entry)) AS list,
           arg_min(entry, (list, entry)) AS entry,
           arg_min(matched_on, (list, entry)) AS matched_on,
           arg_min(reference, (list, entry)) AS reference
    FROM {{ source('removals') }}
    GROUP BY uid, shard, row_idx
) rm ON rm.shard = r.shard AND rm.row_idx = r.row_idx
LEFT JOIN {{ source('near_duplicates') }} ph ON d.keep AND ph.uid = r.uid AND ph.rule = 'phash'
LEFT JOIN {{ source('near_duplicates') }} se ON d.keep AND se.uid = r.uid AND se.rule = 'semantic'
WHERE d.reason IS DISTINCT FROM 'duplicate_uid'
