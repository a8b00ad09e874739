-- Every strategy's decision for $uid: kept, or dropped with its reason (poolsieve why).
SELECT strategy, keep, reason
FROM {{ source('subset_decisions') }}
WHERE uid = $uid
ORDER BY strategy
