"""`python -m poolsieve.clip.run_trainer ARGS...`: open_clip_train's main, offline and patched.

A subprocess, not an in-process call, because open_clip_train configures the root logger, seeds
global RNGs and may start worker processes: none of that should leak into a Dagster process.
The offline environment is set before open_clip, huggingface_hub or wandb are imported, since
they read it at import time. Started by ``train_clip`` (which sets ``POOLSIEVE_TRAINER_PARENT``
to its pid), the trainer dies with that process, even one killed by SIGKILL, rather than go on
writing checkpoints into a folder a re-run is starting over in (poolsieve.parent_death).
"""

from __future__ import annotations

import os
import sys

from poolsieve.clip.offline import OFFLINE_ENV, deny_network
from poolsieve.clip.train import PARENT_PID_ENV
from poolsieve.parent_death import die_with_parent

os.environ.update(OFFLINE_ENV)


def main(argv: list[str] | None = None) -> int:
    """Run the trainer on `argv` (default: this process's arguments); 0 on success."""
    if os.environ.get(PARENT_PID_ENV):  # absent when run by hand
        die_with_parent(int(os.environ[PARENT_PID_ENV]))
    deny_network()
    from open_clip_train.main import main as trainer_main

    from poolsieve.clip.model_configs import register_configs
    from poolsieve.clip.wds_patch import apply_seeded_shuffle, apply_wds_patch, seed_from_argv

    args = list(sys.argv[1:] if argv is None else argv)
    apply_wds_patch()
    apply_seeded_shuffle(seed_from_argv(args))
    register_configs()
    status = trainer_main(args)
    return 1 if status == -1 else 0


if __name__ == "__main__":
    sys.exit(main())
