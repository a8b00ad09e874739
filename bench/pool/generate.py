"""A DataComp-format pool of DataComp small's size (12.8M rows in 128 parquet files), generated.

    .venv/bin/python bench/pool/generate.py --out bench/pool/data/small [--rows 12800000]
        [--files 128] [--npz-files 4] [--npz-link] [--seed 0] [--workers 2]
    .venv/bin/python bench/pool/generate.py --out DIR --append 100000   # one more shard

Layout of ``DIR``: ``source/part-NNNNN.parquet`` (DataComp's metadata schema: uid, url, text,
original_width, original_height, clip_b32_similarity_score, clip_l14_similarity_score,
face_bboxes, sha256), ``source/part-NNNNN.npz`` beside the first ``--npz-files`` files (keys
b32_img, b32_txt [512-d], l14_img, l14_txt [768-d], float16, row-aligned with the parquet),
``exemplars_l14.npy`` (float32 L/14 image embeddings standing in for ImageNet-1k's) and
``manifest.json`` (the spec, what was planted and what a correct run must find).

DataComp small's real ``.npz`` files take 65 GB (12.8M rows x 2,560 float16); this machine's disk
cannot hold that beside everything else. ``--npz-link`` gives every other file an ``.npz`` too, as
a hard link to a generated file's of the same row count, and copies that file's two score
columns row for row (so the alignment check holds): every shard has its embeddings, as in
DataComp, on ``--npz-files`` x 512 MB of disk. The linked embeddings repeat (under other uids);
reads of them come from the page cache more often than 65 GB of distinct files would.

What is planted (rates per row; every figure is exact and recorded in the manifest):

* captions of ~65% English and 17 other languages (bench/pool/words.py), word counts
  log-normal around 7 (1-60), 1.5% empty, 0.2% NULL; separators mostly ' ', some double
  spaces, no-break spaces (U+00A0), em spaces (U+2003), tabs and newlines; leading tabs, trailing
  newlines, '\\r\\n'. Chinese, Japanese and Thai without spaces;
* 12% duplicate URLs: 8% the exact URL of an earlier row, 4% a variant of it that
  normalize_url maps to the same URL (upper-case scheme or host, default port, trailing '/',
  '#fragment', utm_*/fbclid/gclid parameters, combinations); 30% of duplicates point within the
  previous 1,000 rows (mostly the same file), the rest anywhere earlier (mostly other files);
* 0.05% invalid rows, one reason each: URL missing or blank, an ftp:/data: scheme, a space in
  the host, a malformed uid, a non-positive or fractional-free bad size, a score out of [-1, 1]
  (never in files with an .npz, whose scores must match the embeddings);
* sizes: log-normal around 600 px with aspect ratios around 1 (4% wide banners), 3% tiny
  (1-150 px), 0.3% 1x1, 1.5% missing (NULL);
* scores: B/32 ~ N(0.30, 0.05), L/14 ~ N(0.25, 0.05), correlated (rho 0.6), 0.3% NULL (files
  without .npz only). Rows of a file with an .npz carry exactly the cosine of its float16
  img/txt embeddings (so metadata_embeddings' alignment check passes);
* image embeddings drawn around 256 concept centres (a common cone direction plus noise), so
  k-means finds structure; the exemplars come from 64 of the concepts.

Deterministic: everything global (duplicates, their sources, invalid rows) is a hash of the
row's global index and the seed; everything per row inside a file comes from a generator seeded
by (seed, file index). Files are written by ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from words import MIX, NEUTRAL, SPACELESS, vocabulary  # noqa: E402

from poolsieve_demo.rows import SCHEMA as DATACOMP_SCHEMA  # noqa: E402

GEN_VERSION = 1
SOURCE = "source"
EXEMPLARS = "exemplars_l14.npy"
MANIFEST = "manifest.json"
DIMS = {"b32": 512, "l14": 768}
CONCEPTS = 256
EXEMPLAR_CONCEPTS = 64
LOCAL_WINDOW = 1000
HOSTS = 20_000

# salts of the row-level hashes
S_KIND, S_SRC, S_LOCAL, S_INVALID, S_INVALID_KIND, S_VARIANT = 11, 12, 13, 14, 15, 16
S_SCHEME, S_HOST, S_PATH, S_SEG, S_EXT, S_QUERY = 21, 22, 23, 24, 25, 26

INVALID_KINDS = [
    "url_missing",
    "url_blank",
    "url_scheme_ftp",
    "url_scheme_data",
    "url_unparseable",
    "uid_malformed",
    "size_invalid",
    "score_invalid",
]
#: staging's reason for each planted kind
INVALID_REASON = {
    "url_missing": "url_missing",
    "url_blank": "url_missing",
    "url_scheme_ftp": "url_scheme",
    "url_scheme_data": "url_scheme",
    "url_unparseable": "url_unparseable",
    "uid_malformed": "uid_malformed",
    "size_invalid": "size_invalid",
    "score_invalid": "score_invalid",
}


@dataclass(frozen=True)
class PoolSpec:
    rows: int = 12_800_000
    files: int = 128
    npz_files: int = 4
    npz_link: bool = False  # the other files get an .npz too: a hard link to a generated one
    seed: int = 0
    exact_dup_rate: float = 0.08
    variant_dup_rate: float = 0.04
    invalid_rate: float = 0.0005


@dataclass(frozen=True)
class FilePlan:
    index: int
    start: int  # global index of its first row
    rows: int
    npz: bool  # has an .npz (generated, or linked to npz_from's)
    npz_from: int | None = None  # the file whose .npz (and scores) this one shares

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"


def file_plans(spec: PoolSpec) -> list[FilePlan]:
    """The files in pool order. With ``npz_link``, file i >= npz_files shares the .npz of a
    generated file of the same row count (i mod npz_files, or the first such) and its scores."""
    base, extra = divmod(spec.rows, spec.files)
    plans, start = [], 0
    for i in range(spec.files):
        rows = base + (1 if i < extra else 0)
        src = None
        if spec.npz_link and i >= spec.npz_files > 0:
            same = [j for j in range(spec.npz_files) if plans[j].rows == rows]
            src = same[i % len(same)] if same else None
        plans.append(FilePlan(i, start, rows, i < spec.npz_files or src is not None, src))
        start += rows
    return plans


# ---------------------------------------------------------------- hashing (global decisions)


def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``x`` (uint64) with ``salt``: a well-mixed 64-bit hash, vectorized."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _unit(x: np.ndarray, salt: int, seed: int) -> np.ndarray:
    """A uniform [0, 1) per element, a function of (x, salt, seed)."""
    h = _mix(x, (seed * 1_000_003 + salt) & 0xFFFFFFFFFFFF)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _dup_kind(g: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """0 original, 1 exact duplicate, 2 variant duplicate (row 0 is always an original)."""
    u = _unit(g, S_KIND, spec.seed)
    kind = np.where(u < spec.exact_dup_rate, 1, 0)
    kind = np.where(
        (u >= spec.exact_dup_rate) & (u < spec.exact_dup_rate + spec.variant_dup_rate), 2, kind
    )
    return np.where(g == 0, 0, kind).astype(np.int8)


def _dup_source(g: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """The earlier row a duplicate copies: 30% within the previous LOCAL_WINDOW rows."""
    local = _unit(g, S_LOCAL, spec.seed) < 0.3
    u = _unit(g, S_SRC, spec.seed)
    gf = g.astype(np.float64)
    near = g - 1 - np.floor(u * np.minimum(gf, LOCAL_WINDOW)).astype(np.int64)
    anywhere = np.floor(u * gf).astype(np.int64)
    return np.where(local, near, anywhere)


def url_ids(g: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """The original row whose URL each row carries (itself unless a duplicate; chains resolved)."""
    ids = g.astype(np.int64).copy()
    while True:
        dup = _dup_kind(ids, spec) > 0
        if not dup.any():
            return ids
        ids[dup] = _dup_source(ids[dup], spec)


def invalid_kind(g: np.ndarray, spec: PoolSpec, npz: bool) -> np.ndarray:
    """Index into INVALID_KINDS, or -1 for a valid row (score_invalid never in an .npz file)."""
    bad = _unit(g, S_INVALID, spec.seed) < spec.invalid_rate
    kinds = len(INVALID_KINDS) - (1 if npz else 0)
    kind = np.floor(_unit(g, S_INVALID_KIND, spec.seed) * kinds).astype(np.int8)
    return np.where(bad, kind, -1).astype(np.int8)


# ---------------------------------------------------------------- strings, vectorized

_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def hex_strings(raw: np.ndarray) -> pa.Array:
    """uint8 [n, k] -> n hex strings of 2k characters."""
    n, k = raw.shape
    joined = np.ascontiguousarray(_HEX[raw]).view(f"S{2 * k}").reshape(n)
    return pa.array(joined, pa.binary()).cast(pa.string())


def hex64(h: np.ndarray) -> pa.Array:
    """uint64 -> 16 hex characters each."""
    return hex_strings(h.astype(">u8").view(np.uint8).reshape(-1, 8))


def _pick(options: list[str], index: np.ndarray) -> pa.Array:
    return pa.array(options, pa.string()).take(pa.array(index, pa.int64()))


def _concat(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _host_table(seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 7])
    en = vocabulary("en")
    words = [w for w in en if w.isalpha() and len(w) > 2]
    tlds = ["com", "com", "com", "net", "org", "de", "co.uk", "fr", "ru", "jp", "com.br", "it"]
    fixed = [
        "i.pinimg.com",
        "images-na.ssl-images-amazon.com",
        "i.ebayimg.com",
        "cdn.shopify.com",
        "upload.wikimedia.org",
        "i.etsystatic.com",
        "media.istockphoto.com",
        "img.alicdn.com",
    ]
    hosts = list(fixed)
    while len(hosts) < HOSTS:
        a, b = rng.choice(words, 2)
        form = rng.integers(4)
        tld = tlds[rng.integers(len(tlds))]
        name = (
            f"{a}{b}.{tld}",
            f"www.{a}-{b}.{tld}",
            f"cdn{rng.integers(1, 9)}.{a}{b}.{tld}",
            f"images.{a}.{tld}",
        )[form]
        if len(hosts) > 1000 and rng.random() < 0.02:  # not among the most popular hosts
            name = name.upper() if rng.random() < 0.5 else name.title()
        hosts.append(name)
    return hosts


SEGMENTS = [
    "/images",
    "/wp-content/uploads/2019/05",
    "/wp-content/uploads/2021/11",
    "/media/catalog/product/cache/1",
    "/photos",
    "/img",
    "/uploads",
    "/files/products",
    "/p",
    "/s/files/1/0123/4567/products",
    "/236x/3f/a1",
    "/thumbs/Large",
    "/Images/Gallery",
]
EXTS = [".jpg"] * 14 + [".jpeg", ".png", ".png", ".png", ".webp", ".JPG", ".gif", ""]


def urls(
    ids: np.ndarray, g: np.ndarray, kind: np.ndarray, spec: PoolSpec, hosts: list[str]
) -> pa.Array:
    """The URL of each row: its original's (``ids``) with, for variant duplicates, one of the
    changes normalize_url undoes."""
    seed = spec.seed
    https = _unit(ids, S_SCHEME, seed) < 0.8
    host_i = np.floor(len(hosts) * _unit(ids, S_HOST, seed) ** 3).astype(np.int64)
    seg = np.floor(len(SEGMENTS) * _unit(ids, S_SEG, seed)).astype(np.int64)
    ext = np.floor(len(EXTS) * _unit(ids, S_EXT, seed)).astype(np.int64)
    q = _unit(ids, S_QUERY, seed)
    key = hex64(_mix(ids, S_PATH + seed * 1_000_003))
    host = _pick(hosts, host_i)
    path = _concat(_pick(SEGMENTS, seg), pa.scalar("/"), key, _pick(EXTS, ext))
    wq = pc.cast(pa.array(200 + (q * 1e6).astype(np.int64) % 1800), pa.string())
    query = pc.if_else(
        pa.array(q < 0.15),
        _concat(pa.scalar("?w="), wq, pa.scalar("&h="), wq),
        pc.if_else(pa.array(q < 0.25), _concat(pa.scalar("?v="), wq), pa.scalar("")),
    )
    variant = np.where(kind == 2, np.floor(_unit(g, S_VARIANT, seed) * 8).astype(np.int64), -1)
    scheme = pa.array(np.where(https, "https", "http"))
    scheme = pc.if_else(pa.array(variant == 0), pc.utf8_upper(scheme), scheme)
    host = pc.if_else(pa.array((variant == 1) | (variant == 7)), pc.utf8_upper(host), host)
    port = pa.array(np.where(variant == 2, np.where(https, ":443", ":80"), ""))
    path = pc.if_else(
        pa.array((variant == 3) | (variant == 7)), _concat(path, pa.scalar("/")), path
    )
    has_q = pc.not_equal(query, pa.scalar(""))
    tracking = np.array(
        [
            "",
            "utm_source=pinterest",
            "fbclid=IwAR0xZ9",
            "gclid=Cj0KCQ",
            "utm_medium=social&utm_campaign=x",
        ]
    )
    tr_kind = np.where(variant == 5, 1 + (g % 4), 0)
    tr = pa.array(tracking[tr_kind])
    sep = pc.if_else(has_q, pa.scalar("&"), pa.scalar("?"))
    query = pc.if_else(pa.array(tr_kind > 0), _concat(query, sep, tr), query)
    frag = pa.array(
        np.where((variant == 4) | (variant == 7), "#main", np.where(variant == 6, "#", ""))
    )
    return _concat(scheme, pa.scalar("://"), host, port, path, query, frag)


# ---------------------------------------------------------------- captions

_LANGS = list(MIX)
_VOCAB = [vocabulary(lang) for lang in _LANGS]
_ALL_WORDS = pa.array([w for v in _VOCAB for w in v] + NEUTRAL, pa.string())
_OFFSETS = np.cumsum([0] + [len(v) for v in _VOCAB])
_SIZES = np.array([len(v) for v in _VOCAB])
_NEUTRAL_AT = int(_OFFSETS[-1])

SEPARATORS = [" ", "  ", "\u00a0", "\u2003", "\n", "\t", ""]
SEP_P = [0.925, 0.02, 0.015, 0.005, 0.02, 0.005, 0.01]
PREFIXES = ["", "\t", "\u00a0", " "]
PREFIX_P = [0.97, 0.015, 0.005, 0.01]
SUFFIXES = ["", "\n", " ", "\r\n", "\t"]
SUFFIX_P = [0.94, 0.04, 0.01, 0.005, 0.005]


def captions(rng: np.random.Generator, n: int) -> tuple[pa.Array, np.ndarray]:
    """n captions and each one's language index (into words.MIX)."""
    lang = rng.choice(len(_LANGS), n, p=np.array(list(MIX.values())) / sum(MIX.values()))
    length = np.clip(np.rint(np.exp(rng.normal(np.log(7), 0.75, n))), 1, 60).astype(np.int64)
    length[rng.random(n) < 0.015] = 0
    total = int(length.sum())
    owner = np.repeat(np.arange(n), length)
    word = _OFFSETS[lang[owner]] + np.floor(_SIZES[lang[owner]] * rng.random(total) ** 1.7).astype(
        np.int64
    )
    neutral = rng.random(total) < 0.08
    word[neutral] = _NEUTRAL_AT + rng.integers(0, len(NEUTRAL), int(neutral.sum()))
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), _ALL_WORDS.take(pa.array(word)))
    sep_i = rng.choice(len(SEPARATORS), n, p=SEP_P)
    spaceless = np.isin(lang, [_LANGS.index(x) for x in SPACELESS])
    sep_i = np.where(spaceless & (rng.random(n) < 0.8), SEPARATORS.index(""), sep_i)
    sep_i = np.where(~spaceless & (sep_i == SEPARATORS.index("")), 0, sep_i)
    text = pc.binary_join(lists, _pick(SEPARATORS, sep_i))
    prefix = _pick(PREFIXES, rng.choice(len(PREFIXES), n, p=PREFIX_P))
    suffix = _pick(SUFFIXES, rng.choice(len(SUFFIXES), n, p=SUFFIX_P))
    text = _concat(prefix, text, suffix)
    null = pa.array(rng.random(n) < 0.002)
    return pc.if_else(null, pa.scalar(None, pa.string()), text), lang


