"""Load a CLIP for scoring: an architecture name plus weights, never fetched behind one's back.

Without a pretrained model, the scorer is a tiny CLIP trained on trusted pairs (a local checkpoint written by
open_clip_train); in production it is an open_clip pretrained tag, which needs the hub (or a warm
cache). Either way the loaded weights are identified by their sha256, so every score can say
which model produced it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from poolsieve.clip.model_configs import register_configs

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True)
class ScorerSpec:
    """Which CLIP scores the pool: `arch` (an open_clip or poolsieve config name) and `source`.

    `source` is a checkpoint path (anything with a "/" or a weights suffix) or a pretrained tag
    such as "datacomp_xl_s13b_b90k". Tags never contain "/" nor a file suffix, so the two cannot
    be confused, and a mistyped path fails as a missing file rather than as an unknown tag.
    """

    arch: str
    source: str

    @property
    def is_local(self) -> bool:
        return "/" in self.source or self.source.endswith(_WEIGHT_SUFFIXES)


@dataclass
class LoadedClip:
    """A CLIP ready to embed: eval mode, on `device`, with its own preprocess and tokenizer."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    device: torch.device
    arch: str
    weights_sha256: str
    source: str


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" means CUDA when present, else CPU; anything else is taken as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def weights_sha256(path: str | Path) -> str:
    """Hex sha256 of a weights file, streamed (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(spec: ScorerSpec) -> Path:
    """The local file holding `spec`'s weights; a pretrained tag is downloaded (or found cached).

    Resolving the tag to a file ourselves, rather than letting open_clip do it inside
    create_model, is what lets us hash the exact bytes that were loaded.
    """
    if spec.is_local:
        path = Path(spec.source)
        if not path.is_file():
            raise FileNotFoundError(f"scorer checkpoint not found: {path}")
        return path
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.source)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        raise ValueError(f"unknown pretrained tag {spec.source!r} for {spec.arch}; known: {tags}")
    return Path(open_clip.download_pretrained(cfg))


def load_clip(spec: ScorerSpec, device: str | torch.device = "auto") -> LoadedClip:
    """Build `spec.arch`, load its weights strictly, and return it in eval mode.

    open_clip's loader accepts open_clip_train checkpoints as they are: it unwraps the
    "state_dict" entry and strips DistributedDataParallel's "module." prefixes.
    """
    import open_clip

    register_configs()
    target = resolve_device(device)
    path = weights_path(spec)
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.arch, pretrained=str(path), device=target
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec.arch)
    sha = weights_sha256(path)
    return LoadedClip(model, preprocess, tokenizer, target, spec.arch, sha, spec.source)


@dataclass(frozen=True)
class ParameterSplit:
    token_embedding: int  # the text token-embedding table
    rest: int
    total: int


def parameter_split(model: torch.nn.Module) -> ParameterSplit:
    """Parameters in the text token-embedding table versus everything else.

    In our tiny CLIPs the 49,408-token table is most of the model, which matters when reading
    parameter counts or profiling speed (its gradient is sparse in rows but dense in AdamW).
    """
    total = sum(p.numel() for p in model.parameters())
    table = getattr(model, "token_embedding", None)
    embedding = table.weight.numel() if table is not None else 0
    return ParameterSplit(embedding, total - embedding, total)
