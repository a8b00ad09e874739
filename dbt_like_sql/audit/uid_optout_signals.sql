-- Every opt-out signal checked for $uid when its image was downloaded (optout_signals of
-- shard_images and selected_images): the answer, the rule or header behind it, and when the
-- host file or the image response was seen (poolsieve why).
SELECT signal, answer, detail, seen_at
FROM {{ source('optout_signals') }}
WHERE uid = $uid
ORDER BY seen_at, signal
