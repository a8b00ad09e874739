"""Demo data: a deterministic DataComp-style world with planted problems and its ground truth.

v1 (``write_demo_pool``): pool metadata only. v2 (``write_demo_world``): the pool over real images
served by ``DemoImageServer``, a trusted set for the scorer, held-out eval sets, and the truth.
"""

from poolsieve.demo.config import WorldConfig
from poolsieve.demo.pool import DemoPool, write_demo_pool
from poolsieve.demo.server import DemoImageServer, free_port
from poolsieve.demo.world import DemoWorld, load_demo_world, write_demo_world

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
