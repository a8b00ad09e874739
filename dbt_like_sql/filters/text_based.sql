-- text_based (DataComp): English, and some caption word names a concept of $vocabulary
-- (ImageNet-21k synsets in DataComp; the demo's shape words here). Words are the caption's
-- lower-cased runs of letters.
SELECT
    uid,
    CASE
        WHEN language IS DISTINCT FROM 'en' THEN 'not_english'
        WHEN NOT list_has_any(
            regexp_extract_all(lower(coalesce(text, '')), '[a-z]+'), $vocabulary
        ) THEN 'no_concept_word'
    END AS reason
FROM {{ source('pool_features') }}
