"""Running the graph from the command line: the main job over a source, in pool order.

``run_main_job`` registers the source's files as shard partitions and materializes the graph
job by job against the instance at ``$DAGSTER_HOME``, printing one progress line per partition;
``poolsieve run`` calls it, and so may commands other packages add. By default every run
executes in this process (``execute_in_process``), one partition after another. With
``POOLSIEVE_RAY_ADDRESS`` set (pipelines.execution) each run's steps execute on the Ray cluster
(``execute_job`` of a reconstructable job: the job's Ray executor) and a job's partitions are
submitted at once, at most ``POOLSIEVE_RAY_MAX_RUNS`` in flight; the shard jobs then run in two
phases (jobs.RAY_PHASES: every shard's ingest, then the rest), since a shard's dedup must see
every earlier shard. Either way, a job's runs over partitions are one Dagster backfill
(pipelines.backfill): the UI's Backfills tab shows each, and cancelling it there stops the runs
not yet started.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import dagster as dg
from poolsieve.pipelines.backfill import LOCATION, start_backfill
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.execution import Execution, reconstructable_job
from poolsieve.pipelines.instance import get_instance, run_tags
from poolsieve.pipelines.jobs import RAY_PHASES
from poolsieve.pipelines.partitions import (
    REPLACE_CHANGED_TAG,
    SHARDS,
    STRATEGIES,
    register_shards,
)
from poolsieve.pipelines.resources import Resources
from poolsieve.pipelines.uptodate import UpToDate, listing_signatures

from poolsieve.lake import Lake, sweep_temporaries
from poolsieve.pool.registry import RegistryLayoutError, ShardIdentityError


@dataclass(frozen=True)
class RayRuns:
    """Runs whose steps execute on a Ray cluster: the settings, and the resources every step's
    worker rebuilds the job with."""

    execution: Execution
    resources: Resources


@dataclass
class Session:
    """One ``poolsieve run``: the definitions, the instance, the lake and what is up to date
    (``plan``; None with ``--force``: everything runs). ``ran``: something was materialized in
    this run, so the pool-wide steps after it (pool_features, the subsets, the selection, the
    leaderboard) run too. ``ray``: runs execute on a Ray cluster (None: in this process).
    ``location``: the module of the code location the backfills name (pipelines.backfill)."""

    defs: object
    instance: object
    store: Lake
    plan: UpToDate | None = None
    ran: bool = False
    ray: RayRuns | None = None
    location: str = LOCATION

    def each(self, name: str, keys: list, tags: dict | None = None, always=False) -> list:
        """Run job ``name`` for the keys that are not up to date (all when ``always``); the keys
        that failed."""
        job = self.defs.resolve_job_def(name)
        todo = list(keys) if self.plan is None or always else self.plan.pending(job, keys)
        if len(todo) < len(keys):
            print(
                f"  {name}: {len(keys) - len(todo)} of {len(keys)} up to date, skipped "
                f"(--force runs them)"
            )
        if not todo:
            return []
        self.ran = True
        if todo == [None]:
            failed = self._execute(job, todo, tags)
        else:
            failed = self._backfill(job, todo, tags)
        if self.plan is not None:
            self.plan.refresh()
        return failed

    def _backfill(self, job, keys: list, tags: dict | None) -> list:
        """Run ``job`` for ``keys`` as one Dagster backfill (pipelines.backfill)."""
        backfill = start_backfill(
            self.instance, job.name, keys, {**run_tags(), **(tags or {})}, self.location
        )
        try:
            failed = self._execute(job, keys, {**(tags or {}), **backfill.run_tags}, backfill)
        except BaseException:  # interrupted: recorded as failed now, not at the next start
            backfill.fail()
            raise
        canceled = backfill.canceled()
        backfill.finish(failed, canceled)
        if canceled:
            print(f"  {job.name}: backfill {backfill.backfill_id} cancelled; the rest not run")
        return failed

    def _execute(self, job, keys: list, tags: dict | None, backfill=None) -> list:
        """Run ``job`` per key, in this process or on Ray; stop starting runs when
        ``backfill`` is cancelled (the keys not run count as failed)."""
        stop = backfill.canceled if backfill is not None else (lambda: False)
        if self.ray is None:
            return _run_each(job, self.instance, keys, tags, stop)
        return _run_each_on_ray(self.ray, job.name, self.instance, keys, tags, stop)

    def shards(self, name: str, keys: list, tags: dict | None = None) -> list:
        """Run the shard job ``name`` for ``keys``; on Ray as its phases (jobs.RAY_PHASES), each
        for the keys no earlier phase failed on; the keys that failed."""
        if self.ray is None:
            return self.each(name, keys, tags)
        failed: list = []
        for phase in RAY_PHASES[name]:
            failed += self.each(phase, [k for k in keys if k not in failed], tags)
        return failed

    def shards_with(self, *assets: str) -> list[str]:
        """The registered shards, in pool order, that one of ``assets`` has a folder for in the
        lake."""
        shards = self.instance.get_dynamic_partitions(SHARDS.name)
        return [s for s in shards if any(self.store.has_partition(a, s) for a in assets)]

    def one(self, name: str, always: bool = False) -> bool:
        """Run the unpartitioned job ``name`` unless it is up to date; whether it succeeded."""
        return not self.each(name, [None], always=always)


def run_main_job(
    resources: Resources,
    job_name: str = "all",
    replace_changed: bool = False,
    force: bool = False,
    location: str = LOCATION,
) -> tuple[int, dict]:
    """Register the source's files as shards and run the main job on them, in pool order.

    ``all`` (the default): the scorer (once), then ``shard_job`` per shard (ingest, dedup,
    download, embed, decontaminate), then the DataComp loop (pool_features; per strategy subset,
    train shards, CLIP training, evaluation; the leaderboard). ``shard_job`` stops after the
    shards, ``ingest_job`` runs ingest + dedup only. The downloader's image hosts stay up
    (``hosts_up``) for the whole loop over shards. Returns the exit status and
    poolsieve.audit.report.lake_counts. ``replace_changed``: shards whose source file's content
    changed since they were ingested are re-ingested (otherwise they fail, naming the file).
    Steps already materialized and up to date are skipped (pipelines.uptodate), unless
    ``force``. Each partitioned job's runs are one Dagster backfill (pipelines.backfill) naming
    the code location that loads the module ``location``."""
    from poolsieve.audit.report import lake_counts, lake_summary
    from poolsieve.pool.sources import SourceError, scan_source

    lake = resources.lake
    try:
        selection = resources.curation.selection(STRATEGIES.get_partition_keys())
        execution = Execution.from_env()
    except ValueError as err:
        print(f"poolsieve: {err}", file=sys.stderr)
        return 1, lake_counts(lake.store)
    ray = RayRuns(execution, resources) if execution.on_ray else None
    defs, instance = build_defs(resources, execution), get_instance()
    try:
        listing = scan_source(lake.source_url)
    except SourceError as err:
        print(f"poolsieve: {err}", file=sys.stderr)
        return 1, lake_counts(lake.store)
    if not listing.files:
        print(
            f"poolsieve: no *.parquet files in {lake.source_url}: nothing to run", file=sys.stderr
        )
        return 1, lake_counts(lake.store)
    _sweep(lake.store)
    try:
        seqs = register_shards(instance, lake, [f.key for f in listing.files])
    except (ShardIdentityError, RegistryLayoutError) as err:
        print(f"poolsieve: {err}", file=sys.stderr)
        return 1, lake_counts(lake.store)
    print(f"poolsieve: {len(listing.files)} shards in {lake.source_url}; lake {lake.lake_dir}")
    metadata = resources.curation.mode == "metadata"
    needs_scorer = job_name != "ingest_job" and _needs_scorer(resources)
    if ray is not None:
        print(f"poolsieve: steps run on the Ray cluster at {execution.address}")
    if needs_scorer and not _ensure_scorer(defs, instance, lake.store, ray):
        return 1, lake_counts(lake.store)
    plan = None if force else UpToDate(instance, defs, listing_signatures(listing))
    session = Session(defs, instance, lake.store, plan, ray=ray, location=location)
    tags = {REPLACE_CHANGED_TAG: "true"} if replace_changed else {}
    shards = sorted(seqs, key=seqs.__getitem__)
    with resources.downloader.hosts_up():
        failed = session.shards(_shard_job_name(job_name, metadata), shards, tags)
    counts = lake_counts(lake.store)
    print(lake_summary(counts))
    if failed:
        print(f"poolsieve: {len(failed)} shard(s) failed: {failed}", file=sys.stderr)
    elif job_name == "all":
        downloads = metadata and selection[0] != "none"  # the selection's images, after subsets
        with resources.downloader.hosts_up() if downloads else contextlib.nullcontext():
            failed = _curate(session, metadata, selection)
    return (1 if failed else 0), counts


def run_health(resources: Resources, location: str = LOCATION) -> int:
    """pool_health for every shard with downloaded images (one backfill), then subset_health:
    what a scheduled refresh's checks do, now. Prints the pool's rates and each subset's share;
    returns the exit status."""
    from poolsieve.images.health import (
        IMAGE_ASSETS,
        health_lines,
        latest_counts,
        read_subset_health,
    )

    execution = Execution.from_env()
    ray = RayRuns(execution, resources) if execution.on_ray else None
    defs, instance = build_defs(resources, execution), get_instance()
    session = Session(defs, instance, resources.lake.store, None, ray=ray, location=location)
    shards = session.shards_with(*IMAGE_ASSETS)
    if not shards:
        print("poolsieve: no shard has downloaded images to re-check", file=sys.stderr)
        return 1
    print(f"poolsieve: re-checking a sample of {len(shards)} shards' downloaded URLs")
    with resources.downloader.hosts_up():
        failed = session.each("health_job", shards, always=True)
    failed += [] if session.one("subset_health_job", always=True) else ["subset_health"]
    subsets = read_subset_health(resources.lake.store)  # what subset_health_job just wrote
    print("\n".join(health_lines(latest_counts(resources.lake.store), subsets)))
    if failed:
        print(f"poolsieve: health checks failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


def _sweep(store: Lake) -> None:
    """Remove the temporaries that crashed runs left in the lake (lake.sweep_temporaries)."""
    removed = sweep_temporaries(store.root)
    if removed:
        print(f"poolsieve: removed {len(removed)} temporaries left by crashed runs in {store.root}")


def _curate(session: Session, metadata: bool = False, selection=("none", [])) -> list[str]:
    """image_centroids, shard_clusters per shard, pool_features, then per strategy subset ->
    train_shards -> clip_model -> evaluation, then the leaderboard; returns what failed. In
    metadata mode the subsets come first; with ``selection`` (CurationResource.selection: the
    setting and its strategies) none it stops there, otherwise the selection's images are
    downloaded (download_selection, selected_images per shard) and the strategies whose images
    were downloaded (every one for ``all``) are trained and evaluated."""
    failed = _clusters(session)
    if failed:
        return failed
    if not session.one("features_job", always=session.ran):
        return ["pool_features"]
    strategies = STRATEGIES.get_partition_keys()
    print(f"poolsieve: the subsets of {len(strategies)} strategies")
    failed = session.each("subset_job", strategies, always=session.ran)
    if metadata and (selection[0] == "none" or failed):
        print(
            f"poolsieve: subsets in {session.store.location}/subset (training needs their images)"
        )
        return failed
    trained = strategies
    if metadata:
        failed = _download_selected(session, selection[0])
        if failed:
            return failed
        trained = strategies if selection[0] == "all" else selection[1]
    trained = [s for s in trained if s not in failed]
    print(f"poolsieve: training and evaluating {len(trained)} strategies")
    failed += session.each("training_job", trained)
    return _leaderboard(session, trained, failed)


def _download_selected(session: Session, selection: str) -> list[str]:
    """Metadata mode: download_selection, then selected_images per ingested shard (failed
    downloads are recorded per uid, never fatal); returns what failed."""
    print(f"poolsieve: metadata mode: downloading the images of the selection ({selection})")
    if not session.one("selection_job", always=session.ran):
        return ["download_selection"]
    from poolsieve.audit.report import selection_summary

    failed = session.each("selected_images_job", session.shards_with("url_dedup"))
    print(selection_summary(session.store))
    return [f"selected_images[{s}]" for s in failed]


def _leaderboard(session: Session, strategies: list[str], failed: list[str]):
    """The leaderboard over ``strategies`` (printed); ``failed`` plus anything that failed."""
    from poolsieve.curate.leaderboard import build_leaderboard

    if not session.one("leaderboard_job", always=session.ran):
        return [*failed, "leaderboard"]
    board = build_leaderboard(session.store, strategies)
    print("\nleaderboard (same samples seen and seed for every strategy)\n" + board.markdown())
    return failed


def _shard_job_name(job_name: str, metadata: bool) -> str:
    if job_name == "ingest_job":
        return "ingest_job"
    return "metadata_shard_job" if metadata else "shard_job"


def _needs_scorer(resources: Resources) -> bool:
    """Download mode embeds with the scorer; metadata mode only when it clusters the scorer's
    embeddings or embeds exemplar images."""
    curation = resources.curation
    if curation.mode != "metadata":
        return True
    return curation.cluster_embeddings == "scorer" or not curation.exemplar_dir.endswith(".npy")


def _clusters(session: Session) -> list[str]:
    """The image centroids (once, on a sample of the pool), then each ingested shard's clusters;
    returns what failed."""
    if not session.one("centroids_job"):
        return ["image_centroids"]
    failed = session.each("shard_clusters_job", session.shards_with("pool_shard"))
    return [f"shard_clusters[{s}]" for s in failed]


def _ensure_scorer(defs, instance, store: Lake, ray: RayRuns | None = None) -> bool:
    from poolsieve.clip.scorer import scorer_path

    if scorer_path(store).is_file():
        return True
    print("poolsieve: no scorer yet; materializing it (training a tiny CLIP takes a few minutes)")
    if ray is not None:
        return not _run_each_on_ray(ray, "scorer_job", instance, [None])
    return _run_one(defs.resolve_job_def("scorer_job"), instance, None)


def console_run_config() -> dict:
    """Run config of the CLI's in-process runs: Dagster's console logger at WARNING, or DEBUG
    when Python logging is at DEBUG (``poolsieve -v``); the run log keeps every event either way."""
    level = "DEBUG" if logging.getLogger().isEnabledFor(logging.DEBUG) else "WARNING"
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def _run_each(job, instance, keys: list, tags: dict | None = None, stop=None) -> list:
    """Run ``job`` per partition key with a progress line each ([i/n], a bar, elapsed, ETA); the
    keys that failed, and those not run because ``stop()`` said so before their turn."""
    failed, start = [], time.monotonic()
    for i, key in enumerate(keys, start=1):
        if stop is not None and stop():
            return failed + keys[i - 1 :]
        if not _run_one(job, instance, key, f"[{i}/{len(keys)}]", tags):
            failed.append(key)
        elapsed = time.monotonic() - start
        eta = elapsed / i * (len(keys) - i)
        if i < len(keys):
            print(
                f"  {'':<8}{job.name} {progress_bar(i, len(keys))} {i}/{len(keys)} done "
                f"in {elapsed:.0f}s, ETA {eta:.0f}s"
            )
    return failed


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """``[#####---------------]``: a plain-text bar (readable in logs and CI, no terminal tricks)."""
    filled = round(width * done / max(total, 1))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _run_one(job, instance, key: str | None, step: str = "", tags: dict | None = None) -> bool:
    start = time.monotonic()
    result = job.execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config=console_run_config(),
        tags={**run_tags(), **(tags or {})},
    )
    _report(step, key or job.name, result.success, time.monotonic() - start)
    if not result.success:
        _print_failures(result.all_events)
    return result.success


