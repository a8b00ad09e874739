"""Our CLIP architectures are open_clip JSON files in `configs/`, found by name like open_clip's own.

Adding an architecture = adding a JSON file; `tests/unit/clip/test_models.py` loops over every file here,
so a new config is built and run forward without a test edit.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"


def config_names() -> list[str]:
    """Architecture names we ship (file stems), sorted."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def register_configs() -> list[str]:
    """Make our architectures known to open_clip by name; safe to call any number of times.

    open_clip appends each added folder to a module-level list and rescans all of them, so we add
    ours only when some name is still unknown: long-lived processes (Dagster) call this per run.
    """
    import open_clip

    names = config_names()
    if not set(names) <= set(open_clip.list_models()):
        open_clip.add_model_config(CONFIG_DIR)
    return names
