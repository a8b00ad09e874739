-- One shard's pool rows that a takedown or hash list entry matches (takedown_entries), one row
-- per (pool row, entry, way it matched):
--   uid             the row's uid is the entry's
--   url             the row's url_norm is the entry's URL normalized (normalize_url)
--   sha256_metadata the row's sha256 (the pool's metadata) is the entry's, in any case
--   sha256_image    the downloaded bytes' sha256 (image_hashes) is the entry's
--   phash           the downloaded image's pHash is within $max_distance bits of the entry's
-- A shard without image hashes comes with an empty 'hashes' source: only the first three apply.
-- Speed: pHash candidates share one of $blocks bit blocks exactly ($block_bits bits each,
-- $block_mask their mask; $blocks = $max_distance + 1, so by the pigeonhole principle two hashes
-- within $max_distance bits agree on at least one), as near_duplicates/phash_duplicates does;
-- only candidates get their Hamming distance computed.
WITH pool_rows AS (
    SELECT uid, row_idx, url_norm, lower(sha256) AS sha256
    FROM {{ source('rows') }}
),
images AS (  -- the shard's downloaded images, at their pool rows
    SELECT r.uid, r.row_idx, lower(h.sha256) AS sha256, h.phash
    FROM {{ source('hashes') }} h
    JOIN pool_rows r ON r.uid = h.uid
),
entries AS (
    SELECT * FROM {{ ref('takedown_entries') }}
),
by_uid AS (
    SELECT r.uid, r.row_idx, e.list, e.entry, 'uid' AS matched_on, 0 AS distance
    FROM pool_rows r
    JOIN entries e ON e.kind = 'uid' AND e.match_key = r.uid
),
by_url AS (
    SELECT r.uid, r.row_idx, e.list, e.entry, 'url' AS matched_on, 0 AS distance
    FROM pool_rows r
    JOIN entries e ON e.kind = 'url' AND e.match_key = r.url_norm
),
by_sha256_metadata AS (
    SELECT r.uid, r.row_idx, e.list, e.entry, 'sha256_metadata' AS matched_on, 0 AS distance
    FROM pool_rows r
    JOIN entries e ON e.kind = 'sha256' AND e.match_key = r.sha256
),
by_sha256_image AS (
    SELECT i.uid, i.row_idx, e.list, e.entry, 'sha256_image' AS matched_on, 0 AS distance
    FROM images i
    JOIN entries e ON e.kind = 'sha256' AND e.match_key = i.sha256
),
block_numbers AS (
    SELECT unnest(range($blocks)) AS block
),
image_blocks AS (
    SELECT i.uid, i.row_idx, i.phash, b.block, (i.phash >> (b.block * $block_bits)) & $block_mask AS value
    FROM images i, block_numbers b
    WHERE i.phash IS NOT NULL
),
entry_blocks AS (
    SELECT e.list, e.entry, e.phash, b.block, (e.phash >> (b.block * $block_bits)) & $block_mask AS value
    FROM entries e, block_numbers b
    WHERE e.kind = 'phash'
),
by_phash AS (
    SELECT DISTINCT
        i.uid,
        i.row_idx,
        e.list,
        e.entry,
        'phash' AS matched_on,
        bit_count(xor(i.phash, e.phash)) AS distance
    FROM image_blocks i
    JOIN entry_blocks e ON e.block = i.block AND e.value = i.value
    WHERE bit_count(xor(i.phash, e.phash)) <= $max_distance
),
matches AS (
    SELECT * FROM by_uid
    UNION ALL SELECT * FROM by_url
    UNION ALL SELECT * FROM by_sha256_metadata
    UNION ALL SELECT * FROM by_sha256_image
    UNION ALL SELECT * FROM by_phash
)
SELECT
    m.uid,
    $shard AS shard,
    m.row_idx::BIGINT AS row_idx,
    m.list,
    m.entry,
    e.kind,
    m.matched_on,
    m.distance::INTEGER AS distance,
    e.reason,
    e.reference
FROM matches m
JOIN entries e ON e.list = m.list AND e.entry = m.entry