def _report(step: str, what: str, success: bool, seconds: float) -> None:
    status = "ok" if success else "FAILED"
    label = f"{step} " if step else ""
    print(f"  {label:<8}{what:<40} {status:>6}  {seconds:6.1f}s")


def _print_failures(events) -> None:
    for event in events:
        if event.is_step_failure:
            print(f"    {event.event_specific_data.error.message.strip()}", file=sys.stderr)


def _run_each_on_ray(
    ray: RayRuns, name: str, instance, keys: list, tags: dict | None = None, stop=None
) -> list:
    """Submit a run of job ``name`` per key at once (at most ``max_runs`` in flight), its steps
    executing on the cluster; a progress line as each ends, in the order they end. The keys
    that failed, and those whose run had not started when ``stop()`` said so.

    Each run's coordinator is a process of its own (spawned; it only tails the event log and
    submits steps): Dagster sets up a run's logging with ``logging.config.dictConfig``, which
    deadlocks against another run logging from a thread of the same process."""
    job = reconstructable_job(name, ray.resources, ray.execution)
    ref, config = instance.get_ref(), console_run_config()
    failed, start, total = [], time.monotonic(), len(keys)
    workers = min(ray.execution.max_runs, total)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = {pool.submit(_ray_run, job, ref, key, tags, config): key for key in keys}
        for i, future in enumerate(as_completed(runs), start=1):
            key = runs[future]
            if future.cancelled():
                failed.append(key)
                continue
            if stop is not None and stop():
                for waiting in runs:
                    waiting.cancel()
            success, seconds, events = future.result()
            _report(f"[{i}/{total}]", key or name, success, seconds)
            if not success:
                failed.append(key)
                _print_failures(events)
            if i < total:
                elapsed = time.monotonic() - start
                print(
                    f"  {'':<8}{name} {progress_bar(i, total)} {i}/{total} done in "
                    f"{elapsed:.0f}s, ETA {elapsed / i * (total - i):.0f}s",
                    flush=True,
                )
    return [k for k in keys if k in failed]


def _ray_run(job, ref, key: str | None, tags: dict | None, config: dict) -> tuple:
    """One run of the reconstructable ``job`` for ``key`` (its executor submits the steps to
    Ray), in this coordinator process: success, seconds, the run's events when it failed. The
    run's tags name this process (instance.run_tags), so a coordinator killed mid-run is
    failed at the CLI's next start."""
    start = time.monotonic()
    partition = {"dagster/partition": key} if key is not None else {}
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = dg.execute_job(
            job, instance, run_config=config, tags={**run_tags(), **(tags or {}), **partition}
        )
        events = [] if result.success else _step_events(instance, result.run_id)
    return result.success, time.monotonic() - start, events


def _step_events(instance, run_id: str) -> list:
    """The run's Dagster events from its event log (its steps wrote them from Ray's workers)."""
    return [r.dagster_event for r in instance.all_logs(run_id) if r.is_dagster_event]
