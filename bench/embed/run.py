"""Embedding benchmark: the full path (tar read, decode, preprocess, forward) vs the model alone.

    .venv/bin/python bench/embed/run.py [--models tiny,ViT-B-32] [--n-tiny 4096] [--n-b32 256]
        [--configs 2x1,2x2,1x1] [--repeat 3] [--no-draft-row] [--quiet-wait 120]

Writes a synthetic img2dataset-style webdataset first (random shape scenes with noise, 256-512 px
per side, JPEG q90, cached in bench/embed/data/), then for each model measures, in ONE process:

- model only: ``embed_batch`` (the pipeline's own forward: encode_image + encode_text, normalize,
  score) on preallocated tensors, same batch size, as many images as the dataset, 2 threads;
- pipeline: ``embed_webdataset`` over the tars, wall time of the whole call (tar index, worker
  start-up, decode, forward), for each ``THREADSxWORKERS`` config.

Model-only and pipeline runs alternate (``--repeat`` pairs) so drift on a shared machine hits
both, each pair after waiting (``--quiet-wait``) for other jobs to go quiet. Other jobs only
ever slow a run down, so the table leads with the best run of each kind (medians in brackets). Efficiency = pipeline rate / model-only rate (2 threads, the best the model alone does
here). Ceiling = the efficiency possible when decoding shares the model's cores: model core-ms /
(model core-ms + worker CPU ms) per image, the worker's CPU time measured on one thread.
Results: markdown table on stdout, JSON in bench/embed/out/results-<models>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import open_clip  # noqa: E402

from poolsieve.clip.encode import (  # noqa: E402
    DecodedSamples,
    embed_batch,
    embed_webdataset,
    index_tar,
    model_image_size,
)
from poolsieve.clip.model_configs import register_configs  # noqa: E402

TINY_NAME = "poolsieve-tiny"  # the demo's scorer architecture (poolsieve/clip/configs/)
BATCH = {TINY_NAME: 256, "ViT-B-32": 64}
SHARD_SIZE = 1000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,ViT-B-32")
    parser.add_argument("--n-tiny", type=int, default=4096, help="images for the tiny model")
    parser.add_argument("--n-b32", type=int, default=256, help="images for ViT-B-32")
    parser.add_argument(
        "--configs", default="2x1,2x2,1x1", help="torch threads x DataLoader workers"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="model-only/pipeline pairs per config"
    )
    parser.add_argument("--no-draft-row", action="store_true", help="skip the full-decode row")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each pair, wait up to this many s for other load to drop below --quiet-cpu",
    )
    parser.add_argument("--quiet-cpu", type=float, default=15.0, help="percent of all cores")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument(
        "--tars",
        default="",
        help="glob of real img2dataset tars to use instead of the synthetic set "
        "(e.g. lake/shard_images/*/*.tar after make demo)",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE / "out")
    return parser.parse_args(argv)


# --- the synthetic webdataset ---


def _scene(rng: np.random.Generator) -> bytes:
    """A 256-512 px scene of shapes with pixel noise, so JPEGs are web-sized (~40-60 kB)."""
    w, h = (int(v) for v in rng.integers(256, 513, 2))
    image = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = [x0, y0, x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))]
        draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    noisy = np.asarray(image, np.int16) + rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def write_dataset(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """img2dataset layout: NNNNNNNN.tar of {key}.jpg/.txt/.json; reused when already written."""
    manifest = folder / f"manifest-{n}-{seed}.json"
    if manifest.exists():
        return [Path(p) for p in json.loads(manifest.read_text())]
    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = np.random.default_rng(seed), []
    for shard, start in enumerate(range(0, n, SHARD_SIZE)):
        path = folder / f"{n}-{seed}-{shard:08d}.tar"
        with tarfile.open(path, "w") as tf:
            for i in range(start, min(n, start + SHARD_SIZE)):
                key = f"{shard:04d}{i - start:05d}"
                _add(tf, f"{key}.jpg", _scene(rng))
                _add(tf, f"{key}.txt", f"a photo of {i % 7} round shapes".encode())
                _add(tf, f"{key}.json", json.dumps({"uid": f"{i:032x}", "key": key}).encode())
        paths.append(path)
    manifest.write_text(json.dumps([str(p) for p in paths]))
    return paths


# --- measurements ---


def load_model(name: str):
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def model_only_rate(model, tokenizer, n: int, batch: int) -> float:
    """Images/s of embed_batch on preallocated tensors, ceil(n / batch) batches."""
    size = model_image_size(model)
    images = torch.randn(batch, 3, size, size)
    tokens = tokenizer([f"a photo of {i % 7} round shapes" for i in range(batch)])
    device = torch.device("cpu")
    steps = -(-n // batch)
    start = time.perf_counter()
    for _ in range(steps):
        embed_batch(model, images, tokens, device)
    return steps * batch / (time.perf_counter() - start)


def pipeline_rate(tars, model, preprocess, tokenizer, batch: int, workers: int, draft: bool):
    start = time.perf_counter()
    result = embed_webdataset(
        tars,
        model,
        preprocess,
        tokenizer,
        batch_size=batch,
        num_workers=workers,
        device="cpu",
        jpeg_draft=draft,
    )
    return len(result) / (time.perf_counter() - start)


def worker_cost_ms(tars, model, preprocess, tokenizer, draft: bool, n: int = 300) -> float:
    """CPU ms per sample of the worker's job (read, decode, preprocess, tokenize), one thread.

    CPU time, not wall time, so other load on the machine barely moves it.
    """
    samples = index_tar(tars[0], {})[:n]
    dataset = DecodedSamples(
        samples, preprocess, tokenizer, model_image_size(model) if draft else None
    )
    start = time.process_time()
    for i in range(len(samples)):
        dataset[i]
    dataset.close()
    return (time.process_time() - start) / len(samples) * 1e3


def wait_for_quiet(max_wait_s: float, max_cpu: float) -> float:
    """Wait (up to ``max_wait_s``) until the machine's CPU use over 1 s is below ``max_cpu`` %.

    The machine is shared; a pair measured while another job runs says little. Returns the CPU
    percent last seen, recorded with the pair.
    """
    deadline = time.monotonic() + max_wait_s
    busy = psutil.cpu_percent(interval=1.0)
    while busy > max_cpu and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


def measure(tars, n, loaded, batch, threads, workers, draft, args) -> dict:
    """Alternating model-only (2 threads) / pipeline (``threads``) pairs; medians."""
    model, preprocess, tokenizer = loaded
    alone, piped, busy = [], [], []
    for _ in range(args.repeat):
        busy.append(wait_for_quiet(args.quiet_wait, args.quiet_cpu))
        torch.set_num_threads(2)
        alone.append(model_only_rate(model, tokenizer, n, batch))
        torch.set_num_threads(threads)
        piped.append(pipeline_rate(tars, model, preprocess, tokenizer, batch, workers, draft))
    torch.set_num_threads(2)
    model_rate, pipe_rate = statistics.median(alone), statistics.median(piped)
    model_ms = 2 * 1000 / max(alone)  # core-ms per image, the model alone on both cores (best run)
    decode_ms = worker_cost_ms(tars, model, preprocess, tokenizer, draft)
    return {
        "worker_cpu_ms": round(decode_ms, 3),
        "model_core_ms": round(model_ms, 3),
        "ceiling": round(model_ms / (model_ms + decode_ms), 3),
        "load_average": os.getloadavg()[0],
        "cpu_busy_before_pairs": busy,
        "threads": threads,
        "workers": workers,
        "jpeg_draft": draft,
        "batch": batch,
        "model_only_img_s": round(model_rate, 1),
        "pipeline_img_s": round(pipe_rate, 1),
        "efficiency": round(pipe_rate / model_rate, 3),
        "model_only_best": round(max(alone), 1),
        "pipeline_best": round(max(piped), 1),
        "efficiency_best": round(max(piped) / max(alone), 3),
        "model_only_runs": [round(r, 1) for r in alone],
        "pipeline_runs": [round(r, 1) for r in piped],
    }


def bench_model(name: str, tars, n: int, args) -> list[dict]:
    loaded = load_model(name)
    batch = BATCH[name]
    model_only_rate(loaded[0], loaded[2], batch, batch)  # warm-up
    rows = []
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    for threads, workers in configs:
        rows.append(measure(tars, n, loaded, batch, threads, workers, True, args))
        print(name, rows[-1], flush=True)
    if not args.no_draft_row:
        threads, workers = configs[0]
        rows.append(measure(tars, n, loaded, batch, threads, workers, False, args))
        print(name, rows[-1], flush=True)
    return [dict(r, model=name, images=n) for r in rows]


def real_tars(pattern: str) -> tuple[list[Path], int]:
    tars = sorted(Path(p) for p in glob.glob(pattern))
    if not tars:
        raise SystemExit(f"no tars match {pattern}")
    return tars, sum(len(index_tar(t, {})) for t in tars)


def markdown(rows: list[dict]) -> str:
    head = (
        "| model | batch | threads x workers | JPEG draft | model only img/s best (median) "
        "| pipeline img/s best (median) | efficiency best (median) | worker CPU ms/img | ceiling |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']}x{r['workers']} | "
            f"{'yes' if r['jpeg_draft'] else 'no'} | {r['model_only_best']} ({r['model_only_img_s']}) | "
            f"{r['pipeline_best']} ({r['pipeline_img_s']}) | "
            f"{r['efficiency_best']:.0%} ({r['efficiency']:.0%}) | {r['worker_cpu_ms']} | "
            f"{r['ceiling']:.0%} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    names = [TINY_NAME if m == "tiny" else m for m in args.models.split(",")]
    rows = []
    register_configs()
    for name in names:
        n = args.n_tiny if name == TINY_NAME else args.n_b32
        if args.tars:
            tars, n = real_tars(args.tars)
        else:
            tars = write_dataset(args.data_dir, n)
        rows += bench_model(name, tars, n, args)
    report = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "data": args.tars or "synthetic",
        "rows": rows,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-realtars" if args.tars else ""
    (args.out_dir / f"results-{args.models.replace(',', '_')}{suffix}.json").write_text(
        json.dumps(report, indent=2)
    )
    print(markdown(rows))
    print("load average at the end:", report["load_average"])


if __name__ == "__main__":
    main()
