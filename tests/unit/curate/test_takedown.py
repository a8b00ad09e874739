"""Takedown and hash lists: reading and validating them, matching pool rows by uid, normalized
URL, sha256 (metadata and image bytes) and pHash, the removals files, and the subsets touched."""

from __future__ import annotations

import random

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from poolsieve.curate import takedown
from poolsieve.images.hashes import SCHEMA as HASHES_SCHEMA
from poolsieve.images.hashes import phash64
from poolsieve.lake import Lake
from poolsieve.pool.ingest import ingest_shard
from poolsieve.sqlrunner import SqlProject, column_test_failures
from tests.conftest import row, uid, write_datacomp

SHA_META = "ab" * 32
SHA_IMAGE = "cd" * 32


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


def _flip(hex_hash: str, bits: list[int]) -> str:
    """A pHash as imagehash prints it, with the given bits flipped."""
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:016x}"


def _write_hashes(lake: Lake, shard: str, rows: list[dict]) -> None:
    path = lake.partition_dir("image_hashes", shard) / "hashes.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    full = [{"key": f"{i:09d}", "error": None, **r} for i, r in enumerate(rows)]
    pq.write_table(pa.Table.from_pylist(full, schema=HASHES_SCHEMA), path)


def _write_lists(folder, files: dict[str, str]):
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _ingest(conn, lake, tmp_path, shard: str, seq: int, rows: list[dict]) -> None:
    path = write_datacomp(tmp_path / "source" / f"{shard}.parquet", rows)
    ingest_shard(conn, lake, shard, seq, str(path))


# ---------------------------------------------------------------- reading lists


def test_lists_from_csv_and_parquet_become_one_table(tmp_path):
    folder = _write_lists(
        tmp_path / "lists",
        {
            "dmca.csv": "URL, reason ,reference\nhttp://a.org/x.jpg,dmca,REQ-7\n\n,,\n http://b.org/y ,,\n"
        },
    )
    pq.write_table(
        pa.table(
            {
                "uid": [uid(1).upper(), None],
                "sha256": [None, SHA_IMAGE.upper()],
                "phash": pa.array([None, None], pa.string()),
            }
        ),
        folder / "hashes.parquet",
    )
    table = takedown.load_lists(folder)
    assert table.schema == takedown.LISTS_SCHEMA
    assert table.to_pylist() == [
        _entry("dmca", 1, "url", "http://a.org/x.jpg", "dmca", "REQ-7"),
        _entry("dmca", 4, "url", "http://b.org/y"),  # blank rows are skipped, keep their numbers
        _entry("hashes", 1, "uid", uid(1)),  # hex in lower case
        _entry("hashes", 2, "sha256", SHA_IMAGE),
    ]


def _entry(name, number, kind, value, reason=None, reference=None) -> dict:
    return {
        "list": name,
        "entry": number,
        "kind": kind,
        "value": value,
        "reason": reason,
        "reference": reference,
    }


def test_one_list_file_and_an_empty_folder(tmp_path):
    folder = _write_lists(tmp_path / "lists", {"p.csv": "phash\nE86A6CAA19C3570F\n"})
    assert takedown.load_lists(folder / "p.csv").column("value").to_pylist() == ["e86a6caa19c3570f"]
    empty = tmp_path / "empty"
    empty.mkdir()
    table = takedown.load_lists(empty)
    assert table.num_rows == 0 and table.schema == takedown.LISTS_SCHEMA


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uid,url,reason\n,,because\n", "row 1: no uid, url, sha256 or phash set"),
        (f"uid,url\n{uid(1)},http://a.org/x\n", "row 1: uid and url both set"),
        (f"sha256\n{SHA_META}\n{'z' * 64}\n", "row 2: sha256: 'zzz"),
        ("phash\ne86a6caa19c3570\n", "row 1: phash: 'e86a6caa19c3570' is not 16 hex digits"),
        ("uid\nnot-a-uid\n", "row 1: uid: 'not-a-uid' is not 32 hex digits"),
        ("url,reason\nhttp://a.org/x,ok\nnot a url,bad\n", "row 2: url: 'not a url' is not a URL"),
        ("uid,note\n", "column 'note': unknown column"),
        ("uid,uid\n", "column 'uid': appears twice"),
        ("reason\nwhy\n", "no uid, url, sha256 or phash column"),
        (f"uid\n{uid(1)},extra\n", "row 1: 2 fields, the header has 1"),
    ],
)
def test_a_bad_csv_list_names_file_row_and_field(tmp_path, text, message):
    folder = _write_lists(tmp_path / "lists", {"bad.csv": text})
    with pytest.raises(takedown.ListError, match="bad.csv") as err:
        takedown.load_lists(folder)
    assert message in str(err.value)


