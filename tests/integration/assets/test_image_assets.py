"""The image stages as Dagster assets, end to end on a small demo world served on loopback.

One module-scoped run (tests/image_world.py): the scorer, the main per-shard job for every shard
and pool_features. The tests score each stage against the world's ground truth.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from poolsieve.pipelines.jobs import SHARD_ASSETS
from poolsieve.pipelines.partitions import SHARDS

from poolsieve.audit.report import lake_counts
from poolsieve.clip.npz import check_alignment, read_npz
from poolsieve.images.download import outcome_counts
from poolsieve.images.status import STATUS_FILE
from poolsieve_demo.compare import image_duplicate_rates, near_duplicate_rates, removal_rates
from poolsieve_demo.server import health
from tests.image_world import make_resources, run_job, run_world, shard_digests

_resources, _run = make_resources, run_job


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    with dg.instance_for_test() as instance:
        yield run_world(tmp_path_factory.mktemp("images") / "lake", instance)


def _metadata(result, asset: str) -> dict:
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset
    )
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def _checks(result) -> dict[str, bool]:
    return {
        f"{e.asset_key.path[-1]}.{e.check_name}": e.passed
        for e in (ev.event_specific_data for ev in result.all_events)
        if isinstance(e, dg.AssetCheckEvaluation)
    }


def test_every_run_succeeds_with_every_check_passing(pipeline):
    for name, result in pipeline["runs"].items():
        assert result.success, name
        assert all(_checks(result).values()), (name, _checks(result))
    shard_run = pipeline["runs"][pipeline["world"].truth["shards"][0]]
    assert {e.asset_key.path[-1] for e in shard_run.get_asset_materialization_events()} == set(
        SHARD_ASSETS
    )


def test_download_outcomes_match_the_planted_truth_per_shard(pipeline):
    truth = pipeline["world"].truth["download"]["per_shard"]
    for shard, want in truth.items():
        meta = _metadata(pipeline["runs"][shard], "shard_images")
        errors = {k.split("/", 1)[1]: v for k, v in meta.items() if k.startswith("errors/") and v}
        got = outcome_counts(errors, meta["success"])
        assert got == {k: v for k, v in want.items() if v}, shard
        assert meta["rows_in"] == meta["success"] + meta["failed"]
        assert meta["success_rate"] == pytest.approx(meta["success"] / meta["rows_in"])


def test_every_kept_row_has_one_status_and_the_redirect_was_refused(pipeline):
    lake, world = pipeline["lake"], pipeline["world"]
    for shard in world.truth["shards"]:
        status = pq.read_table(lake.partition_dir("shard_images", shard) / STATUS_FILE)
        decisions = pq.read_table(lake.partition_dir("url_dedup", shard) / "decisions.parquet")
        kept = {r["uid"] for r in decisions.to_pylist() if r["keep"]}
        assert sorted(status.column("uid").to_pylist()) == sorted(kept)
    planted = [p for p in world.truth["problems"] if p["kind"] == "redirect_private"]
    by_uid = _status_by_uid(lake, world)
    assert planted and all(
        by_uid[p["uid"]]["error_category"] == "blocked_redirect" for p in planted
    )


def _status_by_uid(lake, world) -> dict[str, dict]:
    rows = {}
    for shard in world.truth["shards"]:
        path = lake.partition_dir("shard_images", shard) / STATUS_FILE
        rows |= {r["uid"]: r for r in pq.read_table(path).to_pylist()}
    return rows


def test_scorer_trained_offline_and_recorded_its_weights(pipeline):
    meta = _metadata(pipeline["runs"]["scorer"], "scorer")
    assert meta["origin"] == "trained" and meta["arch"] == "poolsieve-tiny"
    weights = Path(meta["weights"]).read_bytes()
    assert hashlib.sha256(weights).hexdigest() == meta["weights_sha256"]
    assert meta["samples_seen"] >= 256 and meta["trusted_samples"] == 200
    recorded = json.loads((pipeline["lake"].root / "scorer" / "scorer.json").read_text())
    assert recorded["weights_sha256"] == meta["weights_sha256"]


def test_embeddings_cover_every_download_and_the_npz_is_aligned(pipeline):
    lake, world = pipeline["lake"], pipeline["world"]
    status = _status_by_uid(lake, world)
    for shard in world.truth["shards"]:
        out = lake.partition_dir("clip_embeddings", shard)
        emb = pq.read_table(out / "embeddings.parquet").to_pylist()
        downloaded = {u for u, r in status.items() if r["status"] == "success"}
        shard_uids = {r["uid"] for r in emb}
        assert shard_uids <= downloaded
        metadata = lake.partition_dir("pool_shard", shard) / "rows.parquet"
        assert check_alignment(out / "embeddings.npz", metadata) == []
        arrays = read_npz(out / "embeddings.npz")
        score = dict(
            zip(arrays["uid"].tolist(), arrays["poolsieve_tiny_score"].tolist(), strict=True)
        )
        assert all(np.isnan(score[u]) for u in set(score) - shard_uids)
        assert all(score[r["uid"]] == pytest.approx(r["clip_score"]) for r in emb)
        meta = _metadata(pipeline["runs"][shard], "clip_embeddings")
        assert meta["embedded"] == len(emb) and meta["device"] == "cpu"


def test_decontamination_finds_the_planted_copies(pipeline):
    world = pipeline["world"]
    rates = near_duplicate_rates(pipeline["lake"].root, world.truth_path)
    assert rates.near_duplicates == len(world.truth["eval_near_duplicates"]) == 30
    assert rates.recall >= 0.95
    assert rates.false_flag_rate <= 0.01


def test_a_copy_names_the_eval_image_it_copies(pipeline):
    lake, world = pipeline["lake"], pipeline["world"]
    found = {}
    for shard in world.truth["shards"]:
        path = lake.partition_dir("eval_decontamination", shard) / "decontamination.parquet"
        found |= {r["uid"]: r for r in pq.read_table(path).to_pylist()}
    hits = [
        d
        for d in world.truth["eval_near_duplicates"]
        if found[d["uid"]]["flagged"] and d["eval_key"] in found[d["uid"]]["nearest_eval"]
    ]
    assert len(hits) >= 0.95 * len(world.truth["eval_near_duplicates"])


def _near_duplicate_rows(lake) -> dict[str, dict]:
    rows = pq.read_table(lake.asset_files("near_duplicates", "near_duplicates.parquet"))
    return {r["uid"]: r for r in rows.to_pylist() if r["rule"] == "phash"}


def _pool_order(lake, shards: list[str]) -> dict[str, tuple[int, int]]:
    """uid -> (shard's place in pool order, row_idx)."""
    place = {}
    for i, shard in enumerate(shards):
        rows = pq.read_table(lake.partition_file("pool_shard", shard, "rows.parquet"))
        place |= {r["uid"]: (i, r["row_idx"]) for r in rows.select(["uid", "row_idx"]).to_pylist()}
    return place


def _phashes(lake) -> dict[str, int]:
    table = pq.read_table(lake.asset_files("image_hashes", "hashes.parquet"))
    return {r["uid"]: r["phash"] for r in table.to_pylist() if r["phash"] is not None}


def test_near_duplicates_drop_the_planted_copies_each_naming_an_earlier_image(pipeline):
    """Every planted copy whose pHash is within the distance of its source's is dropped, naming
    an earlier image within that distance (nearly always its source); against the truth:
    recall and false drops."""
    lake, world = pipeline["lake"], pipeline["world"]
    limit = pipeline["resources"].curation.phash_max_distance
    dropped, phash = _near_duplicate_rows(lake), _phashes(lake)
    copies = world.truth["image_near_duplicates"]
    assert len(copies) == 16

    def bits(a: str, b: str) -> int:
        return bin((phash[a] ^ phash[b]) & (2**64 - 1)).count("1")

    close = [c for c in copies if bits(c["uid"], c["duplicate_of"]) <= limit]
    assert len(close) >= len(copies) // 2  # the perturbations pHash tolerates
    place = _pool_order(lake, world.truth["shards"])
    for copy in close:
        named = dropped[copy["uid"]]["duplicate_of"]
        assert bits(copy["uid"], named) <= limit
        assert place[named] < place[copy["uid"]]
    rates = image_duplicate_rates(lake.root, world.truth_path)
    assert rates["phash"]["recall"] >= 0.5
    assert rates["phash"]["found_with_right_source"] >= 0.9 * len(close)
    assert rates["phash"]["false_drop_rate"] <= 0.02
    # the demo's semantic rule on the copy features (poolsieve_demo.resources.SEMANTIC_DEDUP)
    # takes the copies pHash misses (a few-pixel shift): every planted copy is dropped
    assert rates["all"]["found"] == rates["all"]["planted"] == len(copies)
    assert rates["all"]["found_with_right_source"] >= 0.9 * len(copies)
    assert rates["semantic"]["false_drop_rate"] <= 0.03
    assert rates["semantic"]["on"] is True  # the demo turns it on


def test_image_hashes_keep_the_served_bytes_sha256(pipeline):
    """The downloader may re-encode an image; image_hashes' sha256 is of the bytes served (the
    world's metadata sha256 is set to them), stored_sha256 of the bytes kept."""
    lake, served = pipeline["lake"], {}
    for shard in pipeline["world"].truth["shards"]:  # pool order: a uid's first row was fetched
        rows = pq.read_table(lake.partition_file("pool_shard", shard, "rows.parquet"))
        for r in rows.select(["uid", "sha256"]).to_pylist():
            served.setdefault(r["uid"], r["sha256"])
    hashes = pq.read_table(lake.asset_files("image_hashes", "hashes.parquet")).to_pylist()
    decoded = [h for h in hashes if h["error"] is None]
    assert decoded and all(h["sha256"] == served[h["uid"]] for h in decoded)
    assert any(h["stored_sha256"] != h["sha256"] for h in decoded)  # re-encoded ones exist


def test_the_planted_takedown_requests_are_removed_each_by_its_entry(pipeline):
    rates = removal_rates(pipeline["lake"].root, pipeline["world"].truth_path)
    assert rates["planted"] == 16  # 2 per kind per shard
    assert rates["found"] == rates["right_entry"] == rates["planted"]
    assert {k: f for k, (f, _) in rates["found_by_kind"].items()} == dict.fromkeys(
        ("uid", "url", "sha256", "phash"), 4
    )
    # a sha256 entry matches the pool's metadata, so the row is refused before its download:
    # no image of it is ever kept to match
    assert "sha256_metadata" in rates["target_matched_on"]
    assert "sha256_image" not in rates["target_matched_on"]


def test_lake_counts_match_the_truth(pipeline):
    counts = lake_counts(pipeline["lake"].root)
    truth = pipeline["world"].truth
    assert counts["download"] == {k: v for k, v in truth["download"]["expected"].items() if v}
    assert counts["embedded"]["rows"] == counts["download"]["success"]


def test_demo_server_is_stopped_after_the_runs(pipeline):
    assert health(pipeline["world"].base_url) is None


def test_rematerializing_one_shard_leaves_every_other_shards_files_byte_identical(pipeline):
    lake, world = pipeline["lake"], pipeline["world"]
    first, second = world.truth["shards"]
    before = shard_digests(lake, SHARD_ASSETS, second)
    assert {k.split("/")[0] for k in before} == set(SHARD_ASSETS)  # every per-shard asset wrote
    old_status = (lake.partition_dir("shard_images", first) / STATUS_FILE).stat().st_mtime_ns
    result = _run(pipeline["defs"], pipeline["instance"], "shard_job", first)
    assert result.success
    assert shard_digests(lake, SHARD_ASSETS, second) == before
    assert (lake.partition_dir("shard_images", first) / STATUS_FILE).stat().st_mtime_ns > old_status
    assert not list((lake.root / "shard_images").glob(".*.tmp"))


def test_embedding_without_a_scorer_fails_with_a_clear_message(tmp_path):
    from poolsieve.assets.clip_embeddings import clip_embeddings

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SHARDS.name, ["s.parquet"])
        result = dg.materialize(
            [clip_embeddings],
            partition_key="s.parquet",
            instance=instance,
            resources=_resources(tmp_path / "lake").as_dict(),
            raise_on_error=False,
        )
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "materialize the scorer asset first" in str(failure.event_specific_data.error.message)


