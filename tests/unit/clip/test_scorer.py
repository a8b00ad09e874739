"""The scorer's settings and records: configured checkpoints, trusted sets, weight hashes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
import torch

from poolsieve.clip.model_configs import register_configs
from poolsieve.clip.scorer import (
    ScorerSettings,
    build_scorer,
    load_scorer,
    read_scorer,
    trusted_shards,
)
from poolsieve.lake import Lake


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import open_clip

    register_configs()
    model = open_clip.create_model("poolsieve-tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_a_configured_checkpoint_is_hashed_not_trained(tmp_path, checkpoint):
    lake = Lake(tmp_path / "lake")
    info = build_scorer(lake, ScorerSettings(source=str(checkpoint)))
    assert info.origin == "checkpoint" and info.training is None
    assert info.weights_sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert read_scorer(lake) == info
    assert not (lake.root / "scorer" / "trained").exists()


def test_changed_weights_are_refused(tmp_path, checkpoint):
    lake = Lake(tmp_path / "lake")
    copy = tmp_path / "copy.pt"
    copy.write_bytes(checkpoint.read_bytes())
    info = build_scorer(lake, ScorerSettings(source=str(copy)))
    assert load_scorer(info, "cpu").weights_sha256 == info.weights_sha256
    state = torch.load(copy)
    next(iter(state["state_dict"].values())).add_(1.0)
    torch.save(state, copy)
    with pytest.raises(RuntimeError, match="changed since the scorer asset recorded them"):
        load_scorer(info, "cpu")


def test_missing_checkpoint_and_missing_trusted_set_fail_clearly(tmp_path):
    lake = Lake(tmp_path / "lake")
    with pytest.raises(FileNotFoundError, match="scorer checkpoint not found"):
        build_scorer(lake, ScorerSettings(source=str(tmp_path / "nope.pt")))
    with pytest.raises(ValueError, match="no scorer configured"):
        build_scorer(lake, ScorerSettings())
    with pytest.raises(FileNotFoundError, match="no trusted webdataset shards"):
        build_scorer(lake, ScorerSettings(trusted_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="materialize the scorer asset first"):
        read_scorer(lake)


def _tar(path, keys):
    with tarfile.open(path, "w") as tf:
        for key in keys:
            for suffix, data in (("jpg", b"x"), ("txt", b"a caption")):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def test_trusted_set_size_from_sizes_json_or_the_tars(tmp_path):
    _tar(tmp_path / "t-0.tar", ["a", "b", "c"])
    _tar(tmp_path / "t-1.tar", ["d"])
    tars, n = trusted_shards(tmp_path)
    assert [t.name for t in tars] == ["t-0.tar", "t-1.tar"] and n == 4
    (tmp_path / "sizes.json").write_text(json.dumps({"t-0.tar": 30, "t-1.tar": 10}))
    assert trusted_shards(tmp_path)[1] == 40
