-- image_and_clip (DataComp-1B's recipe): kept by both image_based and clip_score_top30; a row
-- both drop carries image_based's reason.
SELECT
    i.uid,
    coalesce(i.reason, c.reason) AS reason
FROM {{ ref('image_based') }} i
JOIN {{ ref('clip_score_top30') }} c ON c.uid = i.uid
