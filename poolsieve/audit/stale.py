"""What a change made stale, read from the Dagster instance: `poolsieve stale` and its tests.

Dagster marks an asset partition STALE when its own code version changed or an input's data
version moved since it was materialized (editing a filter moves ``filter_sql[<strategy>]``;
adding a shard adds a new ``clip_embeddings`` materialization). It reports only that frontier:
what sits below a stale partition stays FRESH until the frontier is re-materialized. A researcher
asking "what must I re-run?" needs the frontier *and* everything materialized below it, so this
module adds the downstream closure, following the partition mappings of this graph (same
partitions: the same key; an unpartitioned child: the child; an unpartitioned parent: every
materialized partition of the child).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from poolsieve.audit.dagster_private import MISSING, STALE, stale_status_resolver

Node = tuple[str, str | None]  # (asset, partition key or None)


@dataclass
class StaleReport:
    stale: dict[Node, list[str]] = field(default_factory=dict)  # Dagster's frontier + causes
    downstream: list[Node] = field(default_factory=list)  # materialized below the frontier
    missing: list[Node] = field(default_factory=list)  # partitions never materialized

    @property
    def to_rerun(self) -> list[Node]:
        return sorted(set(self.stale) | set(self.downstream), key=_order)


def _order(node: Node) -> tuple[str, str]:
    return node[0], node[1] or ""


def stale_report(instance: dg.DagsterInstance, defs: dg.Definitions) -> StaleReport:
    graph = defs.resolve_asset_graph()
    resolver = stale_status_resolver(instance, graph)
    report, materialized = StaleReport(), set()
    for node in _nodes(instance, graph):
        status = resolver.get_status(dg.AssetKey(node[0]), node[1])
        if status == MISSING:
            report.missing.append(node)
            continue
        materialized.add(node)
        if status == STALE:
            causes = resolver.get_stale_causes(dg.AssetKey(node[0]), node[1])
            report.stale[node] = [_describe(c) for c in causes]
    below = _closure(graph, set(report.stale), materialized) - set(report.stale)
    report.downstream = sorted(below, key=_order)
    return report


def _nodes(instance, graph) -> list[Node]:
    """Every partition of every materializable asset, in topological order."""
    nodes = []
    for level in graph.toposorted_asset_keys_by_level:
        for key in level:
            if graph.get(key).is_materializable:
                nodes += [(key.to_user_string(), p) for p in _partitions(instance, graph, key)]
    return nodes


def _partitions(instance, graph, key) -> list[str | None]:
    partitions = graph.get(key).partitions_def
    if partitions is None:
        return [None]
    return list(partitions.get_partition_keys(dynamic_partitions_store=instance))


def _closure(graph, roots: set[Node], materialized: set[Node]) -> set[Node]:
    seen, todo = set(roots), list(roots)
    while todo:
        asset, partition = todo.pop()
        parent = graph.get(dg.AssetKey.from_user_string(asset))
        for child_key in parent.child_keys:
            for child in _child_nodes(graph, parent, child_key, partition, materialized):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
    return seen


def _child_nodes(graph, parent, child_key, partition, materialized) -> list[Node]:
    child = graph.get(child_key)
    name = child_key.to_user_string()
    if child.partitions_def is None:
        candidates = [(name, None)]
    elif child.partitions_def == parent.partitions_def:
        candidates = [(name, partition)]
    else:  # an unpartitioned (or differently partitioned) parent feeds every child partition
        candidates = [n for n in materialized if n[0] == name]
    return [n for n in candidates if n in materialized]


def _describe(cause) -> str:
    dep = cause.dependency
    if dep is None:
        return cause.reason
    where = dep.asset_key.to_user_string() + (f"[{dep.partition_key}]" if dep.partition_key else "")
    return f"{cause.reason} ({where})"


def format_report(report: StaleReport) -> str:
    if not report.stale:
        return "nothing is stale: every materialized asset is up to date with its code and inputs"
    lines = ["stale (Dagster's own staleness: changed code version or input data version):"]
    lines += [
        f"  {_label(n)}: {'; '.join(c)}"
        for n, c in sorted(report.stale.items(), key=lambda i: _order(i[0]))
    ]
    if report.downstream:
        lines.append("downstream of them (out of date once those are re-materialized):")
        lines += [f"  {_label(n)}" for n in report.downstream]
    lines.append(f"to re-run: {len(report.to_rerun)} asset partitions")
    return "\n".join(lines)


def observe_filters(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
    tags: dict | None = None,
) -> bool:
    """Record each filter's current SQL + parameters hash (filter_sql's data versions).

    ``run_config`` is the run's (the CLI passes one that keeps Dagster's console logger quiet:
    without it every run event is printed at DEBUG before the answer); ``tags`` its tags (the
    CLI's name its process, so a killed run is failed at the next start)."""
    job = defs.resolve_job_def("observe_filters_job")
    first = job.partitions_def.get_partition_keys()[0]  # one run observes every partition
    result = job.execute_in_process(
        instance=instance, partition_key=first, run_config=run_config, tags=tags
    )
    return result.success


def _label(node: Node) -> str:
    return node[0] + (f"[{node[1]}]" if node[1] else "")
