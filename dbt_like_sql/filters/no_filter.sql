-- no_filter: every eligible uid (DataComp's baseline: the whole pool); the filter drops nothing.
SELECT uid, NULL::VARCHAR AS reason
FROM {{ source('pool_features') }}