# ---------------------------------------------------------------- sizes, scores, boxes


def sizes(rng: np.random.Generator, n: int) -> tuple[pa.Array, pa.Array]:
    w = np.exp(rng.normal(np.log(600), 0.55, n))
    aspect = np.exp(np.where(rng.random(n) < 0.04, rng.normal(0, 1.0, n), rng.normal(0, 0.3, n)))
    h = w / aspect
    tiny = rng.random(n) < 0.03
    w[tiny], h[tiny] = rng.uniform(1, 150, (2, int(tiny.sum())))
    dot = rng.random(n) < 0.003
    w[dot], h[dot] = 1, 1
    w, h = (np.clip(np.rint(x), 1, 20_000).astype(np.int64) for x in (w, h))
    missing = rng.random(n) < 0.015
    return pa.array(w, mask=missing), pa.array(h, mask=missing)


def score_targets(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    z1 = rng.standard_normal(n)
    z2 = 0.6 * z1 + 0.8 * rng.standard_normal(n)
    return np.clip(0.30 + 0.05 * z1, -0.2, 0.7), np.clip(0.25 + 0.05 * z2, -0.2, 0.7)


def face_bboxes(rng: np.random.Generator, n: int) -> pa.Array:
    u = rng.random(n)
    count = np.where(u < 0.10, 1, 0) + np.where(u < 0.02, rng.integers(1, 3, n), 0)
    boxes = int(count.sum())
    xy = np.sort(rng.random((boxes, 2, 2)), axis=1)  # x1<x2, y1<y2
    flat = np.stack([xy[:, 0, 0], xy[:, 0, 1], xy[:, 1, 0], xy[:, 1, 1]], axis=1).ravel()
    inner = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 4 * boxes + 1, 4, dtype=np.int32)), pa.array(flat)
    )
    outer_offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner)


