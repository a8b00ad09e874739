"""shard_images and eval_decontamination: per-shard image download behind a fetch guard, and
each downloaded image compared with the eval images. Plain functions, no Dagster.

- :mod:`.download`  — ``download_shard`` / ``download_kept``: one shard's kept rows through
  img2dataset, swapped into the lake whole;
- :mod:`.settings`  — ``DownloadSettings`` (DataComp's defaults + safety limits) and the
  img2dataset arguments they become;
- :mod:`.address`   — pure checks: which URLs and addresses may be fetched;
- :mod:`.guard`     — installs the guarded urllib opener inside img2dataset's workers (the
  pickling hook); :mod:`.policy` its limits; :mod:`.opener`, :mod:`.connection`,
  :mod:`.redirects`, :mod:`.deadline` and :mod:`.body` what it enforces;
- :mod:`.errors`    — img2dataset's error messages folded into categories;
- :mod:`.status`    — ``download_status.parquet``, one row per input uid;
- :mod:`.decontamination` — eval_decontamination for one shard;
- :mod:`.pixel_features` — the pixel features it compares.
"""
