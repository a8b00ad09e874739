"""CLIP embedding of webdataset tars and the npz/parquet sidecars, with a tiny random-init CLIP."""

from __future__ import annotations

import io
import json
import tarfile

import duckdb
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from poolsieve.clip.encode import embed_webdataset, progress_logger
from poolsieve.clip.npz import (
    check_alignment,
    npz_prefix,
    read_embeddings_parquet,
    read_npz,
    write_embeddings_parquet,
    write_npz,
)
from tests.conftest import row, uid, write_datacomp

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 1},
}
CORRUPT, NO_IMAGE = 5, 9  # sample numbers planted in the first tar


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    config_dir = tmp_path_factory.mktemp("configs")
    (config_dir / "test-embed-tiny.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(config_dir)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("test-embed-tiny")
    return model, preprocess, open_clip.get_tokenizer("test-embed-tiny")


def _jpeg(i: int) -> bytes:
    rng = np.random.default_rng(i)
    size = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=85)
    return out.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _write_tar(path, numbers, corrupt=(CORRUPT,)) -> None:
    """An img2dataset-style tar: {key}.jpg, {key}.txt, {key}.json (uid as an extra column)."""
    with tarfile.open(path, "w") as tf:
        for i in numbers:
            key = f"{i:09d}"
            if i != NO_IMAGE:
                _add(tf, f"{key}.jpg", b"not a jpeg" if i in corrupt else _jpeg(i))
            _add(tf, f"{key}.txt", f"a photo of thing {i}".encode())
            _add(tf, f"{key}.json", json.dumps({"uid": uid(i), "key": key}).encode())


@pytest.fixture(scope="module")
def tars(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shard")
    paths = [folder / "00000000.tar", folder / "00000001.tar"]
    _write_tar(paths[0], range(0, 21))
    _write_tar(paths[1], range(21, 37))
    return paths


EMBEDDED = [i for i in range(37) if i not in (CORRUPT, NO_IMAGE)]


def _embed(tars, tiny_clip, workers: int, **kwargs):
    model, preprocess, tokenizer = tiny_clip
    return embed_webdataset(
        tars, model, preprocess, tokenizer, batch_size=8, num_workers=workers, **kwargs
    )


@pytest.fixture(scope="module")
def result(tars, tiny_clip):
    return _embed(tars, tiny_clip, workers=0)


def test_shapes_dtypes_and_skip_reasons(result):
    assert result.image_emb.shape == result.text_emb.shape == (len(EMBEDDED), 32)
    assert result.image_emb.dtype == result.text_emb.dtype == np.float16
    assert result.scores.shape == (len(EMBEDDED),) and result.scores.dtype == np.float32
    assert result.skipped[f"{NO_IMAGE:09d}"] == "no_image"
    assert result.skipped[f"{CORRUPT:09d}"].startswith("decode_error: ")
    assert len(result) + len(result.skipped) == 37


def test_a_tar_of_only_broken_images_gives_an_empty_result(tmp_path, tiny_clip):
    _write_tar(tmp_path / "broken.tar", range(100, 103), corrupt=range(100, 103))
    empty = _embed([tmp_path / "broken.tar"], tiny_clip, workers=0)
    assert len(empty) == 0 and len(empty.skipped) == 3
    assert empty.image_emb.shape == (0, 32) and empty.scores.shape == (0,)


def test_unit_norms_and_score_is_the_dot_product(result):
    img, txt = result.image_emb.astype(np.float32), result.text_emb.astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1, atol=2e-3)
    np.testing.assert_allclose(result.scores, (img * txt).sum(axis=1), atol=2e-3)


def test_order_is_key_order_whatever_the_workers(result, tars, tiny_clip):
    assert result.keys == [f"{i:09d}" for i in EMBEDDED]
    assert result.uids == [uid(i) for i in EMBEDDED]
    parallel = _embed(tars, tiny_clip, workers=2)
    assert parallel.keys == result.keys and parallel.uids == result.uids
    np.testing.assert_array_equal(parallel.image_emb, result.image_emb)
    np.testing.assert_array_equal(parallel.scores, result.scores)


def test_two_runs_are_identical(result, tars, tiny_clip):
    again = _embed(tars, tiny_clip, workers=0)
    np.testing.assert_array_equal(again.image_emb, result.image_emb)
    np.testing.assert_array_equal(again.text_emb, result.text_emb)
    np.testing.assert_array_equal(again.scores, result.scores)


