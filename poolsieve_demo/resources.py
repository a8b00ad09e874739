"""The production resources pointed at the demo world in a lake, and its image server's hook.

The world lives in ``<lake>/demo/world``. Production code knows nothing of it: this module hands
over the world's paths (pool source, trusted set, eval sets, takedown lists), the filters'
parameter profile for a small pool scored by a tiny CLIP (``tiny-cpu``), and a downloader
subclass that allowlists the world's server, holds the timeout below its slow routes (which exist
to time out) and keeps the server up while a step downloads (``shared_demo_server``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from poolsieve.pipelines.resources import DownloaderResource, Resources, resources_from_env

from poolsieve.images.address import endpoints_for_hosts
from poolsieve.images.settings import DownloadSettings
from poolsieve.lake import Lake
from poolsieve_demo.shared import shared_demo_server
from poolsieve_demo.takedown import FOLDER as TAKEDOWN_FOLDER
from poolsieve_demo.world import TRUTH_FILE, load_demo_world

#: the filters' parameter profile for the world's tiny scorer and small images
PARAM_PROFILE = "tiny-cpu"
#: the demo's near-duplicate settings: the tiny scorer's embeddings cannot tell copies from other
#: images, so the semantic rule compares image_hashes' copy features (pixel_features), in each
#: image's 3 nearest clusters (the weak embeddings put some copies across a cluster border);
#: how 0.94 and 3 were chosen: docs/decisions.md
SEMANTIC_DEDUP = {"semantic_threshold": 0.94, "semantic_features": "pixel", "semantic_probes": 3}


def world_dir(lake_dir: str | Path, cache: str | Path | None = None) -> Path:
    """Where the demo world of a lake lives: ``demo/world`` in the lake's folder, or in this
    machine's working copy of a remote lake (the world is local test data: its image server
    serves it from this machine)."""
    return Lake.at(lake_dir, cache).root / "demo" / "world"


class DemoDownloaderResource(DownloaderResource):
    """The downloader for the demo world: its server allowlisted and kept up while steps run."""

    world_dir: str
    lock_dir: str  # the shared server's flocks (see poolsieve_demo.shared)

    @property
    def settings(self) -> DownloadSettings:
        """The configured settings plus the world's host:port pairs, with the timeout at most
        half the world's slow response, so a slow route times out as its truth expects."""
        truth = load_demo_world(self.world_dir).truth
        base = super().settings
        return dataclasses.replace(
            base,
            timeout=min(self.timeout, truth["config"]["slow_seconds"] / 2),
            allowlist=base.allowlist + tuple(endpoints_for_hosts(truth["allowlist_hosts"])),
        )

    @contextlib.contextmanager
    def hosts_up(self, log: Callable[[str], None] | None = None) -> Iterator[None]:
        world = load_demo_world(self.world_dir)
        with shared_demo_server(world.root, world.port, self.lock_dir) as pid:
            if log is not None:
                log(f"demo image server for {world.root} up as pid {pid} on port {world.port}")
            yield


def takedown_dir(world: Path) -> str:
    """The world's takedown list folder; "" (no lists) for a world written before it had one
    (truth format < 4), which would otherwise fail ``removals``. A world not written yet gets
    the folder it will have."""
    folder = world / TAKEDOWN_FOLDER
    return "" if (world / TRUTH_FILE).exists() and not folder.is_dir() else str(folder)


def demo_resources(
    lake_dir: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    env_vars: bool = False,
    **overrides: Mapping[str, Any],
) -> Resources:
    """Every resource as production builds it from ``env`` (POOLSIEVE_* variables, see
    resources_from_env), with the world's paths (its takedown lists too), profile and
    downloader, and ``overrides`` ({field: value} per key) on top."""
    cache = overrides.get("lake", {}).get("lake_cache") or (os.environ if env is None else env).get(
        "POOLSIEVE_LAKE_CACHE"
    )
    world = world_dir(lake_dir, cache)
    values = {
        "lake": {"lake_dir": str(lake_dir), "source": str(world / "source")},
        "downloader": {  # pool health re-checks every downloaded row (the demo is small)
            "world_dir": str(world),
            "lock_dir": str(world.parent.parent / "locks"),
            "health_sample_rate": 1.0,
        },
        "scorer": {"trusted_dir": str(world / "trusted")},
        "eval_sets": {"eval_dir": str(world / "eval")},
        "curation": {
            "param_profile": PARAM_PROFILE,
            "takedown_lists": takedown_dir(world),
            **SEMANTIC_DEDUP,
        },
    }
    for key, fields in overrides.items():
        values[key] = {**values.get(key, {}), **fields}
    return resources_from_env(
        env, env_vars=env_vars, classes={"downloader": DemoDownloaderResource}, **values
    )
