"""The one place poolsieve touches Dagster's private modules (``dagster._core``, ``dagster._time``).

Dagster's public API has no call for "is this asset partition stale, and why" outside the UI's
GraphQL; the resolver the UI uses is private. Nor has it one to record a backfill whose runs the
caller executes itself (``dagster job backfill`` builds the record from private classes too). Everything poolsieve needs from it is here, so a
Dagster upgrade that moves it breaks one file, and ``tests/unit/audit/test_dagster_private.py``
says so against the pinned release.
"""

from __future__ import annotations

from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import (
    CachingStaleStatusResolver,
    StaleCauseCategory,
    StaleStatus,
)
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime

STALE = StaleStatus.STALE
MISSING = StaleStatus.MISSING


def stale_status_resolver(instance, graph) -> CachingStaleStatusResolver:
    """The resolver behind the UI's stale badges, for ``graph`` as of now."""
    now = TemporalContext(effective_dt=get_current_datetime(), last_event_id=None)
    view = AssetGraphView(temporal_context=now, instance=instance, asset_graph=graph)
    return CachingStaleStatusResolver(instance, graph, view)


def code_changed(resolver: CachingStaleStatusResolver, key, partition: str | None) -> bool:
    """Whether one of the partition's stale causes is a code version change (its own or an
    upstream's), rather than new upstream data."""
    causes = resolver.get_stale_causes(key, partition)
    return any(c.category == StaleCauseCategory.CODE for c in causes)


def job_asset_keys(job) -> set:
    """The asset keys a job materializes (observable sources excluded)."""
    return set(job.asset_layer.executable_asset_keys)


def multiple_process_requirements() -> list:
    """The requirements of an executor whose steps run in other processes (a Ray cluster)."""
    from dagster._core.definitions.executor_definition import (
        multiple_process_executor_requirements,
    )

    return multiple_process_executor_requirements()


def step_delegating_executor(handler):
    """Dagster's executor that hands each step to ``handler`` (dagster-ray's step handler),
    with retries on, so a step whose process died is run again."""
    from dagster._core.execution.retries import RetryMode
    from dagster._core.executor.step_delegating import StepDelegatingExecutor

    return StepDelegatingExecutor(handler, retries=RetryMode.ENABLED, should_verify_step=True)


# ---------------------------------------------------------------- backfill records


def backfill_statuses():
    """Dagster's ``BulkActionStatus`` (a backfill's status)."""
    from dagster._core.execution.backfill import BulkActionStatus

    return BulkActionStatus


def new_job_backfill(origin_module: str, job_name: str, keys: list[str], tags: dict):
    """A job backfill record over ``keys`` of ``job_name`` in the code location that loads
    ``origin_module`` (as ``workspace.yaml`` or ``dagster dev -m`` does: the location is named
    after the module), every partition already taken (``last_submitted_partition_name``), so a
    daemon that sees it launches nothing and only waits for its runs."""
    import os
    import sys

    from dagster._core.definitions.repository_definition.valid_definitions import (
        SINGLETON_REPOSITORY_NAME,
    )
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemotePartitionSetOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.remote_representation.external_data import (
        partition_set_snap_name_for_job_name,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    target = LoadableTargetOrigin(
        executable_path=sys.executable, module_name=origin_module, working_directory=os.getcwd()
    )
    repository = RemoteRepositoryOrigin(
        code_location_origin=ManagedGrpcPythonEnvCodeLocationOrigin(target),
        repository_name=SINGLETON_REPOSITORY_NAME,
    )
    return PartitionBackfill(
        backfill_id=make_new_backfill_id(),
        partition_set_origin=RemotePartitionSetOrigin(
            repository_origin=repository,
            partition_set_name=partition_set_snap_name_for_job_name(job_name),
        ),
        status=BulkActionStatus.REQUESTED,
        partition_names=list(keys),
        last_submitted_partition_name=keys[-1],
        from_failure=False,
        reexecution_steps=None,
        tags=tags,
        backfill_timestamp=get_current_timestamp(),
    )


def now_timestamp() -> float:
    from dagster._time import get_current_timestamp

    return get_current_timestamp()
