-- score_of(which, clip_score, clip_b32_score, clip_l14_score): the CLIP score a filter names by its
-- bound $score_column ('clip_score': poolsieve's scorer; 'clip_b32_score' / 'clip_l14_score': the
-- pool's precomputed OpenAI B/32 and L/14 scores). NaN counts as no score (NULL): DataComp's
-- `score >= threshold` is False for NaN. strategies.py refuses any other name.
CREATE OR REPLACE MACRO score_of(which, clip_score, clip_b32_score, clip_l14_score) AS
    CASE
        WHEN isnan(
            CASE which
                WHEN 'clip_score' THEN clip_score
                WHEN 'clip_b32_score' THEN clip_b32_score
                WHEN 'clip_l14_score' THEN clip_l14_score
            END
        ) THEN NULL
        ELSE CASE which
            WHEN 'clip_score' THEN clip_score
            WHEN 'clip_b32_score' THEN clip_b32_score
            WHEN 'clip_l14_score' THEN clip_l14_score
        END
    END;

-- language_of(which, language, language_cld3): the caption language a filter names by its bound
-- $language_column ('language': the configured detector; 'language_cld3': gcld3, LAION's).
CREATE OR REPLACE MACRO language_of(which, language, language_cld3) AS
    CASE which WHEN 'language' THEN language WHEN 'language_cld3' THEN language_cld3 END;
