"""Deterministic DataComp-like parquet shards with planted URL duplicates (DuckDB ``COPY``).

Row ``i`` (0-based over the whole pool) lives in block ``i // 100``; a per-block rotation gives
each row a category ``cat`` in 0..99, so every full block holds exactly

* 12 exact duplicates (``cat`` < 12): the URL of an earlier *unique* row, chosen uniformly over
  all earlier blocks (so mostly in another shard);
* 4 normalization duplicates (12 <= ``cat`` < 16): that URL with what normalize_url removes
  added (upper-case scheme/host, default port, trailing slash, #fragment, tracking params);
* 84 unique URLs.

Block 0 has no earlier block, so its duplicate rows get their own URL. Hence the number of
distinct normalized URLs is known in advance (``expected_distinct``). Every uid is unique.
The URL of unique row ``j`` contains ``j`` in its path, so unique rows never collide.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb

GENERATOR_VERSION = 2
BLOCK, N_EXACT, N_VARIANT = 100, 12, 4
N_DUP = N_EXACT + N_VARIANT
N_UNIQUE = BLOCK - N_DUP
N_HOSTS = 5000
MANIFEST = "_manifest.json"  # leading '_': pyarrow datasets skip it when reading the folder

_LISTS = {  # name -> '|'-separated values; l_<name>(k) picks one
    "sub": "cdn|images|i|img|media|static|www|assets|photos|upload",
    "word": "shop|news|blog|travel|recipes|decor|auto|style|pets|games|sport|home|garden|music"
    "|tech|art|kids|food",
    "tld": ".com|.net|.org|.co.uk|.de|.io|.fr|.jp|.ru|.com.br",
    "dir": "wp-content/uploads|images|media/catalog/product|photos|files|uploads|assets/img"
    "|content/dam|i|thumbs|s3|static/media",
    "adj": "red|small|vintage|modern|wooden|happy|old|bright|large|cozy|rustic|white|blue"
    "|classic|tiny|golden",
    "noun": "dog|kitchen|car|dress|chair|mountain|beach|cake|house|garden|shoe|lamp|bicycle"
    "|sofa|watch|poster|ring|cat",
    "lead": "A photo of a|Image of the|Buy the|Close-up of a|The best|New|Picture: a|Stock photo -",
}


def _lists_sql() -> str:
    macros = []
    for name, joined in _LISTS.items():
        values = joined.split("|")
        pick = f"((k % {len(values)}) + 1)::BIGINT"
        macros.append(f"CREATE OR REPLACE TEMP MACRO l_{name}(k) AS {values!r}[{pick}];")
    return "\n".join(macros)


def _macros_sql(seed: int) -> str:
    """Row -> category, duplicate target and URL parts; ``seed`` is an int pasted as a literal."""
    s = int(seed)
    return (
        _lists_sql()
        + f"""
