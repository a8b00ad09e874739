"""Partitions: one dynamic ``shard`` partition per source parquet file."""

import dagster as dg

SHARDS = dg.DynamicPartitionsDefinition(name="pool_shards")


def shard_seq(instance: dg.DagsterInstance, shard: str) -> int:
    """A shard's position in pool order: the order in which shards were registered."""
    keys = instance.get_dynamic_partitions(SHARDS.name)
    if shard not in keys:
        raise dg.Failure(f"shard {shard!r} is not a registered partition of {SHARDS.name}")
    return keys.index(shard)


def _strategies() -> dg.StaticPartitionsDefinition:
    """One partition per filter file in dbt_like_sql/filters/ (adding a file adds a strategy)."""
    from poolsieve.curate.strategies import strategy_names

    return dg.StaticPartitionsDefinition(strategy_names())


STRATEGIES = _strategies()
