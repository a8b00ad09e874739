"""The job by hand: poolsieve's rules on a DataComp-format pool as a plain polars script.

    .venv/bin/python bench/pool/baseline.py --source DIR/source --out WORK
        [--exemplars DIR/exemplars_l14.npy] [--profile datacomp] [--k 36]
        [--centroid-sample 1000000] [--seed 0] [--workers 2] [--json results.json]

What a user would write instead of the asset graph, stage by stage, each timed (wall, rows/s,
peak RSS with child processes; bench/pool/measure.py):

1. ``ingest_dedup``: per file, validate every row (staging's rules, in its order: url_missing,
   url_scheme, url_unparseable, size_invalid, score_invalid, uid_malformed, uid_repeated),
   normalize URLs (the polars port of the normalize_url macro, bench/dedup/urlnorm_df.py), write
   the valid rows and the quarantine; then exact URL dedup over the whole pool in pool order
   (duplicate_uid, then duplicate_url with the winner's uid) and write the decisions per shard.
2. ``features``: per shard, caption words (``len(text.split())``: a regex with Python's
   whitespace set) and characters, fastText lid.176 language and gcld3 language (poolsieve's
   detectors: the same models), scores and sizes; files are spread over ``--workers`` processes.
3. ``clusters``: faiss spherical k-means (k, 20 iterations, seed) on a uniform random sample of
   at most ``--centroid-sample`` L/14 image embeddings read from the ``.npz`` files, every
   embedded row assigned, exemplar clusters = the exemplars' nearest centroids.
4. ``subsets``: pool features (dedup decisions, features, clusters) and each filter of the
   parameter profile (DataComp's rules; parameters read from the filters' YAML) -> a sorted
   ``u8,u8`` uid ``.npy`` per strategy. In metadata mode a row is eligible unless dedup drops it.

Rows are the rows read (stage 1) or the valid rows (stages 2-4). Subsets' image_based and
image_and_clip differ slightly from poolsieve's (another random sample trains the centroids);
every other count must equal poolsieve's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "dedup"))
from measure import Stage  # noqa: E402
from urlnorm_df import ZS, polars_with_normalized  # noqa: E402

MAX_URL_LENGTH = 2048
MAX_IMAGE_SIDE = 100_000
#: Python's str.split() whitespace: Unicode White_Space (Rust's \s) plus U+001C..U+001F
WORD = r"[^\s\x1c-\x1f]+"
STRATEGY_ORDER = [
    "no_filter",
    "basic",
    "clip_score_threshold",
    "clip_score_top30",
    "laion",
    "image_based",
    "image_and_clip",
    "text_based",
]


# ---------------------------------------------------------------- 1. validate, normalize, dedup


def _reason(c=pl.col) -> pl.Expr:
    """Staging's first failure of a row, in staging's order (NULL: valid)."""
    url, norm = c("url"), c("url_norm")
    scheme = (
        url.str.strip_chars(ZS).str.extract(r"^([A-Za-z][A-Za-z0-9+.\-]*):", 1).str.to_lowercase()
    )
    scheme = scheme.fill_null("")
    http = norm.str.starts_with("http://") | norm.str.starts_with("https://")

    def bad_side(col):
        return (c(col) <= 0) | (c(col) > MAX_IMAGE_SIDE)

    def bad_score(col):
        return c(col).is_nan() | (c(col).abs() > 1)

    return (
        pl.when(url.is_null() | url.str.contains(r"^[\t\n\x0b\f\r ]*$"))
        .then(pl.lit("url_missing"))
        .when(norm.is_not_null() & ~http)
        .then(pl.lit("url_scheme"))
        .when(norm.is_null() & ~scheme.is_in(["http", "https"]))
        .then(pl.lit("url_scheme"))
        .when(
            norm.is_null()
            | (url.str.len_chars() > MAX_URL_LENGTH)
            | url.str.contains(r"[\x00-\x1f\x7f]")
        )
        .then(pl.lit("url_unparseable"))
        .when(
            bad_side("original_width").fill_null(False)
            | bad_side("original_height").fill_null(False)
        )
        .then(pl.lit("size_invalid"))
        .when(
            bad_score("clip_b32_similarity_score").fill_null(False)
            | bad_score("clip_l14_similarity_score").fill_null(False)
        )
        .then(pl.lit("score_invalid"))
        .when(~c("uid").str.contains(r"^[0-9a-f]{32}$").fill_null(False))
        .then(pl.lit("uid_malformed"))
    )


def validate_file(path: Path, shard: str, seq: int) -> pl.DataFrame:
    """One file's rows with shard, row_idx, url_norm and reason (uid repeats within the file
    included: the first row of a uid owns it)."""
    lf = (
        pl.scan_parquet(path)
        .with_row_index("row_idx")
        .with_columns(
            pl.col("row_idx").cast(pl.Int64), shard=pl.lit(shard), shard_seq=pl.lit(seq, pl.Int64)
        )
    )
    lf = polars_with_normalized(lf).with_columns(first_failure=_reason())
    well_formed = pl.col("uid").str.contains(r"^[0-9a-f]{32}$").fill_null(False)
    first_row = pl.when(well_formed).then(pl.col("row_idx")).min().over("uid")
    repeated = well_formed & (pl.col("row_idx") > first_row)
    reason = pl.coalesce("first_failure", pl.when(repeated).then(pl.lit("uid_repeated")))
    return lf.with_columns(reason=reason).drop("first_failure").collect()


def ingest_dedup(files: list[Path], out: Path) -> dict:
    keys, quarantined = [], {}
    for seq, path in enumerate(files):
        shard = path.name
        df = validate_file(path, shard, seq)
        bad = df.filter(pl.col("reason").is_not_null())
        good = df.filter(pl.col("reason").is_null()).drop("reason")
        good.drop("shard_seq").write_parquet(out / "rows" / shard)
        bad.drop("shard_seq").write_parquet(out / "quarantine" / shard)
        for reason, n in bad["reason"].value_counts().iter_rows():
            quarantined[reason] = quarantined.get(reason, 0) + n
        keys.append(good.select("shard", "shard_seq", "row_idx", "uid", "url_norm"))
    decisions = dedup(pl.concat(keys))
    for (shard,), part in decisions.partition_by("shard", as_dict=True).items():
        part.write_parquet(out / "decisions" / shard)
    counts = dict(decisions["reason"].fill_null("keep").value_counts().iter_rows())
    return {"quarantined": quarantined, "decisions": counts}


def dedup(keys: pl.DataFrame) -> pl.DataFrame:
    """Pool order (shard_seq, row_idx): a uid seen in an earlier shard is duplicate_uid; among
    first occurrences of uids, the first row of each normalized URL wins, the others are
    duplicate_url with the winner's uid."""
    k = keys.with_columns(
        order=(pl.col("shard_seq") * 2**40 + pl.col("row_idx")),
        first_seq=pl.col("shard_seq").min().over("uid"),
    )
    winners = (
        k.filter(pl.col("shard_seq") == pl.col("first_seq"))
        .group_by("url_norm")
        .agg(w_order=pl.col("order").min(), w_uid=pl.col("uid").sort_by("order").first())
    )
    k = k.join(winners, on="url_norm", how="left")
    dup_uid = pl.col("shard_seq") > pl.col("first_seq")
    dup_url = pl.col("w_order") < pl.col("order")
    reason = (
        pl.when(dup_uid).then(pl.lit("duplicate_uid")).when(dup_url).then(pl.lit("duplicate_url"))
    )
    duplicate_of = pl.when(dup_uid).then(pl.col("uid")).when(dup_url).then(pl.col("w_uid"))
    return k.select(
        "shard", "row_idx", "uid", keep=reason.is_null(), reason=reason, duplicate_of=duplicate_of
    )


