"""Resources, one per concern: the lake (with DuckDB's limits), the downloader, the scorer, how a
CLIP runs (embedding), curation, training, and the eval sets.

Local and production differ only in these values. Each field has a default, an environment
variable (``POOLSIEVE_*``, listed in docs/configuration.md) and can be set per run from the
launchpad. ``resources_from_env`` builds the whole set; the code location binds the variables
that are set as ``dg.EnvVar`` (read when a run starts), the CLI and tests read them at once.
A deployment whose image hosts need starting (a local image server) subclasses
DownloaderResource and overrides ``hosts_up``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from poolsieve.clip.scorer import ScorerSettings
from poolsieve.curate.features import FeatureSettings
from poolsieve.curate.near_duplicates import NearDupSettings
from poolsieve.duck import DuckSettings, connect
from poolsieve.images.health import HealthSettings
from poolsieve.images.optout import DEFAULT_DIRECTIVES, DEFAULT_USER_AGENTS
from poolsieve.images.pixel_features import PIXEL_THRESHOLD
from poolsieve.images.settings import DownloadSettings
from poolsieve.lake import Lake
from poolsieve.pool.ingest import IngestParams

DEFAULT_LAKE = str(Path.cwd() / "lake")  # ./lake where the code location starts


def setting(default: Any, env: str, description: str) -> Any:
    """A resource field: its default, its environment variable and what it sets (the launchpad
    shows the description)."""
    return Field(
        default=default, description=f"{description} (env {env})", json_schema_extra={"env": env}
    )


class LakeResource(dg.ConfigurableResource):
    """Where the lake is, which pool feeds it, and the limits of every DuckDB connection."""

    lake_dir: str = setting(
        DEFAULT_LAKE, "POOLSIEVE_LAKE", "lake folder, or an fsspec URL (s3://bucket/prefix)"
    )
    lake_cache: str = setting(
        "", "POOLSIEVE_LAKE_CACHE", "this machine's working copy of a remote lake; empty: ~/.cache"
    )
    lake_options: str = setting(
        "", "POOLSIEVE_LAKE_OPTIONS", "fsspec storage options of a remote lake, as JSON"
    )
    source: str = setting("", "POOLSIEVE_SOURCE", "pool parquet: a folder or an fsspec URL")
    registry_partitions: int = setting(
        0,
        "POOLSIEVE_REGISTRY_PARTITIONS",
        "URL registry bucket groups (a power of two up to 1024, fixed per lake); 0: the lake's own",
    )
    duckdb_memory_limit: str = setting("2GB", "POOLSIEVE_DUCKDB_MEMORY", "DuckDB memory_limit")
    duckdb_threads: int = setting(2, "POOLSIEVE_DUCKDB_THREADS", "DuckDB threads")
    max_url_length: int = setting(2048, "POOLSIEVE_MAX_URL_LENGTH", "longer URLs: quarantined")
    max_image_side: int = setting(
        100_000, "POOLSIEVE_MAX_IMAGE_SIDE", "larger stated sizes: quarantined"
    )

    @property
    def store(self) -> Lake:
        """The lake's folder layout (one folder per asset and partition, the catalog)."""
        return Lake.at(self.lake_dir, self.lake_cache or None, lake_options(self.lake_options))

    @property
    def source_url(self) -> str:
        if not self.source:
            raise ValueError("no pool source configured: set POOLSIEVE_SOURCE or lake.source")
        return self.source

    @property
    def ingest_params(self) -> IngestParams:
        return IngestParams(self.max_url_length, self.max_image_side)

    @property
    def duck_settings(self) -> DuckSettings:
        return DuckSettings(memory_limit=self.duckdb_memory_limit, threads=self.duckdb_threads)

    def connect_memory(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the same limits (for work that needs no catalog)."""
        return connect(":memory:", self.duck_settings)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection to the lake's catalog (waits, bounded, if another run holds it)."""
        self.store.root.mkdir(parents=True, exist_ok=True)
        return connect(self.store.catalog, self.duck_settings)


def lake_options(text: str) -> dict:
    """POOLSIEVE_LAKE_OPTIONS: a JSON object of fsspec storage options (empty: none)."""
    if not text.strip():
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"POOLSIEVE_LAKE_OPTIONS is not JSON ({err}): {text[:80]!r}") from err
    if not isinstance(options, dict):
        raise ValueError(f"POOLSIEVE_LAKE_OPTIONS must be a JSON object, not {text[:80]!r}")
    return options