def test_progress_reports_count_rate_and_eta(tars, tiny_clip):
    calls, lines = [], []
    log = progress_logger(lines.append, every_s=0)
    _embed(tars, tiny_clip, workers=0, progress=lambda *a: (calls.append(a), log(*a)))
    assert [c[0] for c in calls] == [8, 16, 24, 32, 36]  # samples with an image entry
    assert all(total == 36 and rate > 0 for _, total, rate, _ in calls)
    assert calls[-1][3] == 0 and lines[-1].startswith("embedded 36/36 at ")


def test_parquet_round_trip_and_duckdb_reads_it(result, tmp_path):
    path = write_embeddings_parquet(result, tmp_path / "embeddings.parquet")
    back = read_embeddings_parquet(path)
    assert back.uids == result.uids and back.keys == result.keys
    np.testing.assert_array_equal(back.image_emb, result.image_emb)
    np.testing.assert_array_equal(back.scores, result.scores)
    query = "SELECT count(*), max(len(image_emb)) FROM read_parquet(?)"
    n, dim = duckdb.execute(query, [str(path)]).fetchall()[0]
    assert (n, dim) == (len(result), 32)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def metadata(tmp_path):
    """The shard's metadata rows, not in tar order, including rows whose image never arrived."""
    numbers = [36, 0, 100, *range(1, 36), 101]  # 100, 101 failed to download
    return write_datacomp(tmp_path / "00000000.parquet", [row(i) for i in numbers]), numbers


def test_npz_rows_follow_the_metadata(result, metadata, tmp_path):
    parquet, numbers = metadata
    arrays = read_npz(write_npz(tmp_path / "00000000.npz", parquet, {"b32": result}))
    assert arrays["uid"].tolist() == [uid(i) for i in numbers]
    assert arrays["b32_img"].shape == (len(numbers), 32) and arrays["b32_img"].dtype == np.float16
    for r, i in enumerate(numbers):
        if i in EMBEDDED:
            j = EMBEDDED.index(i)
            assert np.array_equal(arrays["b32_img"][r], result.image_emb[j])
            assert np.array_equal(arrays["b32_txt"][r], result.text_emb[j])
            assert arrays["b32_score"][r] == result.scores[j]
        else:  # no image: zero vectors, NaN score
            assert not arrays["b32_img"][r].any() and not arrays["b32_txt"][r].any()
            assert np.isnan(arrays["b32_score"][r])
    assert check_alignment(tmp_path / "00000000.npz", parquet) == []


def test_check_alignment_catches_misaligned_files(result, metadata, tmp_path):
    parquet, numbers = metadata
    arrays = read_npz(write_npz(tmp_path / "a.npz", parquet, {"b32": result}))
    shuffled = write_datacomp(tmp_path / "shuffled.parquet", [row(i) for i in numbers[::-1]])
    assert any(p.startswith("uid: ") for p in check_alignment(arrays, shuffled))
    shorter = write_datacomp(tmp_path / "shorter.parquet", [row(i) for i in numbers[:-1]])
    assert check_alignment(arrays, shorter)
    swapped = dict(arrays, b32_img=arrays["b32_img"][::-1])  # vectors moved, uids kept
    assert any("zero vectors" in p or "dot" in p for p in check_alignment(swapped, parquet))
    no_uid = {k: v for k, v in arrays.items() if k != "uid"}
    assert check_alignment(no_uid, parquet)[0].startswith("no 'uid' array")


def test_npz_prefixes():
    assert npz_prefix("ViT-B-32") == "b32" and npz_prefix("ViT-L-14") == "l14"
    assert npz_prefix("poolsieve-tiny") == "poolsieve_tiny"
    assert npz_prefix("ViT-B-32", prefix="scorer") == "scorer"


def test_results_follow_the_keys_not_the_order_the_downloader_wrote_the_tar(
    result, tars, tiny_clip, tmp_path
):
    """img2dataset's threads write samples in the order downloads finish; the result, its
    parquet and its npz are the same bytes whatever that order was (same batches, same rows)."""
    shuffled = [tmp_path / "00000000.tar", tmp_path / "00000001.tar"]
    order = np.random.default_rng(1).permutation(37)
    _write_tar(shuffled[0], [int(i) for i in order if i < 21])
    _write_tar(shuffled[1], [int(i) for i in order if i >= 21])
    again = _embed(shuffled, tiny_clip, workers=0)
    assert again.keys == result.keys and again.uids == result.uids
    np.testing.assert_array_equal(again.image_emb, result.image_emb)
    np.testing.assert_array_equal(again.scores, result.scores)
    files = [
        write_embeddings_parquet(r, tmp_path / f"{name}.parquet").read_bytes()
        for name, r in (("a", result), ("b", again))
    ]
    assert files[0] == files[1]
