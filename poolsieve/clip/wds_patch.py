"""Runtime fix for open_clip_train 3.3.0 + webdataset 0.2.111: `KeyError: 'fname'` on tar input.

webdataset's `tar_file_expander` now yields an end-of-shard marker (`eof_value`, default `{}`)
after each tar; open_clip_train's `tarfile_to_samples_nothrow` (open_clip_train/data.py) feeds
the expander into its own `group_by_keys_nothrow`, which reads `sample["fname"]` from every item
and so fails on the marker (webdataset#384, open_clip#935). The fix is to ask the expander for
no marker: `eof_value=None`.

We replace `open_clip_train.data.tarfile_to_samples_nothrow` with the same three-stage pipeline
plus that argument, rather than editing site-packages. The replacement lives in this importable
module, so it also survives DataLoader workers started with "spawn" (they unpickle the pipeline
stage by its module path); a patched global inside open_clip_train would not.
"""

from __future__ import annotations

import functools
import inspect

from open_clip_train import data
from webdataset.tariterators import tar_file_expander, url_opener


def tarfile_to_samples_nothrow(src, handler=data.log_and_continue):
    """open_clip_train's tar -> sample stage, with the expander's end-of-shard marker off."""
    streams = url_opener(src, handler=handler)
    files = tar_file_expander(streams, handler=handler, eof_value=None)
    return data.group_by_keys_nothrow(files, handler=handler)


def needs_patch() -> bool:
    """True while open_clip_train still calls the expander without `eof_value`."""
    stage = data.tarfile_to_samples_nothrow
    if stage is tarfile_to_samples_nothrow:
        return False
    expander = inspect.signature(tar_file_expander).parameters.get("eof_value")
    return expander is not None and "eof_value" not in inspect.getsource(stage)


def apply_wds_patch() -> bool:
    """Install the fixed stage if needed (idempotent); returns whether it is now installed."""
    if needs_patch():
        data.tarfile_to_samples_nothrow = tarfile_to_samples_nothrow
    return data.tarfile_to_samples_nothrow is tarfile_to_samples_nothrow


def seed_from_argv(argv: list[str]) -> int:
    """The trainer's ``--seed`` (open_clip_train's default, 0, when absent)."""
    return int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0


def apply_seeded_shuffle(seed: int) -> None:
    """Pin open_clip_train's sample shuffle to the run's seed.

    open_clip_train builds its sample-level shuffle with ``wds.shuffle(bufsize, initial)`` and
    no seed, and webdataset then seeds it from the clock and the pid: two runs with the same
    ``--seed`` saw different first batches (step-1 loss 4.3957 vs 4.4465 here), so a scorer and
    the subsets its CLIP scores decide were not reproducible. ``wds.shuffle`` is looked up when the
    pipeline is built, and the seed travels inside the pipeline stage to the DataLoader workers.
    """
    import webdataset

    if not isinstance(webdataset.shuffle, functools.partial):
        webdataset.shuffle = functools.partial(webdataset.filters.shuffle, seed=seed)