class DownloaderResource(dg.ConfigurableResource):
    """img2dataset with DataComp's settings and the fetch guard's allowlist (DownloadSettings).

    ``hosts_up`` keeps the image hosts reachable while a step downloads: a step that uses this
    resource runs inside it, and the CLI holds it around its loop over shards. Web hosts need
    nothing, so here it does nothing.
    """

    timeout: float = setting(10.0, "POOLSIEVE_DOWNLOAD_TIMEOUT", "seconds per image request")
    deadline: float = setting(
        0.0, "POOLSIEVE_DOWNLOAD_DEADLINE", "seconds one image may take in all; 0: 3 x timeout"
    )
    threads: int = setting(32, "POOLSIEVE_DOWNLOAD_THREADS", "img2dataset threads per shard")
    allowlist: list[str] = setting(
        [],
        "POOLSIEVE_DOWNLOAD_ALLOWLIST",
        "'ip:port' or CIDR reachable although private or loopback (env: comma-separated)",
    )
    verify_sha256: bool = setting(
        False, "POOLSIEVE_VERIFY_SHA256", "refuse images whose sha256 differs from the pool's"
    )
    min_success_rate: float = setting(
        0.5, "POOLSIEVE_MIN_DOWNLOAD_SUCCESS_RATE", "shard_images warns below this success rate"
    )
    honour_optouts: bool = setting(
        True,
        "POOLSIEVE_HONOUR_OPTOUTS",
        "check robots.txt, tdmrep.json, ai.txt, X-Robots-Tag and tdm-reservation per image",
    )
    optout_agents: list[str] = setting(
        list(DEFAULT_USER_AGENTS),
        "POOLSIEVE_OPTOUT_AGENTS",
        "user agents the opt-out rules are checked for; the first is sent (env: comma-separated)",
    )
    optout_directives: list[str] = setting(
        list(DEFAULT_DIRECTIVES),
        "POOLSIEVE_OPTOUT_DIRECTIVES",
        "X-Robots-Tag directives that opt an image out (env: comma-separated)",
    )
    optout_max_age_h: float = setting(
        24.0, "POOLSIEVE_OPTOUT_MAX_AGE_H", "hours a host's cached opt-out files stay fresh"
    )
    robots_unreachable: str = setting(
        "disallow",
        "POOLSIEVE_ROBOTS_UNREACHABLE",
        "a robots.txt answering 5xx or unreachable: 'disallow' (RFC 9309) or 'allow'",
    )
    health_sample_rate: float = setting(
        0.01, "POOLSIEVE_HEALTH_SAMPLE_RATE", "share of downloaded rows pool_health re-fetches"
    )
    health_minimum: int = setting(
        20, "POOLSIEVE_HEALTH_MINIMUM", "pool_health re-fetches at least this many rows per shard"
    )
    health_phash_distance: int = setting(
        6,
        "POOLSIEVE_HEALTH_PHASH_DISTANCE",
        "pool_health: other bytes within this many pHash bits are the same picture re-encoded",
    )

    @property
    def health(self) -> HealthSettings:
        return HealthSettings(
            rate=self.health_sample_rate,
            minimum=self.health_minimum,
            phash_distance=self.health_phash_distance,
        )

    @property
    def settings(self) -> DownloadSettings:
        return DownloadSettings(
            timeout=self.timeout,
            deadline=self.deadline or None,
            thread_count=self.threads,
            allowlist=tuple(self.allowlist),
            verify_sha256=self.verify_sha256,
            honour_optouts=self.honour_optouts,
            optout_agents=tuple(self.optout_agents),
            optout_directives=tuple(self.optout_directives),
            optout_max_age_h=self.optout_max_age_h,
            robots_unreachable=self.robots_unreachable,
        )

    @contextlib.contextmanager
    def hosts_up(self, log: Callable[[str], None] | None = None) -> Iterator[None]:
        """The image hosts, reachable for as long as the block runs (``log`` hears what started)."""
        yield

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[Any]:
        with self.hosts_up(context.log.info):
            yield self


