"""Metadata mode's "downloading follows selection", end to end on a small DataComp pool.

Three shards (20, 20 and 10 rows, with their .npz) whose URLs point at an HTTP server in this
process on 127.0.0.1 (allowlisted): every image path answers a small PNG, except two planted
``/missing/`` paths (404) among rows the ``basic`` filter keeps. The third shard's rows are kept
by neither chosen strategy (short non-English captions, no L/14 score) or dropped by URL dedup
(repeats of the first shard's URLs, which keep the .npz's L/14 rows checkable). Ingest per shard
(metadata_shard_job), then the runner's own curation loop (``_curate``) with
download_selection=selected for ``basic`` and ``clip_score_top30``: image clusters,
pool_features, every subset, download_selection, selected_images per shard, then train_shards,
a tiny CLIP (256 samples) and its evaluation per chosen strategy, and the leaderboard. The
server's request log is the proof that only the selected uids were fetched.
"""

from __future__ import annotations

import contextlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.partitions import STRATEGIES, register_shards
from poolsieve.pipelines.resources import resources_from_env
from poolsieve.pipelines.runner import Session, _curate

from poolsieve.audit.events import latest_record
from poolsieve.audit.why import explain_uid
from poolsieve.curate.strategies import pairs_to_uids, read_subset_npy
from poolsieve.images.optout import HOST_FILES
from poolsieve.images.selection import selection_path
from poolsieve.images.status import STATUS_FILE
from poolsieve_demo import WorldConfig
from poolsieve_demo.evalsets import draw_eval_images, write_eval_sets
from tests.conftest import row
from tests.datacomp_pool import write_shard

SHARDS = ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
CHOSEN = ["basic", "clip_score_top30"]
PLANTED_404 = {1, 104}  # English captions of three words or more: basic keeps them
ENGLISH = [
    "a photo of a red car parked on a quiet street",
    "golden retriever puppy playing in the grass",
    "modern kitchen with white cabinets and a wooden table",
    "close up of fresh strawberries in a bowl",
    "mountain lake at sunrise with mist over the water",
]


