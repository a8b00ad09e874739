"""``world_truth.json``: everything planted in the demo world and what each step should find.

Grain: one document per world. The pool builder's part (rows.PoolBuilder.truth): ``shards``,
``rows_total``, ``params``, ``expected`` quarantine/dedup counts and the ``planted`` metadata
rows. Then:

* ``problems``: one entry per planted content problem (shard, row, uid, url, kind, detail,
  expect_download, concept, size, and caption_concept / eval_split + eval_key / location /
  duplicate_of + source_shard + source_row / an opt-out row's signal + headers or host_file and
  host_file_origin, the origin whose host file names the row (+ user_agent, tdm_reservation));
* ``problem_counts`` (all shards) and ``problem_counts_per_shard``;
* ``download``: expected outcome counts over the rows dedup keeps (clean rows -> success), total
  and per shard; ``timeout`` assumes a downloader timeout below ``slow_seconds``;
* ``eval_near_duplicates``: pool uid -> eval image, with the perturbation;
* ``image_near_duplicates``: pool uid -> the earlier pool row whose image it copies
  (``duplicate_of``: that row's uid; ``source_shard``, ``source_row``), with the perturbation;
* ``takedown``: the takedown list the world writes (``list``: its name) and its ``entries``,
  one per target row: entry (1-based row of the list), kind (uid, url, sha256 or phash), the
  target's uid, shard and row, and the entry's reference (takedown.py);
* ``optouts``: ``signals`` {signal: uids the downloader must opt out naming that signal},
  ``controls`` {detail: uids it must download: look-alike signals}, ``control_signals``
  {detail: the signal it imitates}, ``host_files`` {signal: URL path, on every origin: each
  origin's files name only its own rows, robots_other_origin's aside} and ``assumes`` (the
  downloader's default user_agents and directives the controls hold under; optout.py);
* ``aging``: how the world has aged since it was written (aging.py): ``epoch`` (1: never aged),
  ``rates``, the aged uids per kind (``dead``, ``reencoded``, ``replaced``) and ``rows``, one per
  aged row: uid, shard, row, url, kind, sha256_before, sha256_after (None: dead),
  phash_distance (None: dead), file (the new body's docroot path; None: dead). A truth older
  than format 6 has none: read it with ``aging_of(truth)``;
* ``trusted`` and ``eval`` sizes; ``seed``, ``config``, both base URLs and the hosts a downloader
  must allowlist to reach the demo server.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from poolsieve.images.optout import HOST_FILES, SIGNALS
from poolsieve_demo.optout import ASSUMED, CONTROL, CONTROL_SIGNAL, DETAILS, SIGNAL_OF
from poolsieve_demo.problems import DOWNLOAD_OUTCOMES, OUTCOMES, PROBLEM_KINDS

#: the format number of world_truth.json (recorded in it as ``version``); 3 adds the
#: ``near_duplicate_image`` kind and ``image_near_duplicates``; 4 adds ``takedown``; 5 adds the
#: ``optout_*`` kinds (download outcome ``opted_out``) and ``optouts``; 6 adds ``aging``; 7
#: counts the takedown targets matched by uid, URL or sha256 as download outcome ``removed``; 8
#: gives each host-file opt-out row its ``host_file_origin`` (every origin has its own host
#: files) and adds the ``robots_other_origin`` control
TRUTH_FORMAT = 8
#: the aging kinds (aging.py), in record order
AGING_KINDS: tuple[str, ...] = ("dead", "reencoded", "replaced")


def no_aging() -> dict:
    """The ``aging`` record of a world at epoch 1 (never aged)."""
    return {"epoch": 1, "rates": {}, **{k: [] for k in AGING_KINDS}, "rows": []}


def aging_of(truth: dict) -> dict:
    """A truth's ``aging`` record; a truth older than format 6 is a world never aged."""
    return truth.get("aging") or no_aging()


