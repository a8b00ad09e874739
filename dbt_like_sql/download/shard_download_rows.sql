-- The rows of one shard that URL dedup kept: what the downloader fetches, in row order.
SELECT r.uid, r.url, r.text, r.face_bboxes, r.sha256, r.row_idx
FROM {{ source('shard_rows') }} r
JOIN {{ source('shard_decisions') }} d ON d.row_idx = r.row_idx
WHERE d.keep
ORDER BY r.row_idx