def _png(n: int, aged: str | None = None) -> bytes:
    """Image ``n`` (a disc on a ground); aged ``reencoded``: the same picture as a JPEG,
    ``replaced``: the picture turned upside down (another pHash: ~32 bits apart)."""
    color = (n * 37 % 256, n * 91 % 256, 120)
    image = Image.new("RGB", (64, 48), color)
    ImageDraw.Draw(image).ellipse((4, 4, 36, 40), fill=tuple(255 - c for c in color))
    if aged == "replaced":
        image = image.transpose(Image.Transpose.ROTATE_180)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if aged == "reencoded" else "PNG", quality=90)
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requested.append(self.path)
        aged = self.server.aged.get(self.path)
        if not self.path.startswith("/img/") or aged == "dead":
            self.send_error(404)
            return
        body = _png(int(self.path.rsplit("/", 1)[1].split(".")[0]), aged)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads, server.requested, server.aged = True, [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _pool(source_dir, base: str) -> dict[str, str]:
    """The three shards; uid -> the URL path of its image."""
    paths = {}
    for s, (shard, size) in enumerate(zip(SHARDS, [20, 20, 10], strict=True)):
        rows = []
        for i in range(size):
            n = s * 100 + i
            path = f"/{'missing' if n in PLANTED_404 else 'img'}/{n}.png"
            if s < 2:
                text = "IMG_2041.JPG" if i % 3 == 0 else ENGLISH[i % len(ENGLISH)]
                r = row(n, url=base + path, text=text)
            elif i < 5:  # repeats of the first shard's URLs: URL dedup drops them
                path = f"/img/{[0, 2, 3, 5, 6][i]}.png"
                r = row(n, url=base + path, text=ENGLISH[0])
            else:  # selected by neither strategy: basic needs English, top30 an L/14 score
                r = row(n, url=base + path, text="IMG_2041.JPG", clip_l14_similarity_score=None)
            paths[r["uid"]] = path
            rows.append(r)
        write_shard(source_dir / shard, rows, seed=300 + s)
    return paths


def _exemplars(tmp_path, source_dir):
    l14 = np.load(source_dir / "part-00001.npz")["l14_img"][:3].astype(np.float32)
    np.save(tmp_path / "exemplars.npy", l14)
    return tmp_path / "exemplars.npy"


def _checks(instance) -> dict[str, dg.AssetCheckEvaluation]:
    """Every check evaluation of every run, by 'asset[partition].check' (the latest wins)."""
    found = {}
    for run in reversed(instance.get_runs()):
        key = run.tags.get("dagster/partition", "")
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            e = entry.dagster_event.event_specific_data
            found[f"{e.asset_key.to_user_string()}[{key}].{e.check_name}"] = e
    return found


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("selection")
    source, lake_dir, eval_dir = tmp / "source", tmp / "lake", tmp / "eval"
    source.mkdir()
    config = WorldConfig(eval_per_class=1, retrieval_images=10)
    write_eval_sets(eval_dir, draw_eval_images(np.random.default_rng(2), config))
    with serving() as server, dg.instance_for_test() as instance:
        port = server.server_address[1]
        paths = _pool(source, f"http://127.0.0.1:{port}")
        resources = resources_from_env(
            env={},
            lake={"lake_dir": str(lake_dir), "source": str(source), "duckdb_threads": 2},
            curation={
                "mode": "metadata",
                "param_profile": "datacomp",
                "cluster_embeddings": "l14_img",
                "image_clusters": 4,
                "exemplar_dir": str(_exemplars(tmp, source)),
                "download_selection": "selected",
                "download_strategies": ",".join(CHOSEN),
            },
            downloader={"allowlist": [f"127.0.0.1:{port}"], "threads": 4, "timeout": 5.0},
            training={"samples": 256},
            embedding={"batch_size": 64, "workers": 1},
            eval_sets={"eval_dir": str(eval_dir)},
        )
        defs = build_defs(resources)
        register_shards(instance, resources.lake, SHARDS)
        job = defs.resolve_job_def("metadata_shard_job")
        for shard in SHARDS:
            assert job.execute_in_process(partition_key=shard, instance=instance).success
        selection = resources.curation.selection(STRATEGIES.get_partition_keys())
        failed = _curate(Session(defs, instance, resources.lake.store), True, selection)
        yield {
            "server": server,
            "defs": defs,
            "failed": failed,
            "lake": resources.lake.store,
            "paths": paths,
            "requested": list(server.requested),
            "instance": instance,
            "checks": _checks(instance),
        }


def _kept(lake, name: str) -> set[str]:
    return set(pairs_to_uids(read_subset_npy(lake.partition_dir("subset", name) / "subset.npy")))


def _status(lake) -> dict[str, dict]:
    rows = {}
    for shard in SHARDS:
        table = pq.read_table(lake.partition_dir("selected_images", shard) / STATUS_FILE)
        rows |= {r["uid"]: r for r in table.to_pylist()}
    return rows


@pytest.mark.timeout(1200)
def test_the_run_succeeds_with_the_planted_404s(curated):
    assert curated["failed"] == []


def test_only_the_union_of_the_chosen_subsets_is_selected_and_requested(curated):
    lake, paths = curated["lake"], curated["paths"]
    union = _kept(lake, "basic") | _kept(lake, "clip_score_top30")
    assert 0 < len(union) < len(paths)
    selection = pq.read_table(selection_path(lake)).to_pylist()
    assert {r["uid"] for r in selection} == union
    for r in selection:
        assert r["strategies"] == [n for n in CHOSEN if r["uid"] in _kept(lake, n)]
    images = set(curated["requested"]) - set(HOST_FILES.values())  # + the opt-out files, once
    assert images == {paths[u] for u in union}  # no other image fetched
    assert sorted(p for p in curated["requested"] if p in HOST_FILES.values()) == sorted(
        HOST_FILES.values()
    )
    assert set(_status(lake)) == union


def test_a_planted_404_is_recorded_per_uid(curated):
    status, paths = _status(curated["lake"]), curated["paths"]
    planted = {u for u, p in paths.items() if p.startswith("/missing/")}
    assert planted <= set(status)
    assert all(status[u]["status"] == "failed" for u in planted)
    assert all(status[u]["error_category"] == "http_404" for u in planted)
    assert all(r["status"] == "success" for u, r in status.items() if u not in planted)
    for u in planted:  # poolsieve why shows it
        (occurrence,) = explain_uid(curated["lake"], u)["occurrences"]
        assert (occurrence["download_status"], occurrence["download_error"]) == (
            "failed",
            "http_404",
        )


def test_a_shard_with_nothing_selected_materializes_with_zero_rows(curated):
    lake, instance = curated["lake"], curated["instance"]
    status = pq.read_table(lake.partition_dir("selected_images", SHARDS[2]) / STATUS_FILE)
    assert status.num_rows == 0
    meta = latest_record(instance, "selected_images", SHARDS[2]).metadata
    assert meta["rows_in"] == meta["success"] == meta["failed"] == 0
    assert curated["checks"][f"selected_images[{SHARDS[2]}].rows_conserved"].passed


def test_train_shards_warns_about_the_failed_downloads_and_training_runs(curated):
    lake, instance, checks = curated["lake"], curated["instance"], curated["checks"]
    planted = {u for u, p in curated["paths"].items() if p.startswith("/missing/")}
    for name in CHOSEN:
        kept = _kept(lake, name)
        meta = latest_record(instance, "train_shards", name).metadata
        assert meta["images_from"] == "selected_images"
        assert meta["samples"] == len(kept - planted)
        assert meta["missing_images"] == len(kept & planted)
        check = checks[f"train_shards[{name}].every_subset_uid_has_an_image"]
        assert check.severity == dg.AssetCheckSeverity.WARN
        assert check.passed == (not kept & planted)
        model = latest_record(instance, "clip_model", name).metadata
        assert model["trained"] and model["samples_seen"] == 256
        assert latest_record(instance, "evaluation", name) is not None
    basic = latest_record(instance, "train_shards", "basic").metadata
    assert basic["missing/http_404"] == len(PLANTED_404)
    assert latest_record(instance, "train_shards", "laion") is None  # not chosen: not trained
    assert latest_record(instance, "leaderboard", None) is not None


def test_pool_health_rechecks_the_selected_downloads_in_metadata_mode(curated):
    """The selected images of a shard (no shard_images in metadata mode) re-fetched after three
    of them aged: one dead, one re-encoded, one replaced; every other one alive."""
    lake, server = curated["lake"], curated["server"]
    downloaded = [u for u, r in _status(lake).items() if r["status"] == "success"]
    in_shard = set(
        pq.read_table(lake.partition_dir("selected_images", SHARDS[0]) / STATUS_FILE)[
            "uid"
        ].to_pylist()
    )
    aged = dict(
        zip(sorted(set(downloaded) & in_shard)[:3], ("dead", "reencoded", "replaced"), strict=True)
    )
    server.aged = {curated["paths"][u]: kind for u, kind in aged.items()}
    try:
        job = curated["defs"].resolve_job_def("health_job")
        run = job.execute_in_process(partition_key=SHARDS[0], instance=curated["instance"])
    finally:
        server.aged = {}
    assert run.success
    checks = pq.read_table(lake.partition_dir("pool_health", SHARDS[0]) / "checks.parquet")
    outcomes = {r["uid"]: r["outcome"] for r in checks.to_pylist()}
    assert set(outcomes) == set(downloaded) & in_shard  # the minimum (20) covers them all
    assert {u: outcomes[u] for u in aged} == {u: kind for u, kind in aged.items()}
    assert {outcomes[u] for u in set(outcomes) - set(aged)} == {"alive"}
