"""CLIP architectures and scorer loading: every shipped config builds and runs, offline."""

from __future__ import annotations

import hashlib

import open_clip
import pytest
import torch
from PIL import Image

from poolsieve.clip.model_configs import config_names, register_configs
from poolsieve.clip.models import (
    ScorerSpec,
    load_clip,
    parameter_split,
    resolve_device,
    weights_sha256,
)
from poolsieve.clip.offline import network_denied

register_configs()


@pytest.fixture(autouse=True)
def offline():
    """Nothing in this module may reach the network; any attempt fails the test loudly."""
    with network_denied():
        yield


def test_configs_are_shipped_and_registered_once():
    assert {"poolsieve-tiny", "poolsieve-small"} <= set(config_names())
    before = open_clip.list_models()
    assert register_configs() == config_names()
    assert open_clip.list_models() == before
    assert set(config_names()) <= set(before)


@pytest.mark.parametrize("arch", config_names())
def test_every_config_builds_and_runs_forward(arch):
    """Adding a JSON to poolsieve/clip/configs adds a case here: no test edit needed."""
    model, _, preprocess = open_clip.create_model_and_transforms(arch)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    images = torch.stack([preprocess(Image.new("RGB", (50, 40), c)) for c in ("red", "blue")])
    size = open_clip.get_model_config(arch)["vision_cfg"]["image_size"]
    assert images.shape == (2, 3, size, size)
    with torch.no_grad():
        image_features = model.encode_image(images, normalize=True)
        text_features = model.encode_text(
            tokenizer(["a red square", "a blue circle"]), normalize=True
        )
    embed_dim = open_clip.get_model_config(arch)["embed_dim"]
    assert image_features.shape == text_features.shape == (2, embed_dim)
    assert torch.allclose(image_features.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_tiny_parameters_are_mostly_the_token_table():
    model = open_clip.create_model("poolsieve-tiny")
    split = parameter_split(model)
    assert split.token_embedding == 49408 * 64
    assert split.token_embedding + split.rest == split.total
    assert split.token_embedding > 4 * split.rest


def test_weights_sha256_is_the_file_digest(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc" * 1_000_000)
    assert weights_sha256(path) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


@pytest.mark.parametrize(
    ("source", "local"),
    [
        ("/runs/scorer/checkpoints/epoch_1.pt", True),
        ("scorer.pt", True),
        ("model.safetensors", True),
        ("datacomp_xl_s13b_b90k", False),
        ("openai", False),
    ],
)
def test_scorer_source_is_a_path_or_a_tag(source, local):
    assert ScorerSpec("ViT-B-32", source).is_local is local


def _trainer_style_checkpoint(path, model):
    """What open_clip_train writes under DistributedDataParallel: wrapped and "module."-prefixed."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "name": "scorer", "state_dict": state}, path)


def test_load_clip_reads_a_trainer_checkpoint(tmp_path):
    torch.manual_seed(1)
    trained = open_clip.create_model("poolsieve-tiny")
    path = tmp_path / "epoch_1.pt"
    _trainer_style_checkpoint(path, trained)

    loaded = load_clip(ScorerSpec("poolsieve-tiny", str(path)), device="cpu")

    assert not loaded.model.training
    assert loaded.device == torch.device("cpu")
    assert (loaded.arch, loaded.source) == ("poolsieve-tiny", str(path))
    assert loaded.weights_sha256 == weights_sha256(path)
    for name, value in trained.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    assert loaded.tokenizer(["a red circle"]).shape == (1, 32)
    assert loaded.preprocess(Image.new("RGB", (64, 64))).shape == (3, 32, 32)


def test_load_clip_refuses_missing_files_and_unknown_tags(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_clip(ScorerSpec("poolsieve-tiny", str(tmp_path / "nope.pt")))
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        load_clip(ScorerSpec("ViT-B-32", "no_such_tag"))


def test_auto_device_follows_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
