"""DataComp's suite through clip_benchmark: the demo's eval sets exported in its webdataset
layout give the same numbers as poolsieve's own evaluator (same model, same images)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from poolsieve.clip.model_configs import register_configs
from poolsieve.clip.models import LoadedClip
from poolsieve.curate.metrics import evaluate
from poolsieve.curate.suite import evaluate_suite, suite_tasks
from poolsieve_demo import WorldConfig, write_demo_world

SMALL = WorldConfig(
    trusted_samples=10, trusted_shard_size=10, eval_per_class=2, retrieval_images=30
)


def _add(tf, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _write_task(folder: Path, samples: list[dict], extra: dict[str, str]):
    (folder / "test").mkdir(parents=True)
    with tarfile.open(folder / "test" / "0.tar", "w") as tf:
        for i, sample in enumerate(samples):
            for suffix, data in sample.items():
                _add(tf, f"s{i:06d}.{suffix}", data)
    (folder / "test" / "nshards.txt").write_text("1\n")
    for name, text in extra.items():
        (folder / name).write_text(text)


def export_suite(eval_dir: Path, suite: Path) -> None:
    cls = eval_dir / "classification"
    labels = pq.read_table(cls / "labels.parquet").to_pylist()
    templates = [t.replace("{}", "{c}") for t in (cls / "templates.txt").read_text().splitlines()]
    _write_task(
        suite / "demo_classification",
        [{"png": (cls / r["file"]).read_bytes(), "cls": str(r["label"]).encode()} for r in labels],
        {
            "classnames.txt": (cls / "classnames.txt").read_text(),
            "zeroshot_classification_templates.txt": "\n".join(templates) + "\n",
        },
    )
    ret = eval_dir / "retrieval"
    captions: dict[str, list[str]] = {}
    for r in pq.read_table(ret / "captions.parquet").to_pylist():
        captions.setdefault(r["file"], []).append(r["caption"])
    _write_task(
        suite / "demo_retrieval",
        [
            {"png": (ret / f).read_bytes(), "txt": "\n".join(c).encode()}
            for f, c in captions.items()
        ],
        {"dataset_type.txt": "retrieval\n"},
    )


@pytest.fixture(scope="module")
def clip():
    import open_clip

    register_configs()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("poolsieve-tiny")
    tokenizer = open_clip.get_tokenizer("poolsieve-tiny")
    return LoadedClip(
        model.eval(), preprocess, tokenizer, torch.device("cpu"), "poolsieve-tiny", "", ""
    )


def test_clip_benchmark_reads_the_suite_and_agrees_with_our_metrics(tmp_path, clip):
    world = write_demo_world(tmp_path / "w", n_shards=1, rows_per_shard=60, config=SMALL)
    suite = tmp_path / "suite"
    export_suite(world.eval_dir, suite)
    (suite / "broken" / "test").mkdir(parents=True)
    (suite / "broken" / "test" / "nshards.txt").write_text("1\n")  # no tar: must be reported
    assert suite_tasks(suite) == ["broken", "demo_classification", "demo_retrieval"]
    calls = []
    result = evaluate_suite(clip, suite, batch_size=16, progress=lambda *a: calls.append(a))
    assert calls == [(1, 3), (2, 3), (3, 3)]  # one progress report per task, failed ones too
    ours = evaluate(clip, world.eval_dir).tasks
    cls, ret = result.tasks["demo_classification"], result.tasks["demo_retrieval"]
    assert cls["top1"] == pytest.approx(ours["classification"]["top1"])
    assert cls["mean_per_class_recall"] == pytest.approx(
        ours["classification"]["mean_per_class_recall"]
    )
    for k in (1, 5, 10):
        assert ret[f"image_retrieval_recall@{k}"] == pytest.approx(
            ours["retrieval"][f"text_to_image_recall@{k}"]
        )
        assert ret[f"text_retrieval_recall@{k}"] == pytest.approx(
            ours["retrieval"][f"image_to_text_recall@{k}"]
        )
    assert list(result.failed) == ["broken"]
    assert result.average == pytest.approx((cls["top1"] + ret["mean_recall@1"]) / 2)