class ScorerResource(dg.ConfigurableResource):
    """The CLIP behind every CLIP score: a checkpoint or pretrained tag, or one trained here."""

    arch: str = setting("poolsieve-tiny", "POOLSIEVE_SCORER_ARCH", "open_clip architecture")
    source: str = setting(
        "", "POOLSIEVE_SCORER", "checkpoint path or pretrained tag; empty: train on trusted_dir"
    )
    trusted_dir: str = setting(
        "", "POOLSIEVE_TRUSTED", "clean webdataset pairs to train the scorer on"
    )
    scale: str = setting("tiny-cpu", "POOLSIEVE_SCORER_SCALE", "training scale of a trained one")
    samples: int = setting(0, "POOLSIEVE_SCORER_SAMPLES", "samples seen; 0: the scale's budget")

    @property
    def settings(self) -> ScorerSettings:
        return ScorerSettings(
            arch=self.arch,
            source=self.source,
            trusted_dir=self.trusted_dir,
            scale=self.scale,
            samples_seen=self.samples,
        )


class EmbeddingResource(dg.ConfigurableResource):
    """Where and how a CLIP runs: embeddings, pool features and evaluation."""

    device: str = setting("auto", "POOLSIEVE_DEVICE", "torch device; auto: CUDA when present")
    batch_size: int = setting(256, "POOLSIEVE_EMBED_BATCH_SIZE", "images per forward pass")
    workers: int = setting(2, "POOLSIEVE_EMBED_WORKERS", "DataLoader workers decoding images")