def test_pool_features_has_one_row_per_uid_and_passes_its_yaml_tests(pipeline):
    from poolsieve.sqlrunner import SqlProject, column_test_failures

    resources, world = pipeline["resources"], pipeline["world"]
    with resources.lake.connect() as conn:
        model = SqlProject().model("pool_features")
        assert column_test_failures(conn, model, "pool_features") == []
        reasons = dict(
            conn.execute(
                "SELECT coalesce(ineligible_reason, 'eligible'), count(*) FROM pool_features GROUP BY 1"
            ).fetchall()
        )
        english = conn.execute(
            "SELECT count(*) FILTER (WHERE language = 'en'), count(*) FROM pool_features"
        ).fetchall()[0]
    counts = lake_counts(pipeline["lake"].root)
    failed = sum(counts["download"].values()) - counts["download"]["success"]
    removed = counts["download"].get("removed", 0)  # takedown targets refused before download
    # a shard downloaded again (an earlier test here) also refuses its pHash targets, whose
    # image hashes are known by then
    phash = sum(e["kind"] == "phash" for e in world.truth["takedown"]["entries"])
    assert 0 < world.truth["download"]["expected"]["removed"] <= removed
    assert removed <= world.truth["download"]["expected"]["removed"] + phash
    assert reasons["download_failed"] + reasons["opted_out"] + removed == failed
    assert reasons["opted_out"] == counts["download"]["opted_out"]
    assert reasons["opted_out"] == world.truth["download"]["expected"]["opted_out"]
    assert reasons["eval_near_duplicate"] == counts["decontamination"]["flagged"]
    assert sum(reasons.values()) == counts["dedup"]["keep"] + counts["dedup"]["duplicate_url"]
    planted = world.truth["problem_counts"]["non_english_caption"]
    assert english[1] - english[0] >= planted  # every planted foreign caption (and a few more)