CREATE OR REPLACE TEMP MACRO g_rot(b) AS (hash(b, {s}) % {BLOCK})::BIGINT;
CREATE OR REPLACE TEMP MACRO g_cat(i) AS (i % {BLOCK} + g_rot(i // {BLOCK})) % {BLOCK};
CREATE OR REPLACE TEMP MACRO g_is_dup(i) AS g_cat(i) < {N_DUP} AND i >= {BLOCK};
-- the m-th unique row of the pool (m counts unique rows from 0)
CREATE OR REPLACE TEMP MACRO g_unique_row(m) AS (m // {N_UNIQUE}) * {BLOCK}
    + ({N_DUP} + m % {N_UNIQUE} - g_rot(m // {N_UNIQUE}) + {BLOCK}) % {BLOCK};
CREATE OR REPLACE TEMP MACRO g_target(i) AS
    g_unique_row((hash(i, {s + 1}) % ((i // {BLOCK}) * {N_UNIQUE}))::BIGINT);
CREATE OR REPLACE TEMP MACRO g_host_id(x) AS
    floor({N_HOSTS} * pow(((x >> 8) % 1000000) / 1e6, 3))::BIGINT;
CREATE OR REPLACE TEMP MACRO g_host(h) AS CASE
    WHEN h % 40 = 7 THEN 'CDN.' || upper(l_word(h // 10)) || h || '.com'
    ELSE l_sub(h) || '.' || l_word(h // 10) || h || l_tld(h // 7) END;
CREATE OR REPLACE TEMP MACRO g_name(j, m, x) AS CASE (x >> 30) % 4
    WHEN 0 THEN m[5:20] || '-' || j || '.jpg'
    WHEN 1 THEN 'IMG_' || j || '.JPG'
    WHEN 2 THEN 'Photo-' || upper(m[5:12]) || '_' || j || '.png'
    ELSE 'p' || j || '_' || m[5:14] || '.webp' END;
CREATE OR REPLACE TEMP MACRO g_query(x) AS CASE
    WHEN (x >> 40) % 3 <> 0 THEN ''
    WHEN (x >> 42) % 3 = 0
        THEN '?w=' || (200 + (x >> 50) % 1800) || '&h=' || (150 + (x >> 46) % 1200)
    WHEN (x >> 42) % 3 = 1 THEN '?v=' || ((x >> 48) % 100000)
    ELSE '?format=jpg&quality=' || (50 + (x >> 52) % 50) END;
CREATE OR REPLACE TEMP MACRO g_parts(j, x, m) AS struct_pack(
    scheme := CASE WHEN x % 5 = 0 THEN 'http' ELSE 'https' END,
    host := g_host(g_host_id(x)),
    path := '/' || l_dir(x >> 20) || '/' || m[1:2] || '/' || m[3:4] || '/' || g_name(j, m, x),
    query := g_query(x));
CREATE OR REPLACE TEMP MACRO g_join(p) AS p.scheme || '://' || p.host || p.path || p.query;
-- what normalize_url removes, added to a URL's parts (v in 0..6)
CREATE OR REPLACE TEMP MACRO g_variant(p, v, i) AS CASE v
    WHEN 0 THEN upper(p.scheme) || '://' || upper(p.host) || p.path || p.query
    WHEN 1 THEN p.scheme || '://' || p.host || CASE WHEN p.scheme = 'http' THEN ':80' ELSE ':443'
        END || p.path || p.query
    WHEN 2 THEN p.scheme || '://' || p.host || p.path || '/' || p.query
    WHEN 3 THEN g_join(p) || '#section-' || i % 10
    WHEN 4 THEN g_join(p) || CASE WHEN p.query = '' THEN '?' ELSE '&' END
        || 'utm_source=newsletter&utm_medium=email'
    WHEN 5 THEN p.scheme || '://' || p.host || p.path || '?fbclid=IwAR' || i
        || CASE WHEN p.query = '' THEN '' ELSE '&' || p.query[2:] END
    ELSE upper(p.scheme) || '://' || upper(p.host) || p.path || '/' || p.query
        || CASE WHEN p.query = '' THEN '?' ELSE '&' END || 'gclid=Cj0K' || i || '#top' END;
"""
    )


def _shard_sql(seed: int) -> str:
    return f"""
COPY (
    WITH r AS (
        SELECT i, CASE WHEN g_is_dup(i) THEN g_target(i) ELSE i END AS j,
               CASE WHEN g_is_dup(i) AND g_cat(i) >= {N_EXACT}
                    THEN hash(i, {seed + 2}) % 7 END AS v,
               hash(i, {seed + 3}) AS y
        FROM range($lo, $hi) t(i)
    ), p AS (
        SELECT *, g_parts(j, hash(j, {seed + 10}), md5('p' || j)) AS parts FROM r
    )
    SELECT
        md5('uid-{seed}-' || i) AS uid,
        CASE WHEN v IS NULL THEN g_join(parts) ELSE g_variant(parts, v, i) END AS url,
        l_lead(y) || ' ' || l_adj(y >> 8) || ' ' || l_noun(y >> 16) || ' ' || l_adj(y >> 24)
            || ' ' || l_noun(y >> 32) || ' #' || ((y >> 40) % 1000) AS text,
        (64 + (y >> 12) % 3000)::BIGINT AS original_width,
        (64 + (y >> 28) % 3000)::BIGINT AS original_height,
        (0.05 + ((y >> 44) % 10000) / 25000.0)::FLOAT AS clip_b32_similarity_score,
        (0.05 + ((y >> 50) % 10000) / 25000.0)::FLOAT AS clip_l14_similarity_score,
        sha256('img-' || j) AS sha256
    FROM p
) TO '{{path}}' (FORMAT parquet, COMPRESSION zstd)
"""


def _params(rows: int, shard_rows: int, seed: int) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "duckdb_version": duckdb.__version__,
        "rows": rows,
        "shard_rows": shard_rows,
        "seed": seed,
    }


def dataset_dir(data_root: Path, rows: int, shard_rows: int, seed: int) -> Path:
    return Path(data_root) / f"rows{rows}-shard{shard_rows}-seed{seed}"


def load_or_generate(data_root: Path, rows: int, shard_rows: int, seed: int = 0) -> dict:
    """The manifest of the dataset, generating its shards first unless they already exist."""
    folder = dataset_dir(data_root, rows, shard_rows, seed)
    params = _params(rows, shard_rows, seed)
    manifest = _read_manifest(folder)
    if manifest and manifest["params"] == params and _files_present(manifest):
        print(f"[data] reusing {folder} ({len(manifest['shards'])} shards)", flush=True)
        return manifest
    return _generate(folder, params)


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _files_present(manifest: dict) -> bool:
    return all(Path(s["path"]).exists() for s in manifest["shards"])


def _generate(folder: Path, params: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    rows, shard_rows, seed = params["rows"], params["shard_rows"], params["seed"]
    conn = duckdb.connect()
    conn.execute("SET threads = 2")
    conn.execute(_macros_sql(seed))
    started, shards = time.perf_counter(), []
    for idx, lo in enumerate(range(0, rows, shard_rows)):
        hi = min(rows, lo + shard_rows)
        path = folder / f"shard-{idx:05d}.parquet"
        conn.execute(_shard_sql(seed).replace("{path}", str(path)), {"lo": lo, "hi": hi})
        shards.append(
            {
                "key": path.stem,
                "path": str(path.resolve()),
                "rows": hi - lo,
                "expected_distinct_new": _count_unique(conn, lo, hi),
            }
        )
    manifest = {
        "params": params,
        "shards": shards,
        "expected_distinct": sum(s["expected_distinct_new"] for s in shards),
        "generate_s": round(time.perf_counter() - started, 1),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    print(
        f"[data] generated {rows:,} rows in {len(shards)} shards under {folder} "
        f"in {manifest['generate_s']} s",
        flush=True,
    )
    return manifest


def _count_unique(conn: duckdb.DuckDBPyConnection, lo: int, hi: int) -> int:
    """Rows in [lo, hi) that carry a URL no earlier row has (their own URL)."""
    sql = "SELECT count(*) FILTER (WHERE NOT g_is_dup(i)) FROM range($lo, $hi) t(i)"
    return conn.execute(sql, {"lo": lo, "hi": hi}).fetchone()[0]