class CurationResource(dg.ConfigurableResource):
    """Pool features and the filters' parameters."""

    param_profile: str = setting(
        "",
        "POOLSIEVE_PARAM_PROFILE",
        "filter parameter profile (a YAML's profiles); empty: params only",
    )
    mode: str = setting(
        "download",
        "POOLSIEVE_POOL_MODE",
        "download (eligible once downloaded and embedded) or metadata (DataComp's filtering "
        "track: eligible from the metadata, scores and .npz alone)",
    )
    language_detector: str = setting(
        "fasttext", "POOLSIEVE_LANGUAGE_DETECTOR", "fasttext (lid.176), gcld3, lingua or langid"
    )
    laion_language_detector: str = setting(
        "gcld3",
        "POOLSIEVE_LAION_LANGUAGE_DETECTOR",
        "the second detector, whose answer is language_cld3 (LAION-2B's rule); empty: none",
    )
    language_workers: int = setting(
        0,
        "POOLSIEVE_LANGUAGE_WORKERS",
        "processes identifying caption languages within a shard; 0: one per core, 1: in-process",
    )
    image_clusters: int = setting(36, "POOLSIEVE_IMAGE_CLUSTERS", "k-means k of image_based")
    cluster_embeddings: str = setting(
        "scorer",
        "POOLSIEVE_CLUSTER_EMBEDDINGS",
        "image embeddings clustered: scorer (clip_embeddings) or an .npz key (l14_img, b32_img)",
    )
    centroid_sample: int = setting(
        200_000, "POOLSIEVE_CENTROID_SAMPLE", "image embeddings k-means trains on (seeded sample)"
    )
    exemplar_dir: str = setting(
        "",
        "POOLSIEVE_EXEMPLARS",
        "exemplars: an .npy of image embeddings, or a folder of webdataset tars; empty: the "
        "trusted set",
    )

    phash_max_distance: int = setting(
        2,
        "POOLSIEVE_PHASH_MAX_DISTANCE",
        "near_duplicates: two images whose 64-bit pHashes differ in at most this many bits are "
        "near-duplicates (the later is dropped by filters that use it); -1: the rule is off",
    )
    semantic_threshold: float = setting(
        0.0,
        "POOLSIEVE_SEMDEDUP_THRESHOLD",
        "near_duplicates (SemDeDup): two images of one image cluster whose embeddings' cosine "
        "similarity is at least this are near-duplicates; 0 (the default): the rule is off (it "
        "needs a strong CLIP's embeddings, or semantic_features=pixel)",
    )
    semantic_features: str = setting(
        "clip",
        "POOLSIEVE_SEMDEDUP_FEATURES",
        "what the semantic rule compares: clip (the cluster_embeddings embeddings) or pixel "
        "(image_hashes' copy features: re-encoded, re-exposed or few-pixel-shifted copies, "
        "whatever the CLIP)",
    )
    semantic_probes: int = setting(
        1,
        "POOLSIEVE_SEMDEDUP_PROBES",
        "the semantic rule compares each image within its this many nearest image clusters (1: "
        "its own; more finds copies a weak CLIP puts near a cluster border, at that many times "
        "the work)",
    )

    takedown_lists: str = setting(
        "",
        "POOLSIEVE_TAKEDOWN_LISTS",
        "a folder of takedown and hash lists (CSV or parquet: uid, url, sha256 or phash per row; "
        "docs/curation.md); every row they match is removed from every subset; empty: none",
    )
    takedown_phash_distance: int = setting(
        4,
        "POOLSIEVE_TAKEDOWN_PHASH_DISTANCE",
        "a listed pHash removes images whose pHash is within this many bits (of 64)",
    )

    download_selection: str = setting(
        "none",
        "POOLSIEVE_DOWNLOAD_SELECTION",
        "metadata mode, after the subsets: none (stop there), selected (download the uids the "
        "download_strategies keep, then train and evaluate) or all (every url_dedup-kept row)",
    )
    download_strategies: str = setting(
        "",
        "POOLSIEVE_DOWNLOAD_STRATEGIES",
        "the strategies whose kept uids download_selection=selected downloads, comma-separated; "
        "empty: every strategy",
    )

    def exemplar_tars(self, trusted_dir: str) -> list[Path]:
        folder = self.exemplar_dir or trusted_dir
        return sorted(Path(folder).glob("*.tar")) if folder else []

    def selection(self, known: list[str]) -> tuple[str, list[str]]:
        """(download_selection, the strategies it downloads for), checked against ``known`` (the
        strategy names): a clear ValueError names a bad value."""
        return check_selection(self.download_selection, self.download_strategies, known)

    def near_dup_settings(self) -> NearDupSettings:
        """The near_duplicates rules' settings (ValueError names a value out of range)."""
        return NearDupSettings(
            self.phash_max_distance,
            self.semantic_threshold,
            self.cluster_embeddings,
            self.semantic_features,
            self.semantic_probes,
        )

    def feature_settings(self) -> FeatureSettings:
        """What shard_features computes and pool_features counts as eligible."""
        return FeatureSettings(
            self.language_detector,
            self.laion_language_detector,
            self.mode,
            language_workers=self.language_workers,
        )


#: curation.download_selection's values (metadata mode: what is downloaded after the subsets)
DOWNLOAD_SELECTIONS = ("none", "selected", "all")


def check_selection(selection: str, strategies: str, known: list[str]) -> tuple[str, list[str]]:
    """``selection`` checked and ``strategies`` (comma-separated, empty: every one of ``known``)
    as a list; a ValueError names the setting and the values it takes."""
    value = selection.strip().lower()
    if value not in DOWNLOAD_SELECTIONS:
        raise ValueError(
            f"curation.download_selection (POOLSIEVE_DOWNLOAD_SELECTION) is {selection!r}; "
            f"expected one of {', '.join(DOWNLOAD_SELECTIONS)}"
        )
    names = list(dict.fromkeys(n.strip() for n in strategies.split(",") if n.strip()))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"curation.download_strategies (POOLSIEVE_DOWNLOAD_STRATEGIES) names unknown "
            f"strategies {unknown}; known: {sorted(known)}"
        )
    return value, names or list(known)


class TrainingResource(dg.ConfigurableResource):
    """Every strategy's CLIP: one scale, seed and samples-seen budget for all (and the seed of
    pool_features' k-means)."""

    scale: str = setting("tiny-cpu", "POOLSIEVE_TRAIN_SCALE", "tiny-cpu or DataComp's scales")
    seed: int = setting(0, "POOLSIEVE_TRAIN_SEED", "training and k-means seed")
    samples: int = setting(0, "POOLSIEVE_TRAIN_SAMPLES", "samples seen; 0: the scale's budget")
    shard_size: int = setting(1000, "POOLSIEVE_TRAIN_SHARD_SIZE", "samples per train shard tar")