def test_why_traces_a_dead_link_and_a_duplicate_and_passes_its_yaml_tests(pipeline):
    import duckdb

    from poolsieve.audit.why import _register, explain_uid
    from poolsieve.sqlrunner import SqlProject, column_test_failures

    lake, world = pipeline["lake"], pipeline["world"]
    dead = next(p for p in world.truth["problems"] if p["kind"] == "http_404")
    doc = explain_uid(lake, dead["uid"], pipeline["instance"])
    (row,) = doc["occurrences"]
    assert (row["shard"], row["row_idx"]) == (dead["shard"], dead["row"])
    assert row["dedup_keep"] and row["download_error"] == "http_404"
    assert row["ineligible_reason"] == "download_failed"
    assert doc["versions"][f"shard_images[{dead['shard']}]"]["code_version"]
    decisions = pq.read_table(lake.partition_dir("url_dedup", dead["shard"]) / "decisions.parquet")
    dup = next(r for r in decisions.to_pylist() if r["reason"] == "duplicate_url")
    (dup_row,) = explain_uid(lake, dup["uid"])["occurrences"]
    assert (
        dup_row["dedup_reason"] == "duplicate_url"
        and dup_row["duplicate_of"] == dup["duplicate_of"]
    )
    project = SqlProject()
    with duckdb.connect() as conn:
        _register(conn, lake)
        sources = {
            n: n
            for n in [
                "rows",
                "quarantine",
                "decisions",
                "download_status",
                "embeddings",
                "decontamination",
                "pool_features",
                "subset_decisions",
            ]
        }
        project.run(conn, ["uid_occurrences", "uid_strategies"], sources, {"uid": dead["uid"]})
        for name in ("uid_occurrences", "uid_strategies"):
            assert column_test_failures(conn, project.model(name), name) == []


