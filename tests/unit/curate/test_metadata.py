"""DataComp's .npz beside a shard (poolsieve/curate/metadata.py): validated in place, streamed.

Real files throughout: a DataComp parquet ingested by pool_shard's logic, the .npz written by
numpy, read back through the zip; a broken file fails naming the file and the first bad row.
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pytest

from poolsieve.curate import metadata
from poolsieve.curate.metadata import (
    NpzError,
    image_embeddings,
    required_keys,
    validate_npz,
    write_info,
)
from poolsieve.lake import file_sha256
from poolsieve.pool.ingest import ingest_shard
from tests.conftest import row
from tests.datacomp_pool import float16_dot, save_npz, write_shard

SHARD = "part-00001.parquet"
ROWS = 20
KEYS = ["l14_img", "l14_txt"]


@pytest.fixture
def shard(source_dir, lake, conn):
    """A 20-row DataComp shard with its .npz; row 2 quarantined (not http), row 4's scores
    missing; returns the arrays written."""
    rows = [row(i, url="ftp://x.org/a.jpg") if i == 2 else row(i) for i in range(ROWS)]
    rows[4]["clip_l14_similarity_score"] = rows[4]["clip_b32_similarity_score"] = None
    arrays = write_shard(source_dir / SHARD, rows, seed=3)
    ingest_shard(conn, lake, SHARD, 0, str(source_dir / SHARD))
    return arrays


def _rewrite(source_dir: Path, arrays: dict, **changes) -> None:
    save_npz(source_dir / "part-00001.npz", {**arrays, **changes})


def test_a_datacomp_npz_is_validated_and_recorded(shard, source_dir, lake):
    info = validate_npz(lake, str(source_dir), SHARD, KEYS)
    npz = source_dir / "part-00001.npz"
    assert (info.path, info.sha256, info.rows) == (str(npz), file_sha256(npz), ROWS)
    assert info.keys == ["b32_img", "b32_txt", "l14_img", "l14_txt"]
    assert info.dims == {"b32_img": 512, "b32_txt": 512, "l14_img": 768, "l14_txt": 768}
    assert info.pairs_checked == ["l14"] and info.max_score_difference < 1e-6
    both = validate_npz(lake, str(source_dir), SHARD, ["b32_img", "b32_txt", *KEYS])
    assert both.pairs_checked == ["l14", "b32"]
    written = json.loads(Path(write_info(lake, SHARD, info)).read_text())
    assert written["path"] == str(npz) and written["sha256"] == info.sha256
    assert {"path", "sha256", "rows", "keys", "dims"} <= set(written)


def test_a_missing_npz_names_the_expected_path(shard, source_dir, lake):
    (source_dir / "part-00001.npz").unlink()
    with pytest.raises(FileNotFoundError, match=f"no DataComp .npz at {source_dir}/part-00001.npz"):
        validate_npz(lake, str(source_dir), SHARD, KEYS)


def test_a_row_count_that_differs_fails(shard, source_dir, lake):
    _rewrite(source_dir, shard, b32_img=shard["b32_img"][:-1])
    with pytest.raises(NpzError, match=rf"part-00001.npz: b32_img has 19 rows, .*{SHARD} has 20"):
        validate_npz(lake, str(source_dir), SHARD, KEYS)


def test_swapped_rows_name_the_first_bad_row(shard, source_dir, lake):
    txt = shard["l14_txt"].copy()
    txt[[7, 12]] = txt[[12, 7]]
    b32 = shard["b32_txt"].copy()
    b32[[9, 15]] = b32[[15, 9]]
    for i, j, pair in ((7, 12, "l14"), (9, 15, "b32")):  # the swap is visible in the scores
        dots = float16_dot(shard[f"{pair}_img"][[i]], shard[f"{pair}_txt"][[j]])
        assert abs(dots[0] - float16_dot(shard[f"{pair}_img"], shard[f"{pair}_txt"])[i]) > 0.02
    _rewrite(source_dir, shard, l14_txt=txt, b32_txt=b32)
    with pytest.raises(NpzError, match=r"part-00001.npz: not row-aligned .* first bad row 7: "):
        validate_npz(lake, str(source_dir), SHARD, KEYS)
    both = ["b32_img", "b32_txt", *KEYS]
    with pytest.raises(NpzError, match=r"first bad row 7: dot\(l14_img, l14_txt\)"):
        validate_npz(lake, str(source_dir), SHARD, both)
    _rewrite(source_dir, shard, b32_txt=b32)  # b32 only: read when its keys are needed
    assert validate_npz(lake, str(source_dir), SHARD, KEYS).pairs_checked == ["l14"]
    with pytest.raises(NpzError, match=r"first bad row 9: dot\(b32_img, b32_txt\)"):
        validate_npz(lake, str(source_dir), SHARD, both)


def test_batches_cross_row_boundaries(shard, source_dir, lake, monkeypatch):
    monkeypatch.setattr(metadata, "BATCH_ROWS", 3)
    txt = shard["l14_txt"].copy()
    txt[[13, 19]] = txt[[19, 13]]
    _rewrite(source_dir, shard, l14_txt=txt)
    with pytest.raises(NpzError, match="first bad row 13"):
        validate_npz(lake, str(source_dir), SHARD, KEYS)


def test_wrong_widths_shapes_and_keys_fail(shard, source_dir, lake):
    cases = [
        ({"l14_txt": shard["l14_txt"][:, :512]}, "l14_img is 768 wide, l14_txt 512"),
        ({"b32_img": shard["b32_img"][:, 0]}, r"b32_img is float16 \(20,\), expected 2-D"),
        ({"l14_img": np.zeros((ROWS, 768), np.int8)}, "l14_img is int8"),
    ]
    for change, message in cases:
        _rewrite(source_dir, shard, **change)
        with pytest.raises(NpzError, match=message):
            validate_npz(lake, str(source_dir), SHARD, KEYS)
    save_npz(source_dir / "part-00001.npz", {"l14_img": shard["l14_img"]})
    with pytest.raises(NpzError, match=r"missing keys \['l14_txt'\] \(it has \['l14_img'\]"):
        validate_npz(lake, str(source_dir), SHARD, KEYS)
    (source_dir / "part-00001.npz").write_bytes(b"not a zip")
    with pytest.raises(NpzError, match="part-00001.npz: not a readable .npz"):
        validate_npz(lake, str(source_dir), SHARD, KEYS)


def test_alignment_needs_a_scored_pair(shard, source_dir, lake):
    save_npz(source_dir / "part-00001.npz", {"l14_img": shard["l14_img"]})
    with pytest.raises(NpzError, match="row alignment cannot be checked"):
        validate_npz(lake, str(source_dir), SHARD, ["l14_img"])


def test_compressed_npz_and_fsspec_source(shard, source_dir, lake):
    root = "memory://datacomp-test-pool"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{root}/{SHARD}", (source_dir / SHARD).read_bytes())
    with fs.open(f"{root}/part-00001.npz", "wb") as handle:
        np.savez_compressed(handle, **shard)
    try:
        info = validate_npz(lake, root, SHARD, KEYS)
        assert info.path == "memory:///datacomp-test-pool/part-00001.npz" and info.rows == ROWS
        write_info(lake, SHARD, info)
        uids, emb = image_embeddings(lake, SHARD)
        assert len(uids) == ROWS - 1 and emb.shape == (ROWS - 1, 768)
    finally:
        fs.rm(root, recursive=True)


def test_image_embeddings_are_unit_rows_of_the_kept_rows_in_row_order(
    shard, source_dir, lake, monkeypatch
):
    write_info(lake, SHARD, validate_npz(lake, str(source_dir), SHARD, KEYS))
    monkeypatch.setattr(metadata, "BATCH_ROWS", 6)
    uids, emb = image_embeddings(lake, SHARD, "b32_img")
    kept = [i for i in range(ROWS) if i != 2]  # row 2 was quarantined
    assert uids == [f"{i:032x}" for i in kept]
    expected = shard["b32_img"][kept].astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert emb.dtype == np.float32 and np.array_equal(emb, expected)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="has no 'x_img'"):
        image_embeddings(lake, SHARD, "x_img")


def test_image_embeddings_refuse_a_changed_file(shard, source_dir, lake):
    write_info(lake, SHARD, validate_npz(lake, str(source_dir), SHARD, KEYS))
    _rewrite(source_dir, shard, extra=np.zeros(3))
    with pytest.raises(ValueError, match="changed since metadata_embeddings validated it"):
        image_embeddings(lake, SHARD)


def test_image_embeddings_need_the_asset_first(shard, lake):
    with pytest.raises(FileNotFoundError, match="materialize metadata_embeddings"):
        image_embeddings(lake, SHARD)


def test_required_keys():
    assert required_keys("scorer") == required_keys("l14_img") == ["l14_img", "l14_txt"]
    assert required_keys("b32_img") == ["b32_img", "b32_txt"]
    with pytest.raises(ValueError, match="cluster_embeddings 'vit_img'"):
        required_keys("vit_img")


def test_the_record_is_checked_against_the_file_and_the_shard(shard, source_dir, lake):
    written = Path(write_info(lake, SHARD, validate_npz(lake, str(source_dir), SHARD, KEYS)))
    assert metadata.recorded_problem(lake, SHARD) == ""
    doc = json.loads(written.read_text())
    written.write_text(json.dumps({**doc, "rows": ROWS + 1}))
    assert "21 rows recorded, pool_shard read 20" in metadata.recorded_problem(lake, SHARD)
    (source_dir / "part-00001.npz").unlink()
    assert "gone or changed" in metadata.recorded_problem(lake, SHARD)