def test_a_bad_parquet_list_names_file_and_column(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    pq.write_table(pa.table({"phash": pa.array([1, 2], pa.int64())}), folder / "p.parquet")
    with pytest.raises(takedown.ListError, match=r"p\.parquet: column 'phash' is int64"):
        takedown.load_lists(folder)
    pq.write_table(pa.table({"uid": [uid(1), "xyz"]}), folder / "p.parquet")
    with pytest.raises(takedown.ListError, match=r"p\.parquet: row 2: uid: 'xyz'"):
        takedown.load_lists(folder)


def test_a_folder_with_something_else_than_lists_is_refused(tmp_path):
    folder = _write_lists(tmp_path / "lists", {"a.csv": "uid\n", "notes.txt": "hi"})
    with pytest.raises(takedown.ListError, match=r"notes\.txt: not a list"):
        takedown.load_lists(folder)
    (folder / "notes.txt").unlink()
    pq.write_table(pa.table({"uid": [uid(1)]}), folder / "a.parquet")
    with pytest.raises(takedown.ListError, match="also list 'a'"):
        takedown.load_lists(folder)
    (folder / "a.parquet").unlink()
    (folder / "a.csv").write_bytes(b"uid\n\xff\xfe\n")
    with pytest.raises(takedown.ListError, match=r"a\.csv: not a readable UTF-8 CSV"):
        takedown.load_lists(folder)
    with pytest.raises(FileNotFoundError, match="no such takedown list"):
        takedown.load_lists(tmp_path / "missing")


# ---------------------------------------------------------------- matching


@pytest.fixture
def pool(conn, lake, tmp_path):
    """Shard a (with image hashes) and shard b (without): rows 1-7 in a, 8-9 in b."""
    near, far = _image(5), _image(6)
    _ingest(
        conn,
        lake,
        tmp_path,
        "a",
        0,
        [
            row(1),
            row(2, url="HTTP://IMG.example.com:80/2.jpg/?utm_source=mail#top"),
            row(3, url="http://img.example.com/2.JPG"),  # path case is kept: another URL
            row(4, sha256=SHA_META),
            row(5),
            row(6),
            row(7),
        ],
    )
    _write_hashes(
        lake,
        "a",
        [
            {"uid": uid(5), "sha256": SHA_IMAGE, "phash": 17},
            {"uid": uid(6), "sha256": "ee" * 32, "phash": phash64(near)},
            {"uid": uid(7), "sha256": "ff" * 32, "phash": phash64(far)},
        ],
    )
    _ingest(conn, lake, tmp_path, "b", 1, [row(8), row(9, sha256=SHA_META.upper())])
    return {"near": str(imagehash.phash(near)), "far": str(imagehash.phash(far))}


def _matches(table: pa.Table) -> set[tuple]:
    return {
        (r["uid"], r["shard"], r["row_idx"], r["list"], r["entry"], r["matched_on"], r["distance"])
        for r in table.to_pylist()
    }


def test_every_kind_of_entry_finds_its_rows(conn, lake, tmp_path, pool):
    lists = takedown.load_lists(
        _write_lists(
            tmp_path / "lists",
            {
                "req.csv": f"uid,url,reference\n{uid(1)},,R1\n,http://img.example.com/2.jpg,R2\n"
                f"{uid(8)},,R3\n",
                "hashes.csv": f"sha256,phash\n{SHA_META.upper()},\n{SHA_IMAGE},\n"
                f",{_flip(pool['near'], [0, 9, 63])}\n,{_flip(pool['far'], [1, 2, 3, 4, 5])}\n",
            },
        )
    )
    table = takedown.match_removals(conn, lake, lists, ["a", "b"])
    assert table.schema == takedown.REMOVALS_SCHEMA
    assert _matches(table) == {
        (uid(1), "a", 0, "req", 1, "uid", 0),
        (uid(2), "a", 1, "req", 2, "url", 0),  # normalize_url erases case, port, slash, utm, #
        (uid(8), "b", 0, "req", 3, "uid", 0),
        (uid(4), "a", 3, "hashes", 1, "sha256_metadata", 0),
        (uid(9), "b", 1, "hashes", 1, "sha256_metadata", 0),  # any case
        (uid(5), "a", 4, "hashes", 2, "sha256_image", 0),
        (uid(6), "a", 5, "hashes", 3, "phash", 3),  # 3 bits off; 5 bits off (uid 7) is not
    }
    reference = {r["uid"]: r["reference"] for r in table.to_pylist() if r["list"] == "req"}
    assert reference == {uid(1): "R1", uid(2): "R2", uid(8): "R3"}
    assert takedown.shards_without_hashes(lake, ["a", "b"]) == ["b"]
    kept = "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
    assert conn.execute(kept).fetchall() == []  # nothing left in the lake's catalog
    project = SqlProject()  # the models' YAML tests, on what they just built (shard b's matches)
    for name in (takedown.ENTRIES_MODEL, takedown.MATCHES_MODEL):
        assert column_test_failures(conn, project.model(name), name) == []
    wider = takedown.match_removals(conn, lake, lists, ["a"], phash_max_distance=5)
    assert (uid(7), "a", 6, "hashes", 4, "phash", 5) in _matches(wider)


def test_a_row_matched_by_several_entries_has_one_row_per_match(conn, lake, tmp_path, pool):
    lists = takedown.load_lists(
        _write_lists(
            tmp_path / "lists",
            {"one.csv": f"uid\n{uid(5)}\n", "two.csv": f"sha256,phash\n{SHA_IMAGE},\n,{17:016x}\n"},
        )
    )
    table = takedown.match_removals(conn, lake, lists, ["a", "b"])
    assert _matches(table) == {
        (uid(5), "a", 4, "one", 1, "uid", 0),
        (uid(5), "a", 4, "two", 1, "sha256_image", 0),
        (uid(5), "a", 4, "two", 2, "phash", 0),
    }


def test_phash_matches_are_exactly_those_within_the_distance(conn, lake, tmp_path):
    """The pigeonhole block join finds what comparing every pair finds, at every distance."""
    rng = random.Random(7)
    entries = [rng.getrandbits(64) for _ in range(6)]
    images = [rng.getrandbits(64) for _ in range(30)]
    for value in entries:  # copies of each entry from 0 to 9 bits off
        for bits in range(10):
            images.append(value ^ sum(1 << b for b in rng.sample(range(64), bits)))
    _ingest(conn, lake, tmp_path, "s", 0, [row(i) for i in range(len(images))])
    signed = [v - (1 << 64) if v >= 1 << 63 else v for v in images]
    _write_hashes(
        lake, "s", [{"uid": uid(i), "sha256": "0" * 64, "phash": v} for i, v in enumerate(signed)]
    )
    text = "phash\n" + "".join(f"{v:016x}\n" for v in entries)
    lists = takedown.load_lists(_write_lists(tmp_path / "lists", {"p.csv": text}))
    for distance in (0, 1, 4, 7):
        found = takedown.match_removals(conn, lake, lists, ["s"], phash_max_distance=distance)
        expected = {
            (uid(i), "s", i, "p", e + 1, "phash", (v ^ w).bit_count())
            for i, v in enumerate(images)
            for e, w in enumerate(entries)
            if (v ^ w).bit_count() <= distance
        }
        assert _matches(found) == expected, distance
        assert len(expected) >= 6 * (distance + 1)


def test_a_distance_beyond_half_the_bits_is_refused(conn, lake):
    with pytest.raises(ValueError, match="phash_max_distance 33"):
        takedown.match_removals(conn, lake, takedown.LISTS_SCHEMA.empty_table(), [], 33)


# ---------------------------------------------------------------- removals files


def test_removals_are_written_per_shard_with_empty_files(conn, lake, tmp_path, pool):
    lists = takedown.load_lists(
        _write_lists(tmp_path / "lists", {"u.csv": f"uid\n{uid(1)}\n{uid(2)}\n"})
    )
    table = takedown.match_removals(conn, lake, lists, ["a", "b"])
    assert takedown.write_removals(lake, table, ["a", "b"]) == {"a": 2, "b": 0}
    a = pq.read_table(lake.partition_dir("removals", "a") / "removals.parquet")
    b = pq.read_table(lake.partition_dir("removals", "b") / "removals.parquet")
    assert a.schema == b.schema == takedown.REMOVALS_SCHEMA
    assert a.column("uid").to_pylist() == [uid(1), uid(2)] and b.num_rows == 0
    files = [lake.partition_dir("removals", s) / "removals.parquet" for s in ("a", "b")]
    mtimes = [f.stat().st_mtime_ns for f in files]
    takedown.write_removals(lake, table, ["a", "b"])  # the same rows: files left as they are
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    with pytest.raises(ValueError, match=r"shards \['a'\] not among"):
        takedown.write_removals(lake, table, ["b"])


# ---------------------------------------------------------------- what they touch


def _write_decisions(lake: Lake, strategy: str, kept: list[int], dropped: list[int]) -> None:
    path = lake.partition_dir("subset", strategy) / "decisions.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    uids = [uid(i) for i in kept + dropped]
    keep = [True] * len(kept) + [False] * len(dropped)
    reasons = [None] * len(kept) + ["some_rule"] * len(dropped)
    pq.write_table(pa.table({"uid": uids, "keep": keep, "reason": reasons}), path)


def test_affected_names_the_subsets_keeping_removed_uids_and_what_was_built_on_them(lake):
    _write_decisions(lake, "basic", kept=list(range(1, 16)), dropped=[20, 21])
    _write_decisions(lake, "top/30", kept=[2, 30], dropped=[1, 3])  # a quoted partition
    _write_decisions(lake, "strict", kept=[40], dropped=[1, 2, 3])
    _write_decisions(lake, "elsewhere", kept=[50], dropped=[51])
    for asset in ("train_shards", "clip_model", "evaluation"):
        lake.partition_dir(asset, "basic").mkdir(parents=True)
    lake.partition_dir("clip_model", "top/30").mkdir(parents=True)
    removed = [uid(i) for i in (*range(1, 13), 20, 30, 30)]
    doc = takedown.affected(lake, removed)
    assert doc["removed_uids"] == 14
    assert doc["subsets_checked"] == ["basic", "elsewhere", "strict", "top/30"]
    assert doc["affected"] == {
        "basic": {
            "kept": 12,
            "dropped": 1,
            "examples": [uid(i) for i in range(1, 11)],  # ten, the smallest
            "built_on": {"train_shards": True, "clip_model": True, "evaluation": True},
        },
        "top/30": {
            "kept": 2,
            "dropped": 2,
            "examples": [uid(2), uid(30)],
            "built_on": {"train_shards": False, "clip_model": True, "evaluation": False},
        },
    }
    assert doc["unaffected_held"] == {"strict": {"dropped": 3}}
    assert takedown.affected(lake, [])["affected"] == {}


def test_the_report_reads_as_text(conn, lake, tmp_path, pool):
    lists = takedown.load_lists(
        _write_lists(tmp_path / "lists", {"u.csv": f"uid,reason\n{uid(1)},dmca\n"})
    )
    matches = takedown.match_removals(conn, lake, lists, ["a", "b"])
    _write_decisions(lake, "basic", kept=[1], dropped=[])
    found = takedown.affected(lake, matches.column("uid").to_pylist())
    doc = takedown.report(lists, matches, found, ["a", "b"], ["b"])
    text = takedown.format_report(doc)
    assert "lists: 1 (1 entries: 1 uid), matched against 2 shard(s)" in text
    assert "image sha256 and pHash not compared) for: b" in text
    assert "shard a row 0: list u entry 1 by uid [dmca]" in text
    assert "basic: keeps 1" in text and "built on it: nothing yet" in text


def test_download_blocks_name_the_entry_of_every_row_refused_before_the_download(
    lake, tmp_path, pool
):
    folder = _write_lists(
        tmp_path / "lists",
        {
            "req.csv": f"uid,url\n{uid(8)},\n,HTTP://img.example.com/1.jpg\n",
            "hashes.csv": f"sha256\n{SHA_META.upper()}\n{'ab' * 32}\n",
        },
    )
    blocks = takedown.download_blocks(lake, "b", str(folder), 4)
    assert blocks.rows == {
        uid(8): "removed: takedown list 'req' entry 1 (matched on uid)",
        uid(9): "removed: takedown list 'hashes' entry 1 (matched on sha256_metadata)",
    }
    assert blocks.sha256 == {SHA_META.lower(), "ab" * 32}  # the guard refuses served bytes
    assert takedown.download_blocks(lake, "b", "", 4) == takedown.NO_BLOCKS
    with pytest.raises(FileNotFoundError, match="no such takedown list"):
        takedown.download_blocks(lake, "b", str(tmp_path / "none"), 4)


def test_lists_are_parsed_once_per_content_and_kept_in_the_lake(lake, tmp_path, monkeypatch):
    folder = _write_lists(tmp_path / "lists", {"req.csv": f"uid\n{uid(8)}\n"})
    first = takedown.parsed_lists(lake, folder)
    (cached,) = (lake.root / takedown.PARSED_FOLDER).glob("parsed-*.parquet")

    def not_again(path):
        raise AssertionError(f"parsed again: {path}")

    monkeypatch.setattr(takedown, "load_lists", not_again)
    assert takedown.parsed_lists(lake, folder).equals(first)  # read back, not parsed
    monkeypatch.undo()
    (folder / "req.csv").write_text(f"uid\n{uid(9)}\n")  # an edited list: parsed again
    edited = takedown.parsed_lists(lake, folder)
    assert edited.column("value").to_pylist() == [uid(9)]
    (now,) = (lake.root / takedown.PARSED_FOLDER).glob("parsed-*.parquet")
    assert now != cached  # the old version removed
    (folder / "bad.csv").write_text("uid\nnot-a-uid\n")
    with pytest.raises(takedown.ListError, match="bad.csv"):  # a bad list is never cached
        takedown.parsed_lists(lake, folder)
