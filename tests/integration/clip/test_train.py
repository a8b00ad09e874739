"""Training config -> open_clip_train arguments (exact), the webdataset patch, and a smoke run."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest
from open_clip_train import data as trainer_data
from PIL import Image, ImageDraw

from poolsieve.clip.models import ScorerSpec, load_clip
from poolsieve.clip.offline import network_denied
from poolsieve.clip.train import (
    DATACOMP_SCALES,
    TrainConfig,
    TrainingFailed,
    planned_samples,
    resolve_precision,
    scale_config,
    train_clip,
    trainer_args,
)
from poolsieve.clip.train_log import parse_step
from poolsieve.clip.wds_patch import apply_wds_patch, tarfile_to_samples_nothrow

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 20),
}
SHAPES = ("square", "circle")


def _jpeg(color: str, shape: str, rng: random.Random) -> bytes:
    image = Image.new("RGB", (32, 32), (245, 245, 245))
    size = rng.randint(14, 26)
    x, y = rng.randint(0, 32 - size), rng.randint(0, 32 - size)
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "circle" else draw.rectangle)(
        [x, y, x + size, y + size], fill=COLORS[color]
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_shapes_shard(path: Path, count: int, seed: int) -> Path:
    """A webdataset shard of `count` 32 px colored shapes captioned "a red circle" etc."""
    rng = random.Random(seed)
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
            for ext, payload in (("jpg", _jpeg(color, shape, rng)), ("txt", f"a {color} {shape}")):
                payload = payload if isinstance(payload, bytes) else payload.encode()
                info = tarfile.TarInfo(f"{seed:02d}{i:06d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def test_tiny_cpu_maps_to_exact_trainer_args():
    config = scale_config("tiny-cpu", precision="fp32")
    assert trainer_args(config, "/d/{0..1}.tar", 512, "/runs", "scorer") == [
        "--train-data",
        "/d/{0..1}.tar",
        "--train-num-samples",
        "12800",
        "--dataset-type",
        "webdataset",
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--lr",
        "0.001",
        "--wd",
        "0.2",
        "--warmup",
        "20",
        "--lr-scheduler",
        "cosine",
        "--model",
        "poolsieve-tiny",
        "--precision",
        "fp32",
        "--workers",
        "1",
        "--seed",
        "0",
        "--logs",
        "/runs",
        "--name",
        "scorer",
        "--save-frequency",
        "1",
        "--log-every-n-steps",
        "1",
        "--report-to",
        "",
        "--dataset-resampled",
    ]


def test_datacomp_xlarge_maps_to_exact_trainer_args():
    config = scale_config("xlarge", precision="amp_bf16")
    args = trainer_args(config, ["/d/a.tar", Path("/d/b.tar")], 10**9, "/runs", "xl")
    assert args == [
        "--train-data",
        "/d/a.tar::/d/b.tar",
        "--train-num-samples",
        "2560000000",
        "--dataset-type",
        "webdataset",
        "--batch-size",
        "90112",
        "--epochs",
        "5",
        "--lr",
        "0.001",
        "--wd",
        "0.2",
        "--warmup",
        "10000",
        "--lr-scheduler",
        "cosine",
        "--model",
        "ViT-L-14",
        "--precision",
        "amp_bf16",
        "--workers",
        "4",
        "--seed",
        "0",
        "--logs",
        "/runs",
        "--name",
        "xl",
        "--save-frequency",
        "1",
        "--log-every-n-steps",
        "100",
        "--report-to",
        "",
        "--beta2",
        "0.95",
        "--dataset-resampled",
    ]


def test_datacomp_scales_follow_the_benchmark():
    table = {
        name: (c.model, c.batch_size, c.lr, c.warmup, c.samples_seen, c.wd)
        for name, c in DATACOMP_SCALES.items()
    }
    assert table == {
        "small": ("ViT-B-32", 4096, 5e-4, 500, 12_800_000, 0.2),
        "medium": ("ViT-B-32", 4096, 5e-4, 500, 128_000_000, 0.2),
        "large": ("ViT-B-16", 8192, 5e-4, 500, 1_280_000_000, 0.2),
        "xlarge": ("ViT-L-14", 90112, 1e-3, 10_000, 12_800_000_000, 0.2),
    }


def test_without_a_budget_an_epoch_is_one_pass_of_the_data():
    config = TrainConfig(epochs=3, precision="fp32")
    args = trainer_args(config, "/d/0.tar", 1000, "/runs", "x")
    assert args[args.index("--train-num-samples") + 1] == "1000"
    assert args[args.index("--epochs") + 1] == "3"


def test_precision_auto_is_fp32_on_cpu_and_bf16_on_cuda():
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("auto", cuda=True) == "amp_bf16"
    assert resolve_precision("amp", cuda=False) == "amp"


def test_planned_samples_round_up_to_whole_batches_per_worker():
    assert planned_samples(TrainConfig(samples_seen=1000, workers=0), 5) == 16 * 64
    assert planned_samples(TrainConfig(samples_seen=1000, workers=3), 5) == 18 * 64
    assert planned_samples(TrainConfig(samples_seen=1000, epochs=2, workers=1), 5) == 2 * 8 * 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_key": "image"}, "reads webdataset images"),
        ({"text_key": "caption"}, "reads webdataset images"),
    ],
)
def test_keys_the_trainer_cannot_read_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        trainer_args(TrainConfig(**change), "/d/0.tar", 10, "/runs", "x")


def test_empty_data_and_unknown_scales_are_refused():
    with pytest.raises(ValueError, match="empty"):
        trainer_args(TrainConfig(), "/d/0.tar", 0, "/runs", "x")
    with pytest.raises(ValueError, match="unknown scale"):
        scale_config("huge")


def test_a_trainer_log_line_parses_exactly():
    line = (
        "2026-11-25,22:20:45 | INFO | Train Epoch: 1 [ 640/2560 (25%)] Data (t): 0.062 "
        "Batch (t): 0.346, 185.123/s, 185.123/s/gpu LR: 0.001000 Logit Scale: 14.317 "
        "Contrastive_loss: 2.7698 (3.2686) Loss: 2.7698 (3.2686)"
    )
    step = parse_step(line)
    assert (step.epoch, step.epoch_samples, step.epoch_size) == (1, 640, 2560)
    assert (step.samples_per_s, step.loss, step.samples_seen) == (185.123, 2.7698, 3200)
    assert parse_step("2026-11-25,22:20:17 | INFO | Start epoch 0") is None


def test_unpatched_trainer_fails_on_tar_input_and_the_patch_reads_it(tmp_path, monkeypatch):
    """Why wds_patch exists: open_clip_train 3.3.0 + webdataset 0.2.111 raise KeyError: 'fname'."""
    shard = str(write_shapes_shard(tmp_path / "0.tar", 5, seed=0))
    with pytest.raises(KeyError, match="fname"):
        list(trainer_data.tarfile_to_samples_nothrow([{"url": shard}]))
    samples = list(tarfile_to_samples_nothrow([{"url": shard}]))
    assert [sorted(k for k in s if not k.startswith("__")) for s in samples] == [["jpg", "txt"]] * 5

    monkeypatch.setattr(
        trainer_data, "tarfile_to_samples_nothrow", trainer_data.tarfile_to_samples_nothrow
    )
    assert apply_wds_patch() and apply_wds_patch()
    assert trainer_data.tarfile_to_samples_nothrow is tarfile_to_samples_nothrow


def test_tiny_clip_trains_offline_and_its_checkpoint_loads(tmp_path):
    """Smoke run on 384 synthetic pairs in two shards; the subprocess denies itself the network."""
    shards = [write_shapes_shard(tmp_path / f"{i}.tar", 192, seed=i) for i in range(2)]
    config = TrainConfig(samples_seen=24 * 64, warmup=4, workers=0, precision="fp32")
    reports = []

    result = train_clip(config, shards, 384, tmp_path / "runs", "smoke", progress=reports.append)

    losses = [loss for _, loss in result.losses]
    assert [step for step, _ in result.losses] == list(range(1, 25))
    assert sum(losses[-5:]) / 5 < sum(losses[:3]) / 3 - 0.5, losses
    assert result.samples_seen == planned_samples(config, 384) == 24 * 64
    assert result.checkpoint_path == tmp_path / "runs" / "smoke" / "checkpoints" / "epoch_1.pt"
    assert not (tmp_path / "runs" / ".partial" / "smoke").exists()
    assert [r.step for r in reports] == list(range(1, 25))
    assert reports[-1].eta_s == 0 and reports[-1].total_steps == 24
    assert "NetworkDenied" not in result.log_path.read_text()
    with network_denied():
        loaded = load_clip(ScorerSpec("poolsieve-tiny", str(result.checkpoint_path)), "cpu")
    assert not loaded.model.training


def test_a_failing_run_raises_with_the_trainer_output_and_leaves_no_run(tmp_path):
    shard = write_shapes_shard(tmp_path / "0.tar", 8, seed=0)
    config = TrainConfig(model="no-such-arch", samples_seen=64, workers=0, precision="fp32")
    with pytest.raises(TrainingFailed, match="no-such-arch"):
        train_clip(config, shard, 8, tmp_path / "runs", "broken")
    assert not (tmp_path / "runs" / "broken").exists()


def test_the_same_seed_trains_the_same_weights_and_another_seed_does_not(tmp_path):
    """open_clip_train's sample shuffle was seeded from the clock (wds_patch pins it to --seed):
    the demo's scorer, and so every CLIP-score subset, changed from run to run."""
    import torch

    shards = [write_shapes_shard(tmp_path / f"{i}.tar", 96, seed=i) for i in range(2)]

    def run(name: str, seed: int):
        config = TrainConfig(samples_seen=4 * 64, warmup=2, workers=1, precision="fp32", seed=seed)
        result = train_clip(config, shards, 192, tmp_path / "runs", name)
        weights = torch.load(result.checkpoint_path, map_location="cpu")["state_dict"]
        return result.losses, weights

    (losses, weights), (losses_again, weights_again) = run("a", 0), run("b", 0)
    assert losses == losses_again
    assert weights.keys() == weights_again.keys()
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)
    assert run("c", 1)[0] != losses
