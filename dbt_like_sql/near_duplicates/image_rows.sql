-- One shard's decodable images in pool order: its image hashes joined to its rows (row_idx),
-- with the shard's place in pool order ($shard_seq). An image without a pHash (undecodable) has
-- nothing to be a near-duplicate of.
SELECT
    h.uid,
    $shard AS shard,
    $shard_seq::INTEGER AS shard_seq,
    r.row_idx,
    h.phash
FROM {{ source('hashes') }} h
JOIN {{ source('rows') }} r ON r.uid = h.uid
WHERE h.phash IS NOT NULL
