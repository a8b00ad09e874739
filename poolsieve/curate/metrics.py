"""evaluation's logic: zero-shot classification and image-text retrieval of a trained CLIP.

Metrics (computed from L2-normalized embeddings, so they can be checked on hand-made vectors):

- classification: each class's text embedding is the normalized mean over the templates
  (``templates.txt``, open_clip's ``{}`` placeholder); ``top1`` = share of images whose most
  similar class is their label; ``mean_per_class_recall`` = unweighted mean over classes of that
  share within the class.
- retrieval: ``text_to_image_recall@k`` = share of captions whose image ranks in the top k;
  ``image_to_text_recall@k`` = share of images with one of their captions in the top k;
  ``mean_recall@k`` = the mean of both directions.

The average (DataComp's) is the unweighted mean of each task's main metric: classification
``top1`` and retrieval ``mean_recall@1``. Ties rank by index (argsort is stable), which makes
metrics deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from PIL import Image

from poolsieve.clip.models import LoadedClip

KS = (1, 5, 10)
MAIN_METRICS = {"classification": "top1", "retrieval": "mean_recall@1"}


def classification_metrics(image_emb, class_emb, labels) -> dict[str, float]:
    labels = np.asarray(labels)
    pred = np.argmax(np.asarray(image_emb) @ np.asarray(class_emb).T, axis=1)
    correct = pred == labels
    per_class = [correct[labels == c].mean() for c in np.unique(labels)]
    return {"top1": float(correct.mean()), "mean_per_class_recall": float(np.mean(per_class))}


def retrieval_metrics(image_emb, text_emb, text_image, ks=KS) -> dict[str, float]:
    """``text_image[j]`` = the image index of caption j."""
    sims = np.asarray(text_emb) @ np.asarray(image_emb).T  # (captions, images)
    text_image = np.asarray(text_image)
    t2i_rank = np.argsort(-sims, axis=1, kind="stable")
    i2t_rank = np.argsort(-sims.T, axis=1, kind="stable")
    out = {}
    for k in ks:
        t2i = (t2i_rank[:, :k] == text_image[:, None]).any(axis=1).mean()
        i2t = np.mean([np.isin(text_image[i2t_rank[i, :k]], i).any() for i in range(sims.shape[1])])
        out[f"text_to_image_recall@{k}"] = float(t2i)
        out[f"image_to_text_recall@{k}"] = float(i2t)
        out[f"mean_recall@{k}"] = float((t2i + i2t) / 2)
    return out


@torch.inference_mode()
def _images(clip: LoadedClip, paths: list[Path], batch: int = 128) -> np.ndarray:
    parts = []
    for start in range(0, len(paths), batch):
        tensors = [
            clip.preprocess(Image.open(p).convert("RGB")) for p in paths[start : start + batch]
        ]
        parts.append(
            F.normalize(
                clip.model.encode_image(torch.stack(tensors).to(clip.device)).float(), dim=-1
            )
        )
    return torch.cat(parts).cpu().numpy()


@torch.inference_mode()
def _texts(clip: LoadedClip, texts: list[str], batch: int = 512) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), batch):
        tokens = clip.tokenizer(texts[start : start + batch]).to(clip.device)
        parts.append(F.normalize(clip.model.encode_text(tokens).float(), dim=-1))
    return torch.cat(parts).cpu().numpy()


def zero_shot_classification(clip: LoadedClip, folder: Path) -> dict[str, float]:
    labels = pq.read_table(folder / "labels.parquet").to_pylist()
    classnames = (folder / "classnames.txt").read_text().splitlines()
    templates = (folder / "templates.txt").read_text().splitlines()
    prompts = [t.format(c) for c in classnames for t in templates]
    text = _texts(clip, prompts).reshape(len(classnames), len(templates), -1).mean(axis=1)
    class_emb = text / np.linalg.norm(text, axis=1, keepdims=True)
    images = _images(clip, [folder / r["file"] for r in labels])
    return classification_metrics(images, class_emb, [r["label"] for r in labels])


def image_text_retrieval(clip: LoadedClip, folder: Path) -> dict[str, float]:
    rows = pq.read_table(folder / "captions.parquet").to_pylist()
    files = list(dict.fromkeys(r["file"] for r in rows))
    index = {f: i for i, f in enumerate(files)}
    images = _images(clip, [folder / f for f in files])
    texts = _texts(clip, [r["caption"] for r in rows])
    return retrieval_metrics(images, texts, [index[r["file"]] for r in rows])


@dataclass(frozen=True)
class Evaluation:
    tasks: dict[str, dict[str, float]]

    @property
    def average(self) -> float:
        return float(
            np.mean([self.tasks[t][m] for t, m in MAIN_METRICS.items() if t in self.tasks])
        )

    def flat(self) -> dict[str, float]:
        out = {f"{task}/{k}": v for task, metrics in self.tasks.items() for k, v in metrics.items()}
        return {**out, "average": self.average}


def evaluate(clip: LoadedClip, eval_dir: str | Path) -> Evaluation:
    """Every eval task found under ``eval_dir`` (classification/, retrieval/)."""
    folder, tasks = Path(eval_dir), {}
    if (folder / "classification" / "labels.parquet").is_file():
        tasks["classification"] = zero_shot_classification(clip, folder / "classification")
    if (folder / "retrieval" / "captions.parquet").is_file():
        tasks["retrieval"] = image_text_retrieval(clip, folder / "retrieval")
    if not tasks:
        raise FileNotFoundError(f"no eval task (classification/, retrieval/) under {folder}")
    return Evaluation(tasks)
