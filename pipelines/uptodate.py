"""What ``poolsieve run`` may skip: asset partitions materialized and still up to date.

A partition of a job runs when one of the job's assets was never materialized for it, or Dagster
reports it stale (its code version changed, or an input's data version moved since), or, for
``pool_shard``, the source file's signature (size, mtime) differs from the one its latest
materialization recorded. Assets trained once on a sample of the pool (``image_centroids``, the
scorer) re-run only when missing or when code changed: a new shard is assigned to the existing
centroids, as the refresh sensor does. ``poolsieve run --force`` runs everything.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from poolsieve.pipelines.refresh import materialized_signatures

from poolsieve.audit.dagster_private import (
    MISSING,
    STALE,
    code_changed,
    job_asset_keys,
    stale_status_resolver,
)

#: re-run only when missing or their code changed (not on new upstream data)
TRAINED_ONCE = {"image_centroids", "scorer"}


class UpToDate:
    """Answers "must this job run for this partition?" against one instance and graph."""

    def __init__(self, instance: dg.DagsterInstance, defs: dg.Definitions, signatures=None):
        self.instance, self.graph = instance, defs.resolve_asset_graph()
        self.signatures = signatures or {}  # shard -> the source file's signature now
        self._recorded: dict[str, str] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Forget cached statuses (after runs materialized something)."""
        self.resolver = stale_status_resolver(self.instance, self.graph)

    def pending(self, job, keys: Sequence[str | None]) -> list[str | None]:
        """The keys of ``keys`` that ``job`` must run for."""
        found = [k for k in job_asset_keys(job) if self.graph.get(k).is_materializable]
        assets = sorted(found, key=lambda k: k.to_user_string())
        return [k for k in keys if self.must_run(assets, k)]

    def must_run(self, assets: list[dg.AssetKey], key: str | None) -> bool:
        names = {a.to_user_string() for a in assets}
        if "pool_shard" in names and key is not None and self._source_changed(key):
            return True
        return any(self._asset_must_run(a, key) for a in assets)

    def _asset_must_run(self, asset: dg.AssetKey, key: str | None) -> bool:
        status = self.resolver.get_status(asset, key)
        if status == MISSING:
            return True
        if status != STALE:
            return False
        return asset.to_user_string() not in TRAINED_ONCE or code_changed(self.resolver, asset, key)

    def _source_changed(self, key: str) -> bool:
        if key not in self.signatures:
            return False
        if self._recorded is None:
            self._recorded = materialized_signatures(self.instance, list(self.signatures))
        return self._recorded.get(key) != self.signatures[key]


def listing_signatures(listing) -> dict[str, str]:
    """shard -> its source file's signature now (pool.sources.SourceListing)."""
    return {key: f.signature for key, f in listing.by_key().items()}
