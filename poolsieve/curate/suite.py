"""DataComp's evaluation suite through clip_benchmark, where its data is available locally.

DataComp evaluates on 38 tasks stored as webdatasets (its ``download_evalsets.py`` fetches them
from the Hugging Face hub into one folder, one sub-folder per task). Nothing is downloaded here:
point ``eval_sets.suite_dir`` (``POOLSIEVE_EVAL_SUITE``) at that folder, and every
sub-folder in clip_benchmark's webdataset layout is evaluated::

    <suite>/<task>/test/nshards.txt, test/0.tar ...   images + .cls labels (or .txt captions)
    <suite>/<task>/classnames.txt, zeroshot_classification_templates.txt
    <suite>/<task>/dataset_type.txt                   "retrieval" for retrieval tasks

clip_benchmark reads the data (``build_dataset("wds/<task>", download=False)``) and scores
retrieval; zero-shot classification uses this module's own classifier and
poolsieve.curate.metrics's metrics, because clip_benchmark's ``accuracy()`` breaks on NumPy 2
and its ``amp=True`` default means bf16 (much slower on a CPU). Templates use clip_benchmark's
``{c}`` placeholder. The suite's average is the unweighted mean of each task's main metric
(top-1 for classification, mean recall@1 for retrieval), as DataComp reports it; tasks that fail
to load are listed, never silently dropped.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from poolsieve.clip.models import LoadedClip
from poolsieve.curate.metrics import classification_metrics

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@dataclass(frozen=True)
class SuiteResult:
    """The suite's outcome, as metrics.json's ``suite`` holds it."""

    tasks: dict[str, dict[str, float]]  # task -> its metrics
    failed: dict[str, str]  # task -> why it could not be evaluated
    average: float | None  # mean of each evaluated task's main metric; None when none was

    def to_dict(self) -> dict:
        return asdict(self)


def suite_tasks(root: str | Path) -> list[str]:
    """Task folders under ``root`` in clip_benchmark's webdataset layout, sorted."""
    return sorted(p.parent.parent.name for p in Path(root).glob("*/test/nshards.txt"))


def _dataset(clip: LoadedClip, root: Path, task: str):
    from clip_benchmark.datasets.builder import build_dataset

    kind = root / task / "dataset_type.txt"
    retrieval = kind.is_file() and kind.read_text().strip().lower() == "retrieval"
    ds = build_dataset(
        f"wds/{task}",
        root=str(root / task),
        transform=clip.preprocess,
        split="test",
        download=False,
        task="zeroshot_retrieval" if retrieval else "zeroshot_classification",
    )
    return ds, retrieval


@torch.inference_mode()
def _classify(clip: LoadedClip, ds, batch_size: int) -> dict[str, float]:
    prompts = [t.replace("{c}", "{}").format(c) for c in ds.classes for t in ds.templates]
    tokens = clip.tokenizer(prompts).to(clip.device)
    text = F.normalize(clip.model.encode_text(tokens).float(), dim=-1)
    text = text.reshape(len(ds.classes), len(ds.templates), -1).mean(dim=1)
    class_emb = F.normalize(text, dim=-1).cpu().numpy()
    images, labels = [], []
    loader = torch.utils.data.DataLoader(ds.batched(batch_size), batch_size=None, num_workers=0)
    for batch, target in loader:
        images.append(F.normalize(clip.model.encode_image(batch.to(clip.device)).float(), dim=-1))
        labels.append(torch.as_tensor(target))
    emb = torch.cat(images).cpu().numpy()
    return classification_metrics(emb, class_emb, torch.cat(labels).numpy())


def _retrieve(clip: LoadedClip, ds, batch_size: int) -> dict[str, float]:
    from clip_benchmark.datasets.builder import image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval

    loader = torch.utils.data.DataLoader(
        ds.batched(batch_size, collation_fn=image_captions_collate_fn),
        batch_size=None,
        num_workers=0,
    )
    out = zeroshot_retrieval.evaluate(
        clip.model, loader, clip.tokenizer, str(clip.device), amp=False, recall_k_list=[1, 5, 10]
    )
    out["mean_recall@1"] = (out["image_retrieval_recall@1"] + out["text_retrieval_recall@1"]) / 2
    return {k: float(v) for k, v in out.items()}


def evaluate_suite(
    clip: LoadedClip, root: str | Path, batch_size: int = 64, progress=None
) -> SuiteResult:
    """Every task under ``root``; a task that fails to load is listed, not dropped.

    ``progress(done, total)`` is called after each task (38 of them in DataComp's suite)."""
    root, tasks, failed = Path(root), {}, {}
    names = suite_tasks(root)
    for done, task in enumerate(names, start=1):
        try:
            ds, retrieval = _dataset(clip, root, task)
            tasks[task] = (_retrieve if retrieval else _classify)(clip, ds, batch_size)
        except Exception as error:  # one broken task must not hide the others' results
            failed[task] = f"{type(error).__name__}: {error}"[:300]
        if progress:
            progress(done, len(names))
    main = [m["mean_recall@1"] if "mean_recall@1" in m else m["top1"] for m in tasks.values()]
    return SuiteResult(tasks, failed, float(np.mean(main)) if main else None)
