"""DataComp's filtering track end to end: a DataComp-format pool with .npz files, no image server.

Three shards of 200 rows (captions in several languages, with tabs and newlines; sizes stated or
missing; URLs repeated across and within shards; scores = the dots of the float16 .npz beside each
parquet, some missing) go through Dagster with CurationResource mode=metadata and the ``datacomp``
profile: ingest_job per shard, metadata_embeddings, shard_features, image_centroids (L/14 image
embeddings, exemplars from an .npy), shard_clusters, pool_features and a subset per strategy.
Nothing is downloaded. Each subset is then compared with an independent statement of DataComp's
baselines (baselines/apply_filter.py), computed here with polars, numpy, fastText's lid.176 and
gcld3 over the same parquet files, minus the rows URL dedup drops.
"""

from __future__ import annotations

import random

import dagster as dg
import fasttext
import gcld3
import numpy as np
import polars as pl
import pytest
from poolsieve.pipelines.definitions import build_defs
from poolsieve.pipelines.partitions import register_shards
from poolsieve.pipelines.resources import resources_from_env

from poolsieve.curate.features import part_paths
from poolsieve.curate.language import fasttext_model_path
from poolsieve.curate.strategies import pairs_to_uids, read_subset_npy, strategy_names
from tests.conftest import row
from tests.datacomp_pool import write_shard

SHARDS = [f"part-{i:05d}.parquet" for i in range(3)]
ROWS = 200
K = 8

CAPTIONS = {
    "en": [
        "a photo of a red car parked on a quiet street",
        "golden retriever puppy playing in the grass",
        "modern kitchen with white cabinets and a wooden table",
        "vintage poster of a jazz festival in new orleans",
        "close up of fresh strawberries in a bowl",
        "mountain lake at sunrise with mist over the water",
        "a square wooden box on a round table",
        "gold star ornament hanging on a christmas tree",
    ],
    "fr": [
        "une photo d'une voiture rouge garée dans une rue calme",
        "chiot golden retriever qui joue dans l'herbe du jardin",
    ],
    "de": [
        "ein Foto von einem roten Auto in einer ruhigen Straße",
        "moderne Küche mit weißen Schränken und einem Holztisch",
    ],
    "es": ["una foto de un coche rojo aparcado en una calle tranquila"],
    "ja": ["静かな通りに駐車している赤い車の写真"],
    "short": ["IMG_2041.JPG", "sale", "two words", "cat\n", "\tred\tcar\t", "dog\u00a0sleeping"],
}


def _caption(rng: random.Random) -> str:
    kind = rng.choices(list(CAPTIONS), weights=[10, 2, 2, 1, 1, 3])[0]
    text = rng.choice(CAPTIONS[kind])
    if kind == "en" and rng.random() < 0.2:
        text = rng.choice([f"{text}\n", f"\t{text}", text.replace(" ", "\u2003", 2)])
    return text


def _size(rng: random.Random):
    return rng.choice([None, 64, 150, 199, 200, 256, 600, 601, 800, 1024, 1800])


def _pool(source_dir) -> None:
    rng, urls = random.Random(7), []
    for s, shard in enumerate(SHARDS):
        rows = []
        for i in range(ROWS):
            n = s * ROWS + i
            url = (
                rng.choice(urls) if urls and rng.random() < 0.12 else f"http://img.example/{n}.jpg"
            )
            urls.append(url)
            r = row(n, url=url, text=_caption(rng), original_width=_size(rng))
            r["original_height"] = _size(rng)
            if rng.random() < 0.05:
                r["clip_l14_similarity_score"] = None
            if rng.random() < 0.05:
                r["clip_b32_similarity_score"] = None
            rows.append(r)
        write_shard(source_dir / shard, rows, seed=100 + s)


def _exemplars(tmp_path, source_dir):
    """Exemplar embeddings near a few pool rows (as ImageNet images sit near some pool images)."""
    l14 = np.load(source_dir / "part-00001.npz")["l14_img"][:5].astype(np.float32)
    noise = np.random.default_rng(5).standard_normal(l14.shape).astype(np.float32) * 0.01
    path = tmp_path / "exemplars.npy"
    np.save(path, l14 + noise)
    return path


@pytest.fixture
def run(tmp_path, source_dir, lake):
    """The pool through Dagster in metadata mode; returns the Definitions' resources."""
    _pool(source_dir)
    resources = resources_from_env(
        env={},
        lake={"lake_dir": str(lake.root), "source": str(source_dir), "duckdb_threads": 2},
        curation={
            "mode": "metadata",
            "param_profile": "datacomp",
            "cluster_embeddings": "l14_img",
            "image_clusters": K,
            "centroid_sample": 10_000,
            "exemplar_dir": str(_exemplars(tmp_path, source_dir)),
        },
    )
    defs = build_defs(resources)
    with dg.instance_for_test() as instance:
        register_shards(instance, resources.lake, SHARDS)
        _materialize_all(defs, instance)
    return resources


def _materialize(defs, instance, keys: list[str], partition: str | None = None):
    assets = list(defs.assets)
    result = dg.materialize(
        assets,
        selection=keys,
        partition_key=partition,
        instance=instance,
        resources=defs.resources,
        raise_on_error=True,
    )
    assert all(c.passed for c in result.get_asset_check_evaluations()), keys


