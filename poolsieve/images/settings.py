"""Download settings: DataComp's img2dataset settings plus the downloader's safety limits."""

from __future__ import annotations

from dataclasses import dataclass

from poolsieve.images.address import Allowlist
from poolsieve.images.guard import GuardedTimeout
from poolsieve.images.optout import DEFAULT_DIRECTIVES, DEFAULT_USER_AGENTS
from poolsieve.images.policy import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_REDIRECTS, FetchPolicy

#: the default deadline of one fetch, in timeouts
DEADLINE_TIMEOUTS = 3


@dataclass(frozen=True)
class DownloadSettings:
    """How one pool shard is downloaded.

    Defaults follow DataComp's ``download_upstream.py``: 512 px on the longest side, only
    shrinking, jpg into webdataset tars of 10,000 samples named ``NNNNNNNN.tar``, uid saved with
    each sample, face boxes blurred, two retries. One img2dataset process per shard with many
    threads suits a 2-core machine: shards are the unit of parallelism (Dagster partitions), and
    within a shard the threads overlap network waits.
    """

    image_size: int = 512
    resize_mode: str = "keep_ratio_largest"
    resize_only_if_bigger: bool = True
    encode_format: str = "jpg"
    output_format: str = "webdataset"
    retries: int = 2
    timeout: float = 10.0
    processes_count: int = 1
    thread_count: int = 32
    number_sample_per_shard: int = 10_000
    oom_shard_count: int = 8
    # DataComp issue #67: ~14% of pool images changed since the pool was built.
    verify_sha256: bool = False
    # Safety: "ip:port" or CIDR strings reachable although private or loopback.
    allowlist: tuple[str, ...] = ()
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS  # PIL's default decompression-bomb limit
    max_redirects: int = MAX_REDIRECTS
    # Seconds one fetch may take in all (connect, redirects, body): ``timeout`` bounds each
    # socket read, so a server dripping a byte per read would hold a thread for ever without it.
    # None: DEADLINE_TIMEOUTS x timeout. A fetch past it is refused as ``deadline``, not retried.
    deadline: float | None = None
    # Opt-out signals (poolsieve.images.optout): checked unless honour_optouts is False. The
    # host files are checked for every agent of optout_agents (the first one is also the token
    # img2dataset sends in its User-Agent); a cached host file is reused for optout_max_age_h
    # hours (RFC 9309 caps robots.txt caching at 24). robots_unreachable: what a robots.txt that
    # failed with a 5xx or a network error means: "disallow" (RFC 9309 2.3.1.4) or "allow".
    honour_optouts: bool = True
    optout_agents: tuple[str, ...] = DEFAULT_USER_AGENTS
    optout_directives: tuple[str, ...] = DEFAULT_DIRECTIVES
    optout_max_age_h: float = 24.0
    robots_unreachable: str = "disallow"
    # set per shard from the takedown lists (poolsieve.curate.takedown.download_blocks)
    blocked_sha256: frozenset[str] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "allowlist", tuple(self.allowlist))
        object.__setattr__(self, "optout_agents", tuple(self.optout_agents))
        object.__setattr__(self, "optout_directives", tuple(self.optout_directives))
        if self.robots_unreachable not in ("disallow", "allow"):
            raise ValueError(
                f"robots_unreachable must be 'disallow' or 'allow', not {self.robots_unreachable!r}"
            )
        Allowlist.parse(self.allowlist)  # fail at configuration time, not in a worker
        if self.timeout <= 0 or (self.deadline is not None and self.deadline <= 0):
            raise ValueError(
                f"timeout and deadline must be > 0 (got {self.timeout}, {self.deadline})"
            )

    @property
    def deadline_seconds(self) -> float:
        return self.deadline if self.deadline is not None else DEADLINE_TIMEOUTS * self.timeout

    def policy(self) -> FetchPolicy:
        return FetchPolicy(
            allowlist=Allowlist.parse(self.allowlist),
            max_image_bytes=self.max_image_bytes,
            max_image_pixels=self.max_image_pixels,
            max_redirects=self.max_redirects,
            deadline=self.deadline_seconds,
            honour_optouts=self.honour_optouts,
            optout_agents=self.optout_agents,
            optout_directives=self.optout_directives,
            blocked_sha256=self.blocked_sha256,
        )


def img2dataset_kwargs(settings: DownloadSettings, *, has_bboxes: bool) -> dict:
    """The keyword arguments of ``img2dataset.download`` for one shard (input and output aside).

    The input parquet has columns ``url``, ``text``, ``uid`` and, when present, ``face_bboxes``
    and ``sha256``. The timeout carries the fetch guard into img2dataset's workers.
    """
    return {
        "input_format": "parquet",
        "url_col": "url",
        "caption_col": "text",
        "save_additional_columns": ["uid"],
        "bbox_col": "face_bboxes" if has_bboxes else None,
        "image_size": settings.image_size,
        "resize_mode": settings.resize_mode,
        "resize_only_if_bigger": settings.resize_only_if_bigger,
        "encode_format": settings.encode_format,
        "output_format": settings.output_format,
        "retries": settings.retries,
        "timeout": GuardedTimeout(settings.timeout, settings.policy()),
        "processes_count": settings.processes_count,
        "thread_count": settings.thread_count,
        "number_sample_per_shard": settings.number_sample_per_shard,
        "oom_shard_count": settings.oom_shard_count,
        # the guard checks X-Robots-Tag itself (naming the directive); img2dataset's own check
        # would only repeat it with a message that names none
        "disallowed_header_directives": [],
        "user_agent_token": settings.optout_agents[0] if settings.optout_agents else None,
        "compute_hash": "sha256",
        "verify_hash": ["sha256", "sha256"] if settings.verify_sha256 else None,
        "distributor": "multiprocessing",
        "enable_wandb": False,
    }
