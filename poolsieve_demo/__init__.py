"""Demo data: a deterministic DataComp-style world with planted problems and its ground truth.

v1 (``write_demo_pool``): pool metadata only. v2 (``write_demo_world``): the pool over real images
served by ``DemoImageServer``, a trusted set for the scorer, held-out eval sets, and the truth.

Exports load lazily (PEP 562), so ``python -m poolsieve_demo.server`` starts without importing
the generator (and without runpy's "found in sys.modules" warning).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy exports are, for type checkers and editors
    from poolsieve_demo.config import WorldConfig
    from poolsieve_demo.pool import DemoPool, write_demo_pool
    from poolsieve_demo.server import DemoImageServer, free_port
    from poolsieve_demo.world import DemoWorld, load_demo_world, write_demo_world

_EXPORTS = {
    "DemoImageServer": "poolsieve_demo.server",
    "free_port": "poolsieve_demo.server",
    "DemoPool": "poolsieve_demo.pool",
    "write_demo_pool": "poolsieve_demo.pool",
    "DemoWorld": "poolsieve_demo.world",
    "load_demo_world": "poolsieve_demo.world",
    "write_demo_world": "poolsieve_demo.world",
    "WorldConfig": "poolsieve_demo.config",
}
__all__ = [
    "DemoImageServer",
    "DemoPool",
    "DemoWorld",
    "WorldConfig",
    "free_port",
    "load_demo_world",
    "write_demo_pool",
    "write_demo_world",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