# ---------------------------------------------------------------- 2. features


def features_file(args: tuple[str, str]) -> dict:
    """Features of one shard's valid rows -> features/<shard>.parquet; the language counts."""
    from poolsieve.curate.language import detector

    rows_path, out_path = args
    df = pl.read_parquet(rows_path)
    texts = df["text"].to_list()
    fasttext = detector("fasttext")(texts)
    cld3 = detector("gcld3")(texts)
    feats = df.select(
        "uid",
        "shard",
        "row_idx",
        caption_words=pl.col("text").str.count_matches(WORD).fill_null(0).cast(pl.Int32),
        caption_chars=pl.col("text").str.len_chars().fill_null(0).cast(pl.Int32),
        language=pl.Series([lang for lang, _ in fasttext], dtype=pl.String),
        language_confidence=pl.Series([p for _, p in fasttext], dtype=pl.Float32),
        language_cld3=pl.Series([lang for lang, _ in cld3], dtype=pl.String),
        language_cld3_confidence=pl.Series([p for _, p in cld3], dtype=pl.Float32),
        clip_b32_score=pl.col("clip_b32_similarity_score"),
        clip_l14_score=pl.col("clip_l14_similarity_score"),
        meta_width=pl.col("original_width"),
        meta_height=pl.col("original_height"),
        text=pl.col("text"),
    )
    feats.write_parquet(out_path)
    return {"rows": feats.height, "en": int((feats["language"] == "en").sum())}


