"""The demo world's planted content problems: kinds, default rates, expected download outcomes.

Grain: one planted problem per pool row, on rows that survive ingest and URL dedup ("base"
rows), so every planted row reaches the downloader and the filters, and no row carries two
problems. Per shard, a kind is planted on exactly ``problem_count(rate, rows_per_shard)`` rows.
The two copying kinds: ``eval_near_duplicate`` shows a perturbed eval image,
``near_duplicate_image`` a perturbed copy of an earlier clean pool row's image (plant.py).
The ``optout_*`` kinds serve the image with an opt-out signal on it (a header, or a rule naming its
path in a host file: optout.py); ``optout_control`` with a look-alike signal that opts nothing out.
"""

from __future__ import annotations

import math

#: kind -> the download outcome a careful downloader must report for that row
OUTCOMES: dict[str, str] = {
    "mismatched_caption": "success",
    "non_english_caption": "success",
    "junk_caption": "success",
    "tiny_image": "success",
    "extreme_aspect": "success",
    "eval_near_duplicate": "success",
    "near_duplicate_image": "success",
    "http_404": "http_404",
    "http_500": "http_500",
    "corrupt_bytes": "decode_error",
    "slow_response": "timeout",
    "not_image": "not_image",
    "redirect_private": "blocked",
    "optout_x_robots_tag": "opted_out",
    "optout_tdm_reservation": "opted_out",
    "optout_robots_txt": "opted_out",
    "optout_tdmrep_json": "opted_out",
    "optout_ai_txt": "opted_out",
    "optout_control": "success",
}
PROBLEM_KINDS: tuple[str, ...] = tuple(OUTCOMES)
DOWNLOAD_OUTCOMES: tuple[str, ...] = tuple(dict.fromkeys(OUTCOMES.values()))
#: share of each shard's rows planted with each kind (see problem_count)
DEFAULT_RATES: dict[str, float] = {
    "mismatched_caption": 0.12,
    "non_english_caption": 0.05,
    "junk_caption": 0.04,
    "tiny_image": 0.02,
    "extreme_aspect": 0.02,
    "eval_near_duplicate": 0.01,
    "near_duplicate_image": 0.02,
    "http_404": 0.03,
    "http_500": 0.01,
    "corrupt_bytes": 0.01,
    "slow_response": 0.006,
    "not_image": 0.01,
    "redirect_private": 0.006,
    "optout_x_robots_tag": 0.01,
    "optout_tdm_reservation": 0.01,
    "optout_robots_txt": 0.01,
    "optout_tdmrep_json": 0.01,
    "optout_ai_txt": 0.01,
    "optout_control": 0.01,
}
#: the route the server applies to a planted row's URL path (every other path: "ok")
ROUTE_OF: dict[str, str] = {
    "http_404": "404",
    "http_500": "500",
    "corrupt_bytes": "corrupt",
    "slow_response": "slow",
    "not_image": "not_image",
    "redirect_private": "redirect_private",
}
#: where a redirect_private route points (never contacted: the downloader must refuse it)
PRIVATE_TARGETS: dict[str, str] = {
    "link_local_metadata": "http://169.254.169.254/latest/meta-data/",
    "private_network": "http://10.0.0.1/x.jpg",
}


def problem_count(rate: float, rows_per_shard: int) -> int:
    """Rows per shard for one kind: rate x rows, rounded half up (0.5 -> 1, unlike round())."""
    return math.floor(rate * rows_per_shard + 0.5)


def resolve_rates(rates: dict[str, float] | None) -> dict[str, float]:
    """DEFAULT_RATES overridden by ``rates``; unknown kinds and rates outside [0, 1] are refused."""
    resolved = {**DEFAULT_RATES, **(rates or {})}
    unknown = sorted(set(resolved) - set(PROBLEM_KINDS))
    if unknown or any(not 0 <= r <= 1 for r in resolved.values()):
        raise ValueError(f"rates: unknown kinds {unknown} or values outside [0, 1] in {resolved}")
    return resolved
