"""Demo data: a small deterministic DataComp-style pool with planted problems and its truth."""

from poolsieve.demo.pool import DemoPool, write_demo_pool

__all__ = ["DemoPool", "write_demo_pool"]