def features(out: Path, workers: int) -> dict:
    shards = sorted((out / "rows").glob("*.parquet"))
    jobs = [(str(p), str(out / "features" / p.name)) for p in shards]
    ctx = multiprocessing.get_context("spawn")  # workers start small (no copy of this process)
    with ctx.Pool(workers) as pool:
        done = pool.map(features_file, jobs, chunksize=1)
    return {"rows": sum(d["rows"] for d in done), "en": sum(d["en"] for d in done)}


# ---------------------------------------------------------------- 3. clusters


def _embedded_shards(source: Path, out: Path) -> list[tuple[str, Path]]:
    return [
        (p.name, source / f"{p.name[: -len('.parquet')]}.npz")
        for p in sorted((out / "rows").glob("*.parquet"))
        if (source / f"{p.name[: -len('.parquet')]}.npz").is_file()
    ]


def _l14_rows(npz: Path, rows_path: Path) -> tuple[pl.Series, np.ndarray]:
    """The valid rows' uids and L/14 image embeddings (npz row = source row_idx)."""
    rows = pl.read_parquet(rows_path, columns=["uid", "row_idx"])
    with np.load(npz) as z:
        emb = z["l14_img"][rows["row_idx"].to_numpy()]
    return rows["uid"], emb


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def clusters(source: Path, out: Path, exemplars: Path, k: int, sample: int, seed: int) -> dict:
    import faiss

    shards = _embedded_shards(source, out)
    if not shards:
        return {"rows": 0, "note": "no .npz files"}
    total = sum(
        pl.scan_parquet(out / "rows" / s).select(pl.len()).collect().item() for s, _ in shards
    )
    rate, rng, parts = min(1.0, sample / total), np.random.default_rng(seed), []
    for shard, npz in shards:
        _, emb = _l14_rows(npz, out / "rows" / shard)
        parts.append(_unit(emb[rng.random(len(emb)) < rate]))
    train = np.concatenate(parts)
    del parts
    sampled = len(train)
    km = faiss.Kmeans(
        train.shape[1],
        k,
        niter=20,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=len(train) // k + 1,
    )
    km.train(train)
    del train
    index = faiss.IndexFlatIP(km.centroids.shape[1])
    index.add(km.centroids)
    _, hit = index.search(_unit(np.load(exemplars)), 1)
    hit = np.unique(hit[:, 0])
    assigned = 0
    for shard, npz in shards:
        uids, emb = _l14_rows(npz, out / "rows" / shard)
        _, found = index.search(_unit(emb), 1)
        cluster = found[:, 0]
        pl.DataFrame(
            {
                "uid": uids,
                "image_cluster": cluster.astype(np.int32),
                "exemplar_cluster": np.isin(cluster, hit),
            }
        ).write_parquet(out / "clusters" / shard)
        assigned += len(uids)
    return {"rows": assigned, "k": k, "exemplar_clusters": int(len(hit)), "sample": sampled}


# ---------------------------------------------------------------- 4. subsets


def strategy_params(profile: str) -> dict[str, dict]:
    """Each filter's bound parameters under ``profile`` (read from the filters' YAML)."""
    from poolsieve.curate.strategies import strategy_names
    from poolsieve.curate.strategies import strategy_params as params
    from poolsieve.sqlrunner import SqlProject

    project = SqlProject()
    return {name: params(project, name, profile) for name in strategy_names(project)}


def pool_table(out: Path) -> pl.DataFrame:
    feats = pl.scan_parquet(out / "features" / "*.parquet")
    decisions = pl.scan_parquet(out / "decisions" / "*.parquet").select(
        "shard", "row_idx", "keep", "reason"
    )
    pool = feats.join(decisions, on=["shard", "row_idx"]).filter(
        pl.col("reason").fill_null("") != "duplicate_uid"
    )
    cluster_files = list((out / "clusters").glob("*.parquet"))
    if cluster_files:
        cl = pl.scan_parquet(cluster_files).select("uid", "exemplar_cluster")
        pool = pool.join(cl, on="uid", how="left")
    else:
        pool = pool.with_columns(exemplar_cluster=pl.lit(None, pl.Boolean))
    return pool.with_columns(
        exemplar_cluster=pl.col("exemplar_cluster").fill_null(False) & pl.col("keep")
    ).collect()


def _english(col: str) -> pl.Expr:
    return pl.col(col).fill_null("") == "en"


def _caption_ok(p: dict) -> pl.Expr:
    return (pl.col("caption_words") > p["min_words"]) & (pl.col("caption_chars") > p["min_chars"])


def _score(p: dict) -> pl.Expr:
    col = {"clip_score": "clip_score"}.get(p["score_column"], p["score_column"])
    return pl.col(col).fill_nan(None)


