"""Partitions: one dynamic ``shard`` partition per source parquet file.

Pool order is the lake's (poolsieve.pool.registry.enroll), not the Dagster instance's partition
order: two instances on one lake share it. ``register_shards`` enrols new files in the lake first,
then adds them as partitions of this instance.
"""

import time

import dagster as dg

from poolsieve.pool import registry
from poolsieve.pool.sources import source_identity

SHARDS = dg.DynamicPartitionsDefinition(name="pool_shards")
#: a run tag: its pool_shard step may replace a shard whose source file's content changed
REPLACE_CHANGED_TAG = "poolsieve/replace_changed"


def register_shards(instance: dg.DagsterInstance, lake, keys: list[str]) -> dict[str, int]:
    """Enrol ``keys`` (files of the lake resource's source, in the order given) in the lake's pool
    order and add the new ones as shard partitions; shard -> pool sequence number. Raises
    registry.ShardIdentityError when a name belongs to another source in this lake."""
    with lake.connect() as conn:
        seqs = registry.enroll(conn, source_identity(lake.source_url), keys)
    add_partitions(instance, sorted(keys, key=seqs.__getitem__))
    return seqs


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


def shard_seq(lake, shard: str, conn=None) -> int:
    """A shard's position in pool order, from the lake (enrolling it if it was added as a
    partition by hand, e.g. in the UI); ``conn``: an open connection to the lake's catalog
    (default: one is opened for this)."""
    if conn is None:
        with lake.connect() as own:
            return shard_seq(lake, shard, own)
    try:
        return registry.enroll(conn, source_identity(lake.source_url), [shard])[shard]
    except registry.ShardIdentityError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None


def _strategies() -> dg.StaticPartitionsDefinition:
    """One partition per filter file in dbt_like_sql/filters/ (adding a file adds a strategy)."""
    from poolsieve.curate.strategies import strategy_names

    return dg.StaticPartitionsDefinition(strategy_names())


STRATEGIES = _strategies()