#: takedown entry kinds the downloader applies before any request (a pHash entry can only match
#: an image already downloaded): their rows' download outcome is ``removed``
REMOVED_BEFORE_DOWNLOAD = ("uid", "url", "sha256")
EXPECTED_OUTCOMES = (*DOWNLOAD_OUTCOMES, "removed")


def download_expectation(pool_truth: dict, problems: list[dict], takedown: dict) -> dict:
    """Expected download outcome counts over the kept rows, total and per shard: each planted
    problem's outcome, ``removed`` for the takedown targets matched before the download, and
    success for the rest."""
    entries = takedown.get("entries", [])
    per_shard = {}
    for shard, want in pool_truth["expected"]["per_shard"].items():
        outcomes = Counter(OUTCOMES[p["kind"]] for p in problems if p["shard"] == shard)
        outcomes["removed"] = sum(
            1 for e in entries if e["shard"] == shard and e["kind"] in REMOVED_BEFORE_DOWNLOAD
        )
        outcomes["success"] += want["keep"] - sum(outcomes.values())
        per_shard[shard] = {o: outcomes[o] for o in EXPECTED_OUTCOMES}
    total = {o: sum(c[o] for c in per_shard.values()) for o in EXPECTED_OUTCOMES}
    return {"expected": total, "per_shard": per_shard}


def _counts(problems: list[dict], shards: list[str]) -> tuple[dict, dict]:
    total = Counter(p["kind"] for p in problems)
    per_shard = {
        s: {
            k: sum(1 for p in problems if p["shard"] == s and p["kind"] == k) for k in PROBLEM_KINDS
        }
        for s in shards
    }
    return {k: total[k] for k in PROBLEM_KINDS}, per_shard


def world_truth(pool_truth: dict, problems: list[dict], extras: dict, takedown: dict) -> dict:
    """The world's truth: the pool's truth + problems, download expectations, the takedown
    list's targets and ``extras``."""
    totals, per_shard = _counts(problems, pool_truth["shards"])
    hosts = [urlsplit(u).netloc for u in (extras["base_url"], extras["alt_base_url"])]
    return {
        **pool_truth,
        **extras,
        "version": TRUTH_FORMAT,
        "allowlist_hosts": sorted(set(hosts)),
        "problems": problems,
        "problem_counts": totals,
        "problem_counts_per_shard": per_shard,
        "download": download_expectation(pool_truth, problems, takedown),
        "eval_near_duplicates": _copies(
            problems, "eval_near_duplicate", ("eval_split", "eval_key")
        ),
        "image_near_duplicates": _copies(
            problems, "near_duplicate_image", ("duplicate_of", "source_shard", "source_row")
        ),
        "takedown": takedown,
        "optouts": optout_summary(problems),
        "aging": no_aging(),
    }


def optout_summary(problems: list[dict]) -> dict:
    """The planted opt-out rows by signal, and the control rows by detail (uids, pool order)."""
    signals: dict[str, list[str]] = {s: [] for s in SIGNALS}
    controls: dict[str, list[str]] = {d: [] for d in DETAILS[CONTROL]}
    for p in problems:
        if p["kind"] in SIGNAL_OF:
            signals[SIGNAL_OF[p["kind"]]].append(p["uid"])
        elif p["kind"] == CONTROL:
            controls[p["detail"]].append(p["uid"])
    return {
        "signals": signals,
        "controls": controls,
        "control_signals": dict(CONTROL_SIGNAL),
        "host_files": dict(HOST_FILES),
        "assumes": {k: list(v) for k, v in ASSUMED.items()},
    }


def _copies(problems: list[dict], kind: str, fields: tuple[str, ...]) -> list[dict]:
    """The planted copies of one kind: where each is, what it copies, its perturbation."""
    return [
        {
            "uid": p["uid"],
            "shard": p["shard"],
            "row": p["row"],
            **{f: p[f] for f in fields},
            "perturbation": p["detail"],
        }
        for p in problems
        if p["kind"] == kind
    ]