# ---------------------------------------------------------------- embeddings (.npz)


def concept_centres(seed: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng([seed, dim, 99])
    cone = rng.standard_normal(dim)
    cone /= np.linalg.norm(cone)
    c = 0.6 * cone + rng.standard_normal((CONCEPTS, dim)) / np.sqrt(dim)
    return (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embed_pair(rng, centres: np.ndarray, concept: np.ndarray, target: np.ndarray):
    """float16 (img, txt) unit vectors with cos ~ target, and their exact float32 cosine."""
    n, dim = len(concept), centres.shape[1]
    img = _unit_rows(
        centres[concept] + 0.8 * rng.standard_normal((n, dim), np.float32) / np.sqrt(dim)
    )
    r = rng.standard_normal((n, dim), np.float32)
    r -= np.sum(r * img, axis=1, keepdims=True) * img
    r = _unit_rows(r)
    t = target[:, None].astype(np.float32)
    txt = t * img + np.sqrt(1 - t * t) * r
    img16, txt16 = img.astype(np.float16), _unit_rows(txt).astype(np.float16)
    a, b = img16.astype(np.float32), txt16.astype(np.float32)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return img16, txt16, cos.astype(np.float32)


def embeddings(rng, n: int, b32: np.ndarray, l14: np.ndarray, seed: int, chunk: int = 20_000):
    """The four npz arrays for n rows and the cosines (B/32, L/14), in chunks of ``chunk``."""
    out = {k: [] for k in ("b32_img", "b32_txt", "l14_img", "l14_txt", "b32", "l14")}
    centres = {m: concept_centres(seed, d) for m, d in DIMS.items()}
    concept = rng.integers(0, CONCEPTS, n)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        for model, target in (("b32", b32), ("l14", l14)):
            img, txt, cos = embed_pair(rng, centres[model], concept[sl], target[sl])
            out[f"{model}_img"].append(img)
            out[f"{model}_txt"].append(txt)
            out[model].append(cos)
    return {k: np.concatenate(v) for k, v in out.items()}


def write_exemplars(out: Path, seed: int, count: int = 1000) -> Path:
    rng = np.random.default_rng([seed, 5])
    centres = concept_centres(seed, DIMS["l14"])
    concept = rng.integers(0, EXEMPLAR_CONCEPTS, count)
    img = _unit_rows(
        centres[concept] + 0.8 * rng.standard_normal((count, DIMS["l14"])) / np.sqrt(DIMS["l14"])
    )
    path = out / EXEMPLARS
    np.save(path, img.astype(np.float32))
    return path


# ---------------------------------------------------------------- one file


#: DataComp's metadata parquet schema, as the demo world writes it
SCHEMA = DATACOMP_SCHEMA


def _apply_invalid(cols: dict, bad: np.ndarray, ids: np.ndarray) -> dict:
    """Replace the planted invalid rows' values (one reason each)."""
    k = {name: bad == i for i, name in enumerate(INVALID_KINDS)}
    url = cols["url"]
    url = pc.if_else(pa.array(k["url_missing"]), pa.scalar(None, pa.string()), url)
    url = pc.if_else(pa.array(k["url_blank"]), pa.scalar("  "), url)
    key = hex64(_mix(ids, 999))
    url = pc.if_else(
        pa.array(k["url_scheme_ftp"]),
        _concat(pa.scalar("ftp://files.example.org/"), key, pa.scalar(".jpg")),
        url,
    )
    url = pc.if_else(
        pa.array(k["url_scheme_data"]), _concat(pa.scalar("data:image/png;base64,"), key), url
    )
    url = pc.if_else(
        pa.array(k["url_unparseable"]),
        _concat(pa.scalar("http://bad host.example.com/"), key, pa.scalar(".jpg")),
        url,
    )
    cols["url"] = url
    cols["uid"] = pc.if_else(pa.array(k["uid_malformed"]), pc.utf8_upper(cols["uid"]), cols["uid"])
    w = cols["original_width"]
    cols["original_width"] = pc.if_else(pa.array(k["size_invalid"]), pa.scalar(-1, pa.int64()), w)
    s = cols["clip_b32_similarity_score"]
    cols["clip_b32_similarity_score"] = pc.if_else(
        pa.array(k["score_invalid"]), pa.scalar(1.5, pa.float32()), s
    )
    return cols


def write_file(args: tuple[PoolSpec, FilePlan, str]) -> dict:
    spec, plan, source_dir = args
    started = time.perf_counter()
    rng = np.random.default_rng([spec.seed, plan.index])
    n = plan.rows
    g = np.arange(plan.start, plan.start + n, dtype=np.int64)
    kind, ids = _dup_kind(g, spec), url_ids(g, spec)
    text, lang = captions(rng, n)
    width, height = sizes(rng, n)
    b32, l14 = score_targets(rng, n)
    arrays, score_mask = None, None
    out = Path(source_dir)
    if plan.npz_from is not None:  # the linked file's scores, row for row
        template = pq.read_table(
            out / f"{FilePlan(plan.npz_from, 0, 0, True).name}.parquet",
            columns=["clip_b32_similarity_score", "clip_l14_similarity_score"],
        )
        b32 = template["clip_b32_similarity_score"].to_numpy()
        l14 = template["clip_l14_similarity_score"].to_numpy()
    elif plan.npz:
        arrays = embeddings(rng, n, b32, l14, spec.seed)
        b32, l14 = arrays.pop("b32"), arrays.pop("l14")
    else:
        score_mask = rng.random(n) < 0.003
    cols = {
        "uid": hex_strings(rng.integers(0, 256, (n, 16), dtype=np.uint8)),
        "url": urls(ids, g, kind, spec, _hosts(spec.seed)),
        "text": text,
        "original_width": width,
        "original_height": height,
        "clip_b32_similarity_score": pa.array(b32.astype(np.float32), mask=score_mask),
        "clip_l14_similarity_score": pa.array(l14.astype(np.float32), mask=score_mask),
        "face_bboxes": face_bboxes(rng, n),
        "sha256": hex_strings(rng.integers(0, 256, (n, 32), dtype=np.uint8)),
    }
    bad = invalid_kind(g, spec, plan.npz)
    cols = _apply_invalid(cols, bad, ids)
    table = pa.Table.from_arrays([cols[f.name] for f in SCHEMA], schema=SCHEMA)
    pq.write_table(table, out / f".{plan.name}.parquet.tmp", row_group_size=50_000)
    (out / f".{plan.name}.parquet.tmp").replace(out / f"{plan.name}.parquet")
    if arrays is not None:
        with open(out / f".{plan.name}.npz.tmp", "wb") as handle:
            np.savez(handle, **arrays)
        (out / f".{plan.name}.npz.tmp").replace(out / f"{plan.name}.npz")
    if plan.npz_from is not None:
        target = out / f"{plan.name}.npz"
        target.unlink(missing_ok=True)
        target.hardlink_to(out / f"{FilePlan(plan.npz_from, 0, 0, True).name}.npz")
    return {
        "file": plan.name,
        "rows": n,
        "npz": plan.npz,
        "npz_from": plan.npz_from,
        "seconds": round(time.perf_counter() - started, 2),
        "languages": np.bincount(lang, minlength=len(_LANGS)).tolist(),
    }


_HOSTS: dict[int, list[str]] = {}


def _hosts(seed: int) -> list[str]:
    if seed not in _HOSTS:
        _HOSTS[seed] = _host_table(seed)
    return _HOSTS[seed]


# ---------------------------------------------------------------- expectations


def expectations(spec: PoolSpec, plans: list[FilePlan]) -> dict:
    """What a correct ingest + dedup finds: quarantined rows per reason and URLs kept."""
    quarantined: dict[str, int] = {}
    valid_ids = []
    for plan in plans:
        g = np.arange(plan.start, plan.start + plan.rows, dtype=np.int64)
        bad = invalid_kind(g, spec, plan.npz)
        for i, name in enumerate(INVALID_KINDS):
            reason = INVALID_REASON[name]
            quarantined[reason] = quarantined.get(reason, 0) + int((bad == i).sum())
        valid_ids.append(url_ids(g[bad < 0], spec))
    ids = np.concatenate(valid_ids)
    kept = int(len(np.unique(ids)))
    kinds = _dup_kind(np.arange(plans[-1].start + plans[-1].rows, dtype=np.int64), spec)
    return {
        "rows": int(sum(p.rows for p in plans)),
        "quarantined": quarantined,
        "valid": int(len(ids)),
        "dedup_kept": kept,
        "duplicate_url": int(len(ids) - kept),
        "planted_exact_duplicates": int((kinds == 1).sum()),
        "planted_variant_duplicates": int((kinds == 2).sum()),
    }


# ---------------------------------------------------------------- CLI


def generate(spec: PoolSpec, out: Path, workers: int = 2) -> dict:
    out = Path(out)
    source = out / SOURCE
    source.mkdir(parents=True, exist_ok=True)
    plans = file_plans(spec)
    started = time.perf_counter()
    _hosts(spec.seed)  # built once before the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:  # files with a linked .npz after the files they link to
        first = [(spec, p, str(source)) for p in plans if p.npz_from is None]
        then = [(spec, p, str(source)) for p in plans if p.npz_from is not None]
        files = list(pool.imap(write_file, first)) + list(pool.imap(write_file, then))
    files.sort(key=lambda f: f["file"])
    exemplars = write_exemplars(out, spec.seed)
    wall = time.perf_counter() - started
    manifest = {
        "generator_version": GEN_VERSION,
        "spec": asdict(spec),
        "files": files,
        "appended": [],
        "exemplars": str(exemplars),
        "generate_wall_s": round(wall, 2),
        "workers": workers,
        "expected": expectations(spec, plans),
        "language_names": list(MIX),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def append_shard(out: Path, rows: int, npz: bool = True) -> dict:
    """Write one more file after the pool's last (global indices continue): the refresh's new
    shard. Duplicates in it point at rows of every earlier file."""
    out = Path(out)
    manifest = json.loads((out / MANIFEST).read_text())
    spec = PoolSpec(**manifest["spec"])
    plans = file_plans(spec) + [
        FilePlan(spec.files + i, a["start"], a["rows"], a["npz"])
        for i, a in enumerate(manifest["appended"])
    ]
    last = plans[-1]
    plan = FilePlan(last.index + 1, last.start + last.rows, rows, npz)
    info = write_file((spec, plan, str(out / SOURCE)))
    manifest["appended"].append({"start": plan.start, **info})
    manifest["expected_with_appended"] = expectations(spec, [*plans, plan])
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return {**info, "file": f"{plan.name}.parquet"}


def reset_appended(out: Path) -> None:
    """Remove the shards ``append_shard`` added (the pool is as generated again)."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return
    manifest = json.loads(path.read_text())
    for added in manifest.get("appended", []):
        for ext in ("parquet", "npz"):
            (Path(out) / SOURCE / f"{added['file']}.{ext}").unlink(missing_ok=True)
    manifest["appended"] = []
    manifest.pop("expected_with_appended", None)
    path.write_text(json.dumps(manifest, indent=1))


def disk_bytes(folder: Path) -> int:
    """Bytes the folder's files take (a hard-linked file counted once)."""
    inodes = {f.stat().st_ino: f.stat().st_size for f in Path(folder).iterdir()}
    return sum(inodes.values())


def matches(out: Path, spec: PoolSpec) -> bool:
    """Whether ``out`` already holds this spec's pool (no appended shards)."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return False
    manifest = json.loads(path.read_text())
    return (
        manifest.get("generator_version") == GEN_VERSION
        and manifest.get("spec") == asdict(spec)
        and not manifest.get("appended")
        and all((Path(out) / SOURCE / f"{p.name}.parquet").is_file() for p in file_plans(spec))
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=PoolSpec.rows)
    parser.add_argument("--files", type=int, default=PoolSpec.files)
    parser.add_argument("--npz-files", type=int, default=PoolSpec.npz_files)
    parser.add_argument(
        "--npz-link",
        action="store_true",
        help="give every other file an .npz too: a hard link to a generated one "
        "of the same row count (and that file's scores)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--append", type=int, default=0, metavar="ROWS", help="add one shard of ROWS rows"
    )
    parser.add_argument("--append-npz", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.append:
        info = append_shard(args.out, args.append, args.append_npz)
        print(json.dumps(info))
        return
    spec = replace(
        PoolSpec(),
        rows=args.rows,
        files=args.files,
        npz_files=args.npz_files,
        npz_link=args.npz_link,
        seed=args.seed,
    )
    manifest = generate(spec, args.out, args.workers)
    size = disk_bytes(args.out / SOURCE)
    print(
        f"generated {spec.rows:,} rows in {spec.files} files ({spec.npz_files} with .npz) in "
        f"{manifest['generate_wall_s']:.1f}s with {args.workers} workers; {size / 1e9:.2f} GB; "
        f"expected: {json.dumps(manifest['expected'])}"
    )


if __name__ == "__main__":
    main()