class EvalSetsResource(dg.ConfigurableResource):
    """The held-out eval sets every model is scored on and the pool is decontaminated against."""

    eval_dir: str = setting("", "POOLSIEVE_EVAL", "eval sets (classification/, retrieval/)")
    suite_dir: str = setting(
        "", "POOLSIEVE_EVAL_SUITE", "DataComp's eval suite in clip_benchmark's layout (optional)"
    )
    decontam_threshold: float = setting(
        PIXEL_THRESHOLD, "POOLSIEVE_DECONTAM_THRESHOLD", "pixel cosine at which a copy is flagged"
    )

    @property
    def eval_path(self) -> str:
        if not self.eval_dir:
            raise ValueError("no eval sets configured: set POOLSIEVE_EVAL or eval_sets.eval_dir")
        return self.eval_dir


@dataclasses.dataclass(frozen=True)
class Resources:
    """The code location's resources, by the key each asset asks for."""

    lake: LakeResource
    downloader: DownloaderResource
    scorer: ScorerResource
    embedding: EmbeddingResource
    curation: CurationResource
    training: TrainingResource
    eval_sets: EvalSetsResource

    def as_dict(self) -> dict[str, dg.ConfigurableResource]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: resource key -> its class, as Resources declares them (a deployment may pass a subclass)
RESOURCE_CLASSES: dict[str, type[dg.ConfigurableResource]] = typing.get_type_hints(Resources)


def resources_from_env(
    env: Mapping[str, str] | None = None,
    *,
    env_vars: bool = False,
    classes: Mapping[str, type[dg.ConfigurableResource]] | None = None,
    **overrides: Mapping[str, Any],
) -> Resources:
    """Every resource from the POOLSIEVE_* variables set in ``env`` (default os.environ; the
    field's default where one is unset), with ``overrides`` on top ({field: value} per key).

    ``env_vars``: str and int fields name their variable (dg.EnvVar, read when a run starts)
    instead of holding its value now. ``classes``: subclasses to use for some keys."""
    unknown = sorted(set(overrides) - set(RESOURCE_CLASSES))
    if unknown:
        raise ValueError(f"unknown resource keys {unknown}; known: {sorted(RESOURCE_CLASSES)}")
    env = os.environ if env is None else env
    built = {}
    for key, base in RESOURCE_CLASSES.items():
        cls = (classes or {}).get(key, base)
        values = {**_env_values(base, env, env_vars), **overrides.get(key, {})}
        built[key] = cls(**values)
    return Resources(**built)


def env_names(cls: type[dg.ConfigurableResource]) -> dict[str, str]:
    """field -> its environment variable."""
    return {
        name: field.json_schema_extra["env"]
        for name, field in cls.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and "env" in field.json_schema_extra
    }


def _env_values(cls, env: Mapping[str, str], env_vars: bool) -> dict[str, Any]:
    fields = cls.model_fields
    return {
        name: _env_value(fields[name].annotation, var, env[var], env_vars)
        for name, var in env_names(cls).items()
        if var in env
    }


def _env_value(annotation, var: str, raw: str, env_vars: bool) -> Any:
    """One variable's value for a field of type ``annotation`` (a clear error names it)."""
    if annotation is str:
        return dg.EnvVar(var) if env_vars else raw
    if annotation is int and env_vars:
        return dg.EnvVar.int(var)
    kind, parse = PARSERS[annotation]
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"environment variable {var}={raw!r} is not {kind}") from None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "0", "false", "no", ""):
        raise ValueError(raw)
    return value in ("1", "true", "yes")


#: field type -> (what the variable must hold, its parser)
PARSERS: dict[Any, tuple[str, Callable[[str], Any]]] = {
    int: ("an integer", int),
    float: ("a number", float),
    bool: ("yes/no (1, true, yes / 0, false, no)", _bool),
    list[str]: ("a list", lambda raw: [item.strip() for item in raw.split(",") if item.strip()]),
}
