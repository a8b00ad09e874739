"""The held-out eval sets: zero-shot classification over the 36 concepts, and image-text retrieval.

Grain: one EvalImage per eval image. Eval specs come from their own random stream, so no pool or
trusted image is an eval image; the only overlap is planted on purpose (the pool's
``eval_near_duplicate`` rows, perturbed copies recorded in the truth). Layout, open_clip-style::

    eval/classification/images/cls-00000.png ...  labels.parquet (key, file, label, classname)
    eval/classification/classnames.txt            one class per line, line i = label i
    eval/classification/templates.txt             "a photo of a {}." ...
    eval/retrieval/images/ret-00000.png ...       captions.parquet (key, file, caption)

Images are PNG (lossless) so a near-duplicate's perturbation is the only difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poolsieve_demo.captions import retrieval_caption
from poolsieve_demo.concepts import CLASSNAMES, label_of
from poolsieve_demo.config import WorldConfig
from poolsieve_demo.render import ImageSpec, encode, render
from poolsieve_demo.specs import ordinary_size, sample_spec

CLASSIFICATION, RETRIEVAL = "classification", "retrieval"
CLASS_TEMPLATES = (
    "a photo of a {}.",
    "a drawing of a {}.",
    "an icon of a {}.",
    "a {} on a plain background.",
    "a {} on a patterned background.",
    "a close-up photo of the {}.",
    "a simple illustration of a {}.",
)


@dataclass(frozen=True)
class EvalImage:
    split: str
    key: str
    spec: ImageSpec
    captions: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        """Path relative to ``eval/<split>/``."""
        return f"images/{self.key}.png"


def draw_eval_images(rng: np.random.Generator, config: WorldConfig) -> list[EvalImage]:
    """Classification images (eval_per_class per class, in shuffled order), then retrieval ones."""
    classes = [name.split(" ") for name in CLASSNAMES for _ in range(config.eval_per_class)]
    images = []
    for k, c in enumerate(rng.permutation(len(classes)).tolist()):
        color, shape = classes[c]
        spec = sample_spec(rng, ordinary_size(rng, *config.clean_sizes), shape, color)
        images.append(EvalImage(CLASSIFICATION, f"cls-{k:05d}", spec))
    for k in range(config.retrieval_images):
        spec = sample_spec(rng, ordinary_size(rng, *config.clean_sizes))
        captions = tuple(retrieval_caption(rng, spec) for _ in range(config.retrieval_captions))
        images.append(EvalImage(RETRIEVAL, f"ret-{k:05d}", spec, captions))
    return images


def write_eval_sets(eval_dir: Path, images: list[EvalImage]) -> dict:
    """Write both eval sets under ``eval_dir``; returns their sizes (for the truth file)."""
    for image in images:
        path = eval_dir / image.split / image.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(render(image.spec), "png"))
    cls = [i for i in images if i.split == CLASSIFICATION]
    ret = [i for i in images if i.split == RETRIEVAL]
    _write_classification_index(eval_dir / CLASSIFICATION, cls)
    _write_retrieval_index(eval_dir / RETRIEVAL, ret)
    return {
        CLASSIFICATION: {"images": len(cls), "classes": len(CLASSNAMES)},
        RETRIEVAL: {"images": len(ret), "captions": sum(len(i.captions) for i in ret)},
    }


def _write_classification_index(folder: Path, images: list[EvalImage]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    labels = [label_of(i.spec.color, i.spec.shape) for i in images]
    table = pa.table(
        {
            "key": [i.key for i in images],
            "file": [i.file for i in images],
            "label": pa.array(labels, pa.int64()),
            "classname": [CLASSNAMES[n] for n in labels],
        }
    )
    pq.write_table(table, folder / "labels.parquet")
    (folder / "classnames.txt").write_text("\n".join(CLASSNAMES) + "\n")
    (folder / "templates.txt").write_text("\n".join(CLASS_TEMPLATES) + "\n")


def _write_retrieval_index(folder: Path, images: list[EvalImage]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(i, caption) for i in images for caption in i.captions]
    table = pa.table(
        {
            "key": [i.key for i, _ in pairs],
            "file": [i.file for i, _ in pairs],
            "caption": [caption for _, caption in pairs],
        }
    )
    pq.write_table(table, folder / "captions.parquet")
