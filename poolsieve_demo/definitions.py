"""The demo's code location: production's definitions bound to the demo world's resources.

``make dev`` serves it (``dagster dev -m poolsieve_demo.definitions``) over the lake at
``POOLSIEVE_LAKE`` (default ./lake), whose ``demo/world`` ``poolsieve demo`` writes; every other
POOLSIEVE_* variable applies as in production (docs/configuration.md).
"""

import os

from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.resources import DEFAULT_LAKE

from poolsieve_demo.resources import demo_resources

defs = build_defs(demo_resources(os.environ.get("POOLSIEVE_LAKE", DEFAULT_LAKE), env_vars=True))