def test_every_planted_opt_out_is_ineligible_by_its_own_signal_and_why_shows_it(pipeline):
    from poolsieve.audit.why import explain_uid, format_explanation

    lake, world = pipeline["lake"], pipeline["world"]
    optouts = world.truth["optouts"]
    with pipeline["resources"].lake.connect() as conn:
        rows = conn.execute(
            "SELECT uid, ineligible_reason, optout_signal FROM pool_features "
            "WHERE optout_signal IS NOT NULL OR ineligible_reason = 'opted_out'"
        ).fetchall()
    got = {uid: (reason, signal) for uid, reason, signal in rows}
    want = {u: ("opted_out", s) for s, uids in optouts["signals"].items() for u in uids}
    assert got == want and want  # every planted row, by its signal; no control, no other row
    uid = optouts["signals"]["robots_txt"][0]
    doc = explain_uid(lake, uid)
    text = format_explanation(doc)
    assert "(opted_out: robots_txt: Disallow: " in text  # the category said once
    answers = {s["signal"]: s["answer"] for s in doc["optout_signals"]}
    assert answers == {"robots_txt": "disallowed", "tdmrep_json": "allowed", "ai_txt": "allowed"}
    assert "    robots_txt: OPTED OUT: Disallow: " in text
    kept = optouts["controls"]["x_robots_tag_noindex"][0]
    answers = {s["signal"]: s["answer"] for s in explain_uid(lake, kept)["optout_signals"]}
    assert answers == dict.fromkeys(
        ("robots_txt", "tdmrep_json", "ai_txt", "x_robots_tag", "tdm_reservation"), "allowed"
    )
