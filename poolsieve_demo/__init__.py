"""The demo: a deterministic DataComp-style world with planted problems and its ground truth.

``write_demo_world``: the pool over real images served by ``DemoImageServer``, a trusted set for
the scorer, held-out eval sets, and the truth. ``resources.demo_resources`` points production's
resources at a lake's world; ``definitions`` is its code location, ``command`` its CLI command.

Exports load lazily (PEP 562), so ``python -m poolsieve_demo.server`` starts without importing
the generator (and without runpy's "found in sys.modules" warning).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy exports are, for type checkers and editors
    from poolsieve_demo.aging import age_world, current_epoch
    from poolsieve_demo.config import WorldConfig
    from poolsieve_demo.server import DemoImageServer, free_port
    from poolsieve_demo.world import DemoWorld, load_demo_world, write_demo_world

_EXPORTS = {
    "age_world": "poolsieve_demo.aging",
    "current_epoch": "poolsieve_demo.aging",
    "DemoImageServer": "poolsieve_demo.server",
    "free_port": "poolsieve_demo.server",
    "DemoWorld": "poolsieve_demo.world",
    "load_demo_world": "poolsieve_demo.world",
    "write_demo_world": "poolsieve_demo.world",
    "WorldConfig": "poolsieve_demo.config",
}
__all__ = [
    "DemoImageServer",
    "DemoWorld",
    "WorldConfig",
    "age_world",
    "current_epoch",
    "free_port",
    "load_demo_world",
    "write_demo_world",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