def _materialize_all(defs, instance) -> None:
    ingest = defs.resolve_job_def("ingest_job")
    for shard in SHARDS:
        assert ingest.execute_in_process(partition_key=shard, instance=instance).success
        _materialize(defs, instance, ["metadata_embeddings", "shard_features"], shard)
    _materialize(defs, instance, ["image_centroids"])
    for shard in SHARDS:
        _materialize(defs, instance, ["shard_clusters"], shard)
    _materialize(defs, instance, ["pool_features"])
    for name in strategy_names():
        _materialize(defs, instance, ["subset"], name)


# -- DataComp's baselines, stated independently ----------------------------------------------------


def _source(source_dir) -> pl.DataFrame:
    """Every source row in pool order, with DataComp's per-row features."""
    frames = [
        pl.read_parquet(source_dir / shard).with_columns(
            shard=pl.lit(shard), row_idx=pl.int_range(pl.len())
        )
        for shard in SHARDS
    ]
    df = pl.concat(frames)
    lid = fasttext.load_model(str(fasttext_model_path()))
    cld3 = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    texts = df["text"].to_list()
    return df.with_columns(
        fasttext=pl.Series([lid.predict(t.replace("\n", " "))[0][0][9:] for t in texts]),
        gcld3=pl.Series([cld3.FindLanguage(text=t.replace("\n", " ")).language for t in texts]),
        words=pl.Series([len(t.split()) for t in texts]),
        chars=pl.Series([len(t) for t in texts]),
        duplicate=~pl.col("url").is_first_distinct(),  # URL dedup: the first in pool order stays
    )


def _l14(source_dir) -> np.ndarray:
    return np.concatenate(
        [np.load(source_dir / s.replace(".parquet", ".npz"))["l14_img"] for s in SHARDS]
    ).astype(np.float32)


def _in_exemplar_cluster(lake, source_dir, exemplars) -> np.ndarray:
    """DataComp's image-based rule given the centroids: the row's nearest centroid is the
    nearest centroid of some exemplar (argmax of dot products, as get_centroid_ids_gpu)."""
    centroids = np.load(lake.root / "image_centroids" / "centroids.npy")
    targets = np.unique(np.argmax(np.load(exemplars) @ centroids.T, axis=1))
    return np.isin(np.argmax(_l14(source_dir) @ centroids.T, axis=1), targets)


def _datacomp(df: pl.DataFrame, image_ok: np.ndarray) -> dict[str, set[str]]:
    l14 = df["clip_l14_similarity_score"].drop_nulls().to_numpy()
    threshold = -np.sort(-l14)[int(len(l14) * 0.3)]  # get_threshold, over every scored row
    w, h = pl.col("original_width"), pl.col("original_height")
    # DataComp's np.minimum / np.maximum give NaN for a missing size (polars' *_horizontal
    # skip it), and every comparison with NaN is False
    sized = w.is_not_null() & h.is_not_null()
    short, long = pl.min_horizontal(w, h), pl.max_horizontal(w, h)
    english = pl.col("fasttext") == "en"
    caption = english & (pl.col("chars") > 5)
    # image_based counts words with fasttext.tokenize in DataComp; pool_features' caption_words
    # is str.split's count (the two differ for captions with newlines): poolsieve's rule here
    image_based = caption & (pl.col("words") > 1) & pl.Series(image_ok)
    top30 = pl.col("clip_l14_similarity_score") >= threshold
    rules = {
        "no_filter": pl.lit(True),
        "basic": caption & (pl.col("words") > 2) & sized & (short >= 200) & (long / short <= 3.0),
        "clip_score_top30": top30,
        "clip_score_threshold": pl.col("clip_b32_similarity_score") >= 0.25,
        "laion": (pl.col("gcld3") == "en") & (pl.col("clip_b32_similarity_score") >= 0.28),
        "image_based": image_based,
        "image_and_clip": image_based & top30,
        # no images to hash in metadata mode, and the semantic rule is off by default
        "image_and_clip_dedup": image_based & top30,
        "text_based": english & _has_vocabulary_word(),
    }
    kept = {}
    for name, rule in rules.items():
        keep = df.filter(rule.fill_null(False) & ~pl.col("duplicate"))
        kept[name] = set(keep["uid"].to_list())
    return kept


def _has_vocabulary_word() -> pl.Expr:
    """text_based is poolsieve's (a vocabulary, not DataComp's WordNet synsets): its YAML's."""
    from poolsieve.curate.strategies import strategy_params
    from poolsieve.sqlrunner import SqlProject

    vocabulary = strategy_params(SqlProject(), "text_based", "datacomp")["vocabulary"]
    words = pl.col("text").str.to_lowercase().str.extract_all("[a-z]+")
    return words.list.eval(pl.element().is_in(vocabulary)).list.any()


def test_metadata_mode_reproduces_datacomps_baselines(run, lake, source_dir, tmp_path):
    assert not (lake.root / "shard_images").exists()  # nothing downloaded
    features = pl.concat([pl.read_parquet(p) for p in part_paths(lake.root / "pool_features")])
    assert features["download_status"].null_count() == len(features) == 3 * ROWS
    df = _source(source_dir)
    expected = _datacomp(df, _in_exemplar_cluster(lake, source_dir, tmp_path / "exemplars.npy"))
    assert (
        set(features.filter(pl.col("ineligible_reason").is_null())["uid"]) == expected["no_filter"]
    )
    for name in strategy_names():
        npy = lake.partition_dir("subset", name) / "subset.npy"
        kept = set(pairs_to_uids(read_subset_npy(npy)))
        assert 0 < len(expected[name]) < 3 * ROWS, name
        assert kept == expected[name], (
            name,
            sorted(kept - expected[name])[:5],
            sorted(expected[name] - kept)[:5],
        )