def keep_masks(pool: pl.DataFrame, params: dict[str, dict]) -> dict[str, pl.Expr]:
    """Each filter's own rule as a keep expression (the filters' SQL, in polars)."""
    out = {"no_filter": pl.lit(True)}
    b = params.get("basic")
    if b:
        w, h = "meta_width", "meta_height"  # metadata mode: no downloaded sizes
        small, large = pl.min_horizontal(w, h), pl.max_horizontal(w, h)
        out["basic"] = (
            _english("language")
            & _caption_ok(b)
            & pl.col(w).is_not_null()
            & pl.col(h).is_not_null()
            & (small >= b["min_side"])
            & (large <= b["max_aspect"] * small)
        ).fill_null(False)
    t = params.get("clip_score_threshold")
    if t:
        out["clip_score_threshold"] = (_score(t) >= t["min_score"]).fill_null(False)
    top = params.get("clip_score_top30")
    if top:
        scores = pool.select(_score(top).alias("s")).drop_nulls()["s"].sort(descending=True)
        idx = int(np.floor(top["fraction"] * len(scores)))
        threshold = scores[idx] if idx < len(scores) else -np.inf
        out["clip_score_top30"] = (_score(top) >= threshold).fill_null(False)
    lp = params.get("laion")
    if lp:
        out["laion"] = (
            _english(lp.get("language_column", "language")) & (_score(lp) >= lp["min_score"])
        ).fill_null(False)
    ib = params.get("image_based")
    if ib:
        out["image_based"] = (
            _english("language") & _caption_ok(ib) & pl.col("exemplar_cluster")
        ).fill_null(False)
    if "image_based" in out and "clip_score_top30" in out:
        out["image_and_clip"] = out["image_based"] & out["clip_score_top30"]
    tb = params.get("text_based")
    if tb:
        words = pl.col("text").fill_null("").str.to_lowercase().str.extract_all("[a-z]+")
        out["text_based"] = (
            _english("language") & words.list.eval(pl.element().is_in(tb["vocabulary"])).list.any()
        ).fill_null(False)
    return out


def write_subset_npy(path: Path, uids: pl.Series) -> None:
    """DataComp's subset file: sorted (uid[:16], uid[16:]) as u8,u8."""
    raw = bytes.fromhex("".join(uids.sort().to_list()))
    pairs = np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    out = np.empty(len(pairs), dtype=np.dtype("u8,u8"))
    out["f0"], out["f1"] = pairs[:, 0], pairs[:, 1]
    np.save(path, out)


def subsets(out: Path, profile: str) -> dict:
    params = strategy_params(profile)
    pool = pool_table(out)
    masks = keep_masks(pool, params)
    kept = {}
    for name in [s for s in STRATEGY_ORDER if s in masks]:
        uids = pool.filter(pl.col("keep") & masks[name])["uid"]
        write_subset_npy(out / "subsets" / f"{name}.npy", uids)
        kept[name] = len(uids)
    return {"rows": pool.height, "eligible": int(pool["keep"].sum()), "kept": kept}


# ---------------------------------------------------------------- CLI


def run(args) -> dict:
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("rows", "quarantine", "decisions", "features", "clusters", "subsets"):
        (out / sub).mkdir(parents=True)
    files = sorted(args.source.glob("*.parquet"))
    rows_in = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
    stages, info = [], {}
    with Stage("ingest_dedup", rows_in) as st:
        info["ingest_dedup"] = ingest_dedup(files, out)
    stages.append(st.result)
    valid = sum(info["ingest_dedup"]["quarantined"].values())
    valid = rows_in - valid
    with Stage("features", valid) as st:
        info["features"] = features(out, args.workers)
    stages.append(st.result)
    if args.exemplars:
        with Stage("clusters", valid) as st:
            info["clusters"] = clusters(
                args.source, out, args.exemplars, args.k, args.centroid_sample, args.seed
            )
        st.result["rows"] = info["clusters"]["rows"]
        stages.append(st.result)
    with Stage("subsets", valid) as st:
        info["subsets"] = subsets(out, args.profile)
    stages.append(st.result)
    total = round(sum(s["wall_s"] for s in stages), 2)
    return {
        "rows": rows_in,
        "stages": stages,
        "total_wall_s": total,
        "peak_rss_mb": max(s["peak_rss_mb"] for s in stages),
        "info": info,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--exemplars", type=Path)
    parser.add_argument("--profile", default="datacomp")
    parser.add_argument("--k", type=int, default=36)
    parser.add_argument("--centroid-sample", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args)
    result["process_wall_s"] = round(time.perf_counter() - started, 2)
    for s in result["stages"]:
        print(
            f"polars {s['stage']:<14} {s['wall_s']:8.1f}s {s['rows']:>11,} rows "
            f"{s['rows_per_s'] or 0:>10,} rows/s  peak RSS {s['peak_rss_mb']:>6,} MB"
        )
    print(f"polars total {result['total_wall_s']:.1f}s; {json.dumps(result['info'])}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
