-- no_filter: every eligible uid (DataComp's baseline: the whole pool).
SELECT
    uid,
    ineligible_reason IS NULL AS keep,
    ineligible_reason AS reason
FROM {{ source('pool_features') }}
