"""The scorer asset's logic: which CLIP computes every pool sample's CLIP score, recorded once.

Two ways to get one (``ScorerSettings.source``):

* a **checkpoint** (a local weights file) or an open_clip **pretrained tag** (needs the hub or a
  warm cache): production. Nothing is trained; the weights are hashed.
* empty: **train** ``arch`` on a trusted set of clean webdataset pairs with open_clip_train (a
  small pool with no pretrained weights at hand, as Data Filtering Networks do; see poolsieve.clip.train), at a named scale.

Either way ``<lake>/scorer/scorer.json`` records the architecture, the weights file (or tag), the
sha256 of the weights and how they were made; clip_embeddings reads it, so every score names the
exact weights that produced it. The trained run lives in ``<lake>/scorer/trained/`` (its log,
params and checkpoint).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from poolsieve.clip.models import LoadedClip, ScorerSpec, load_clip, weights_path, weights_sha256
from poolsieve.clip.train import TrainProgress, scale_config, train_clip
from poolsieve.lake import Lake, write_bytes_atomic

SCORER_FILE = "scorer.json"
TRAINED_RUN = "trained"


@dataclass(frozen=True)
class ScorerSettings:
    arch: str = "poolsieve-tiny"
    source: str = ""  # checkpoint path or pretrained tag; empty: train on trusted_dir
    trusted_dir: str = ""
    scale: str = "tiny-cpu"
    samples_seen: int = 0  # 0: the scale's budget
    seed: int = 0


@dataclass(frozen=True)
class ScorerTraining:
    """How a trained scorer was made (scorer.json's ``training``)."""

    scale: str
    trusted_samples: int
    samples_seen: int
    seconds: float
    losses: list[tuple[int, float]]  # (step, loss) per logged step
    log: str


@dataclass(frozen=True)
class ScorerInfo:
    """scorer.json: the weights every CLIP score comes from, and how they were obtained."""

    arch: str
    weights: str  # the file loaded (or the pretrained tag's cached file)
    weights_sha256: str
    origin: str  # "trained" | "checkpoint" | "pretrained"
    source: str  # the configured checkpoint/tag, or the trusted set it was trained on
    training: ScorerTraining | None = None  # trained scorers only

    def spec(self) -> ScorerSpec:
        return ScorerSpec(self.arch, self.weights)

    def to_dict(self) -> dict:
        """scorer.json's document (``training`` is {} for a scorer that was not trained)."""
        return asdict(self) | {"training": asdict(self.training) if self.training else {}}

    @classmethod
    def from_dict(cls, doc: dict) -> ScorerInfo:
        training = doc.get("training") or None
        if training is not None:
            losses = [tuple(x) for x in training["losses"]]
            training = ScorerTraining(**{**training, "losses": losses})
        return cls(**{**doc, "training": training})


def scorer_path(lake: Lake) -> Path:
    return lake.path("scorer", SCORER_FILE)


def trusted_shards(trusted_dir: str | Path) -> tuple[list[Path], int]:
    """The trusted set's tars and its sample count (from sizes.json, else by reading the tars)."""
    folder = Path(trusted_dir)
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"no trusted webdataset shards (*.tar) in {folder}")
    sizes = folder / "sizes.json"
    if sizes.is_file():
        counts = json.loads(sizes.read_text())
        return tars, sum(int(counts[t.name]) for t in tars)
    return tars, sum(_count_samples(t) for t in tars)


def _count_samples(tar: Path) -> int:
    with tarfile.open(tar) as handle:
        return sum(1 for m in handle if m.isfile() and m.name.endswith(".txt"))


def build_scorer(
    lake: Lake, settings: ScorerSettings, progress: Callable[[TrainProgress], None] | None = None
) -> ScorerInfo:
    """Resolve or train the scorer, check that it loads, and write scorer.json (atomically)."""
    info = _trained(lake, settings, progress) if not settings.source else _configured(settings)
    load_clip(info.spec(), device="cpu")  # fail here, not in every embedding partition
    text = json.dumps(info.to_dict(), indent=1) + "\n"
    write_bytes_atomic(scorer_path(lake), text.encode())
    return info


def _configured(settings: ScorerSettings) -> ScorerInfo:
    spec = ScorerSpec(settings.arch, settings.source)
    path = weights_path(spec)
    origin = "checkpoint" if spec.is_local else "pretrained"
    return ScorerInfo(settings.arch, str(path), weights_sha256(path), origin, settings.source)


def _trained(lake: Lake, settings: ScorerSettings, progress) -> ScorerInfo:
    if not settings.trusted_dir:
        raise ValueError(
            "no scorer configured: set a checkpoint path or pretrained tag (scorer_source), "
            "or a trusted set to train one on (trusted_dir)"
        )
    tars, num_samples = trusted_shards(settings.trusted_dir)
    overrides = {"model": settings.arch, "seed": settings.seed}
    if settings.samples_seen:
        overrides["samples_seen"] = settings.samples_seen
    config = scale_config(settings.scale, **overrides)
    run = train_clip(config, tars, num_samples, lake.path("scorer"), TRAINED_RUN, progress)
    training = ScorerTraining(
        scale=settings.scale,
        trusted_samples=num_samples,
        samples_seen=run.samples_seen,
        seconds=round(run.seconds, 1),
        losses=run.losses,
        log=str(run.log_path),
    )
    path = run.checkpoint_path
    return ScorerInfo(
        settings.arch, str(path), weights_sha256(path), "trained", settings.trusted_dir, training
    )


def read_scorer(lake: Lake) -> ScorerInfo:
    path = scorer_path(lake)
    if not path.is_file():
        raise FileNotFoundError(f"no scorer in {path.parent}: materialize the scorer asset first")
    return ScorerInfo.from_dict(json.loads(path.read_text()))


def load_scorer(info: ScorerInfo, device: str = "auto") -> LoadedClip:
    """The recorded scorer, loaded; refuses weights that changed since scorer.json was written."""
    clip = load_clip(info.spec(), device)
    if clip.weights_sha256 != info.weights_sha256:
        raise RuntimeError(
            f"scorer weights {info.weights} changed since the scorer asset recorded them "
            f"(sha256 {clip.weights_sha256[:12]} != {info.weights_sha256[:12]}): "
            "re-materialize scorer"
        )
    return clip
