"""Partitions: one dynamic ``shard`` partition per source parquet file.

Pool order is the lake's (poolsieve.pool.registry.enroll), not the Dagster instance's partition
order: two instances on one lake share it. ``register_shards`` enrols new files in the lake first,
then adds them as partitions of this instance.
"""

import time

import dagster as dg

from poolsieve.lake import Lake
from poolsieve.pool import registry
from poolsieve.pool.sources import source_identity

SHARDS = dg.DynamicPartitionsDefinition(name="pool_shards")
#: a run tag: its pool_shard step may replace a shard whose source file's content changed
REPLACE_CHANGED_TAG = "poolsieve/replace_changed"


def register_shards(instance: dg.DagsterInstance, lake, keys: list[str]) -> dict[str, int]:
    """Enrol ``keys`` (files of the lake resource's source, in the order given) in the lake's pool
    order and add the new ones as shard partitions; shard -> pool sequence number. Raises
    registry.ShardIdentityError when a name belongs to another source in this lake."""
    seqs = registry.enroll(registry_lake(lake), source_identity(lake.source_url), keys)
    add_partitions(instance, sorted(keys, key=seqs.__getitem__))
    return seqs


def registry_lake(lake) -> Lake:
    """The lake resource's lake, its URL registry checked against the resource's partitions
    setting (registry.RegistryLayoutError when they differ; a lake whose registry is in its
    catalog is migrated first). ``registry_partitions`` 0: the lake's own partitioning (16 for a
    new lake)."""
    store = lake.store
    registry.check_layout(store, lake.registry_partitions or None)
    return store


def step_registry_lake(lake) -> Lake:
    """:func:`registry_lake` for a step: a registry partitioned otherwise fails the step
    without retries (re-running cannot help)."""
    try:
        return registry_lake(lake)
    except registry.RegistryLayoutError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None


def add_partitions(instance: dg.DagsterInstance, keys: list[str], attempts: int = 5) -> None:
    """Add the keys that are not partitions yet; safe when another process adds them at the same
    moment (its insert wins, ours is retried without them)."""
    for attempt in range(attempts):
        known = set(instance.get_dynamic_partitions(SHARDS.name))
        missing = [k for k in keys if k not in known]
        if not missing:
            return
        try:
            instance.add_dynamic_partitions(SHARDS.name, missing)
            return
        except Exception as err:  # the storage's unique-constraint error type varies by backend
            if attempt == attempts - 1 or "unique" not in str(err).lower():
                raise
            time.sleep(0.05 * (attempt + 1))


def shard_seq(lake, shard: str) -> int:
    """A shard's position in pool order, from the lake (enrolling it if it was added as a
    partition by hand, e.g. in the UI)."""
    try:
        return registry.enroll(lake.store, source_identity(lake.source_url), [shard])[shard]
    except registry.ShardIdentityError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None


def _strategies() -> dg.StaticPartitionsDefinition:
    """One partition per filter file in dbt_like_sql/filters/ (adding a file adds a strategy)."""
    from poolsieve.curate.strategies import strategy_names

    return dg.StaticPartitionsDefinition(strategy_names())


STRATEGIES = _strategies()
