-- The entries of the takedown and hash lists (poolsieve.curate.takedown.load_lists, already
-- validated), each with the key it is compared on: a uid or sha256 in lower case, a URL in its
-- normalized form (normalize_url is URL equality: pool rows carry theirs as url_norm), a pHash's
-- 16 hex digits as the signed 64-bit integer image_hashes stores (the same 64 bits).
WITH parsed AS (
    SELECT
        list,
        entry,
        kind,
        value,
        reason,
        reference,
        CASE WHEN kind = 'phash' THEN ('0x' || value)::UBIGINT END AS phash_bits
    FROM {{ source('lists') }}
)
SELECT
    list,
    entry::BIGINT AS entry,
    kind,
    value,
    reason,
    reference,
    CASE kind
        WHEN 'uid' THEN lower(value)
        WHEN 'url' THEN normalize_url(value)
        WHEN 'sha256' THEN lower(value)
    END AS match_key,
    CASE
        WHEN phash_bits >= 9223372036854775808
            THEN (phash_bits::HUGEINT - 18446744073709551616)::BIGINT
        ELSE phash_bits::BIGINT
    END AS phash
FROM parsed
