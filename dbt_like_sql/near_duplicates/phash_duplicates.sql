-- Perceptual-hash near-duplicates over every image of the pool (image_rows of each shard):
-- an image is dropped when an EARLIER image in pool order ((shard_seq, row_idx), as URL dedup)
-- has a pHash within $max_distance bits of its own; duplicate_of names the earliest image with
-- the same pHash, else the earliest one within $max_distance among the distinct pHashes.
-- Speed: images sharing a pHash collapse to their first (so a thousand copies of a blank image
-- cost one row, not a million pairs); among distinct pHashes, candidate pairs share one of
-- $blocks bit blocks exactly ($block_bits bits each, $block_mask their mask: by the pigeonhole principle two 64-bit
-- hashes within $max_distance bits, $blocks = $max_distance + 1, agree on at least one block),
-- and only candidates get their Hamming distance computed.
WITH images AS (
    SELECT uid, shard, phash, (shard_seq::BIGINT << 40) + row_idx AS pool_order
    FROM {{ source('image_rows') }}
),
firsts AS (  -- each distinct pHash with its first image
    SELECT phash, min(pool_order) AS pool_order, arg_min(uid, pool_order) AS uid
    FROM images
    GROUP BY phash
),
same_hash AS (  -- later images whose pHash an earlier one has
    SELECT i.uid, i.shard, f.uid AS duplicate_of, 0 AS distance, f.pool_order AS dup_order
    FROM images i
    JOIN firsts f ON f.phash = i.phash AND f.pool_order < i.pool_order
),
blocks AS (
    SELECT
        f.phash,
        f.pool_order,
        f.uid,
        b.block,
        (f.phash >> (b.block * $block_bits)) & $block_mask AS value
    FROM firsts f, (SELECT unnest(range($blocks)) AS block) b
),
near AS (  -- distinct pHashes within $max_distance of an earlier one
    SELECT DISTINCT
        l.uid,
        e.uid AS duplicate_of,
        bit_count(xor(l.phash, e.phash)) AS distance,
        e.pool_order AS dup_order
    FROM blocks l
    JOIN blocks e ON e.block = l.block AND e.value = l.value AND e.pool_order < l.pool_order
    WHERE bit_count(xor(l.phash, e.phash)) <= $max_distance
),
near_first AS (
    SELECT i.uid, i.shard, n.duplicate_of, n.distance, n.dup_order
    FROM near n
    JOIN images i ON i.uid = n.uid
),
candidates AS (
    SELECT * FROM same_hash
    UNION ALL
    SELECT * FROM near_first WHERE uid NOT IN (SELECT uid FROM same_hash)
)
SELECT
    uid,
    shard,
    'phash' AS rule,
    arg_min(duplicate_of, dup_order) AS duplicate_of,
    arg_min(distance, dup_order)::DOUBLE AS distance
FROM candidates
GROUP BY uid, shard
