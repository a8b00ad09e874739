"""A lake's results against the demo world's truth: counts that differ, how well
eval_decontamination found the planted eval near-duplicates, how well the pool-wide
near-duplicate step dropped the planted copies of pool images (``near_duplicate_image``),
which rows the world's takedown requests removed (``removals``), which rows the downloader
opted out (download_status' ``opted_out`` rows, by ``optout_signal``), and how pool health's
re-fetch checks (``pool_health``) found the rows the world's aging killed, re-encoded or
replaced (aging.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np

from poolsieve.curate.takedown import ASSET as REMOVALS_ASSET
from poolsieve.curate.takedown import KINDS as TAKEDOWN_KINDS
from poolsieve.curate.takedown import REMOVALS_FILE
from poolsieve.images.decontamination import RESULT_FILE as DECONTAM_FILE
from poolsieve.images.health import ASSET as HEALTH_ASSET
from poolsieve.images.health import CHECKS_FILE as HEALTH_FILE
from poolsieve.images.optout import OPTED_OUT, SIGNALS
from poolsieve.images.pixel_features import DetectionRates, detection_rates
from poolsieve.images.status import STATUS_FILE
from poolsieve.lake import Lake
from poolsieve_demo.truth import AGING_KINDS, aging_of


def compare_with_truth(counts: dict, truth_path: Path) -> dict:
    """Counts (poolsieve.audit.report.lake_counts) that differ from the truth ({} when all match).

    Compares quarantine and dedup counts, and download outcomes when images were downloaded."""
    truth = json.loads(Path(truth_path).read_text())
    expected = {part: truth["expected"][part] for part in ("quarantine", "dedup")}
    if "download" in counts and "download" in truth:
        expected["download"] = truth["download"]["expected"]
    diffs = {}
    for part, want in expected.items():
        want = {k: v for k, v in want.items() if v}
        if counts[part] != want:
            diffs[part] = {"expected": want, "got": counts[part]}
    return diffs


def near_duplicate_rates(root: Path, truth_path: Path) -> DetectionRates:
    """Recall and false-flag rate of eval_decontamination against the planted copies."""
    planted = {d["uid"] for d in json.loads(Path(truth_path).read_text())["eval_near_duplicates"]}
    conn = duckdb.connect()
    rows = conn.execute(
        "SELECT uid, flagged FROM read_parquet($p) WHERE error IS NULL",
        {"p": Lake(root).asset_files("eval_decontamination", DECONTAM_FILE)},
    ).fetchall()
    flags = np.array([f for _, f in rows], dtype=bool)
    truth = np.array([u in planted for u, _ in rows], dtype=bool)
    return detection_rates(flags, truth)


#: the pool-wide near-duplicate table: one row per dropped uid and rule (uid, shard, rule,
#: duplicate_of, distance), in the ``near_duplicates`` asset's partitions (a uid dropped by both
#: rules counts once in "all", rightly sourced when either row names its source)
IMAGE_DUP_ASSET, IMAGE_DUP_FILE = "near_duplicates", "near_duplicates.parquet"
#: the rules that table names, in report order; "all" is any rule
IMAGE_DUP_RULES = ("phash", "semantic")


def image_duplicate_rates(root: Path, truth_path: Path) -> dict | None:
    """Per rule (and "all": any rule), how the dropped uids compare with the planted copies of
    pool images: planted, found (copies dropped), found_with_right_source (dropped naming the
    planted source), recall, other_drops (dropped uids that are no planted copy), others (the
    decoded images that are no planted copy: eval_decontamination's rows without an error) and
    false_drop_rate = other_drops / others. None when the lake has no near-duplicate table."""
    lake = Lake(root)
    files = lake.asset_files(IMAGE_DUP_ASSET, IMAGE_DUP_FILE)
    if not files:
        return None
    truth = json.loads(Path(truth_path).read_text())
    planted = {d["uid"]: d["duplicate_of"] for d in truth.get("image_near_duplicates", [])}
    conn = duckdb.connect()
    drops = conn.execute(
        "SELECT uid, rule, duplicate_of FROM read_parquet($p)", {"p": files}
    ).fetchall()
    decoded = _decoded_uids(conn, lake)
    others = len(decoded - planted.keys())
    sha = _served_sha256(conn, lake)
    found_rules = sorted({rule for _, rule, _ in drops} - set(IMAGE_DUP_RULES))
    rates = {}
    for rule in (*IMAGE_DUP_RULES, *found_rules, "all"):
        chosen = [(u, d) for u, r, d in drops if rule in ("all", r)]
        same = {
            u for u, d in chosen if u not in planted and sha.get(u) and sha.get(u) == sha.get(d)
        }
        rates[rule] = _rule_rates(chosen, planted, others) | {
            "on": rule in _rules_on(lake),
            "other_drops_same_bytes": len(same),
        }
    return rates


def _served_sha256(conn, lake: Lake) -> dict[str, str]:
    """uid -> sha256 of the bytes it was served (image_hashes)."""
    files = lake.asset_files("image_hashes", "hashes.parquet")
    if not files:
        return {}
    rows = conn.execute("SELECT uid, sha256 FROM read_parquet($p)", {"p": files}).fetchall()
    return dict(rows)


def _rules_on(lake: Lake) -> set[str]:
    """The rules near_duplicates ran with (its settings.json; every rule when it has none)."""
    settings = lake.path(IMAGE_DUP_ASSET, "settings.json")
    if not settings.exists():
        return {*IMAGE_DUP_RULES, "all"}
    return {*json.loads(settings.read_text())["rules"], "all"}


def _decoded_uids(conn, lake: Lake) -> set[str]:
    """The uids whose image was downloaded and decoded (eval_decontamination read it)."""
    files = lake.asset_files("eval_decontamination", DECONTAM_FILE)
    if not files:
        return set()
    query = "SELECT uid FROM read_parquet($p) WHERE error IS NULL"
    return {u for (u,) in conn.execute(query, {"p": files}).fetchall()}


def _rule_rates(drops: list[tuple[str, str]], planted: dict[str, str], others: int) -> dict:
    """One rule's counts and rates; ``drops``: (uid, duplicate_of) of the uids it dropped."""
    dropped = {u for u, _ in drops}
    found = dropped & planted.keys()
    right = {u for u, d in drops if u in planted and planted[u] == d}
    other_drops = len(dropped - planted.keys())
    return {
        "planted": len(planted),
        "found": len(found),
        "found_with_right_source": len(right),
        "recall": len(found) / len(planted) if planted else float("nan"),
        "other_drops": other_drops,
        "others": others,
        "false_drop_rate": other_drops / others if others else float("nan"),
    }


def image_duplicate_lines(rates: dict) -> list[str]:
    """One report line per rule of ``image_duplicate_rates`` (the last: any rule)."""
    lines = []
    for rule, r in rates.items():
        if not r.get("on", True):
            lines.append(f"image near-duplicates ({rule}): rule off (curation settings)")
            continue
        found = "none planted"  # a world written before truth format 3
        if r["planted"]:
            named = r["found_with_right_source"] / r["planted"]
            found = (
                f"{r['recall']:.1%} of {r['planted']} planted dropped "
                f"({named:.1%} naming their source)"
            )
        same = r.get("other_drops_same_bytes", 0)
        lines.append(
            f"image near-duplicates ({'any rule' if rule == 'all' else rule}): {found}, "
            f"{r['false_drop_rate']:.2%} of {r['others']} others dropped"
            + (f" ({same} of them the same bytes as the image they name)" if same else "")
        )
    return lines


def removal_rates(root: Path, truth_path: Path) -> dict | None:
    """How the rows ``removals`` took compare with the world's takedown targets: planted
    (targets), found (targets removed), found_by_kind {kind: (found, planted)}, right_entry
    (targets removed by their own entry of the world's list), other_removed (removed uids that
    are no target: a pHash entry takes near-identical pictures too), other_matched_on
    {matched_on: such uids} and target_matched_on {matched_on: targets} (a sha256 entry should
    match on both sha256_metadata and sha256_image). None when the lake has no removals."""
    files = Lake(root).asset_files(REMOVALS_ASSET, REMOVALS_FILE)
    if not files:
        return None
    takedown = json.loads(Path(truth_path).read_text()).get("takedown") or {}
    targets = {e["uid"]: e for e in takedown.get("entries", [])}
    rows = (
        duckdb.connect()
        .execute('SELECT uid, "list", entry, matched_on FROM read_parquet($p)', {"p": files})
        .fetchall()
    )
    removed = {u for u, *_ in rows}
    right = {
        u
        for u, name, entry, _ in rows
        if u in targets and name == takedown.get("list") and entry == targets[u]["entry"]
    }
    by_match: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}  # target? -> how
    for u, _, _, matched_on in rows:
        by_match[u in targets].setdefault(matched_on, set()).add(u)
    return {
        "planted": len(targets),
        "found": len(removed & targets.keys()),
        "found_by_kind": _found_by_kind(targets, removed),
        "right_entry": len(right),
        "other_removed": len(removed - targets.keys()),
        "other_matched_on": {m: len(us) for m, us in sorted(by_match[False].items())},
        "target_matched_on": {m: len(us) for m, us in sorted(by_match[True].items())},
    }


def _found_by_kind(targets: dict[str, dict], removed: set[str]) -> dict[str, tuple[int, int]]:
    """kind -> (targets of that kind removed, targets of that kind), for the kinds planted."""
    kinds = [k for k in TAKEDOWN_KINDS if any(e["kind"] == k for e in targets.values())]
    return {
        k: (
            sum(1 for u, e in targets.items() if e["kind"] == k and u in removed),
            sum(1 for e in targets.values() if e["kind"] == k),
        )
        for k in kinds
    }


#: why a removed uid that is no target was taken, as the summary says it (in this order)
OTHER_CAUSES = {
    "phash": "pHash neighbours",
    "sha256_image": "same image bytes",
    "sha256_metadata": "same metadata sha256",
    "url": "same URL",
    "uid": "same uid",
}


def removal_lines(rates: dict | None) -> list[str]:
    """The summary line of ``removal_rates`` (none without removals)."""
    if rates is None:
        return []
    found = "none planted"  # a world written before truth format 4
    if rates["planted"]:
        kinds = ", ".join(f"{k} {f}/{n}" for k, (f, n) in rates["found_by_kind"].items())
        found = (
            f"{rates['found'] / rates['planted']:.1%} of {rates['planted']} planted rows removed"
            f" ({kinds})"
        )
        if rates["right_entry"] != rates["found"]:
            found += f", {rates['found'] - rates['right_entry']} by another entry only"
    n = rates["other_removed"]
    others = f"{n} other row{'' if n == 1 else 's'} removed"
    if n:
        matched = rates["other_matched_on"]
        causes = [c for m, c in OTHER_CAUSES.items() if m in matched]
        causes += [m for m in matched if m not in OTHER_CAUSES]
        others += f" ({', '.join(causes)})"
    return [f"takedown requests: {found}, {others}"]


#: the download_status column naming the signal an opted-out row was refused for
SIGNAL_COLUMN = "optout_signal"


def optout_rates(root: Path, truth_path: Path) -> dict | None:
    """How the downloader's opted-out rows (``shard_images`` download_status, error_category
    ``opted_out``) compare with the planted opt-out signals: per signal {"planted", "found"}
    (found: a planted uid opted out naming that signal), "wrong_signal" (planted uids opted out
    naming another one), "controls" {"planted", "kept"} (look-alike rows downloaded: status
    success), "other_opted_out" (opted-out uids neither planted nor control) and
    "by_category_only" (True when download_status has no optout_signal column, an older lake:
    then any opted-out planted uid counts as found). None when the lake has no download_status."""
    files = Lake(root).asset_files("shard_images", STATUS_FILE)
    if not files:
        return None
    optouts = json.loads(Path(truth_path).read_text()).get("optouts") or {}
    planted = {s: set(optouts.get("signals", {}).get(s, [])) for s in SIGNALS}
    controls = {u for uids in optouts.get("controls", {}).values() for u in uids}
    opted, kept, by_category = _opted_out(files)
    signal_of = {u: s for s, uids in planted.items() for u in uids}
    found = {
        s: sum(1 for u in uids if u in opted and (by_category or opted[u] == s))
        for s, uids in planted.items()
    }
    wrong = len(signal_of.keys() & opted.keys()) - sum(found.values())
    return {
        "signals": {s: {"planted": len(planted[s]), "found": found[s]} for s in SIGNALS},
        "wrong_signal": wrong,
        "controls": {"planted": len(controls), "kept": len(controls & kept)},
        "other_opted_out": len(opted.keys() - signal_of.keys() - controls),
        "by_category_only": by_category,
    }


def _opted_out(files: list[str]) -> tuple[dict[str, str | None], set[str], bool]:
    """({opted-out uid: its optout_signal}, uids downloaded, whether the signal column is
    missing from every file: then each signal is None)."""
    conn = duckdb.connect()
    source = "read_parquet($p, union_by_name = true)"
    columns = {
        r[0] for r in conn.execute(f"DESCRIBE SELECT * FROM {source}", {"p": files}).fetchall()
    }
    by_category = SIGNAL_COLUMN not in columns
    signal = "NULL" if by_category else SIGNAL_COLUMN
    rows = conn.execute(
        f"SELECT uid, status, error_category, {signal} FROM {source}", {"p": files}
    ).fetchall()
    opted = {u: s for u, _, category, s in rows if category == OPTED_OUT}
    kept = {u for u, status, *_ in rows if status == "success"}
    return opted, kept, by_category


def optout_lines(rates: dict | None) -> list[str]:
    """The summary line of ``optout_rates`` (none without download_status)."""
    if rates is None:
        return []
    planted = {s: r for s, r in rates["signals"].items() if r["planted"]}
    found = "none planted"  # a world written before truth format 5
    if planted:
        found = ", ".join(f"{s} {r['found']}/{r['planted']}" for s, r in planted.items())
        if rates["wrong_signal"]:
            found += f", {rates['wrong_signal']} planted naming another signal"
    c, n = rates["controls"], rates["other_opted_out"]
    line = (
        f"opt-out signals: {found}, controls kept {c['kept']}/{c['planted']}, "
        f"{n} other row{'' if n == 1 else 's'} opted out"
    )
    if rates["by_category_only"]:
        line += " (no optout_signal column: counted by error category only)"
    return [line]


ALIVE = "alive"  # the outcome of a check that got the same bytes; the others: AGING_KINDS


def aging_rates(root: Path, truth_path: Path) -> dict | None:
    """How pool health's checks compare with the world's aging (truth ``aging``). A uid checked
    more than once counts by its latest check (``checked_at``). Returns "epoch" (the world's),
    "checked" (uids checked), per kind {"planted", "checked" (planted uids checked), "found"
    (checked with that outcome)}, "wrong_outcome" (planted uids checked with another outcome,
    alive included), "others_checked" (uids checked that are not aged) and "false_alarms" {outcome:
    such uids with an outcome other than alive}. None when the lake has no pool_health."""
    files = Lake(root).asset_files(HEALTH_ASSET, HEALTH_FILE)
    if not files:
        return None
    aging = aging_of(json.loads(Path(truth_path).read_text()))
    planted = {u: kind for kind in AGING_KINDS for u in aging.get(kind, [])}
    latest = dict(
        duckdb.connect()
        .execute(
            "SELECT uid, arg_max(outcome, checked_at) FROM read_parquet($p, union_by_name = true)"
            " GROUP BY uid",
            {"p": files},
        )
        .fetchall()
    )
    kinds = {
        kind: {
            "planted": sum(1 for k in planted.values() if k == kind),
            "checked": sum(1 for u, k in planted.items() if k == kind and u in latest),
            "found": sum(1 for u, k in planted.items() if k == kind and latest.get(u) == kind),
        }
        for kind in AGING_KINDS
    }
    others = {u: o for u, o in latest.items() if u not in planted}
    alarms = Counter(o for o in others.values() if o != ALIVE)
    return {
        "epoch": aging["epoch"],
        "checked": len(latest),
        "kinds": kinds,
        "wrong_outcome": sum(k["checked"] - k["found"] for k in kinds.values()),
        "others_checked": len(others),
        "false_alarms": {str(o): n for o, n in sorted(alarms.items(), key=lambda x: str(x[0]))},
    }


def aging_lines(rates: dict | None) -> list[str]:
    """The summary line of ``aging_rates`` (none without pool_health)."""
    if rates is None:
        return []
    planted = {k: r for k, r in rates["kinds"].items() if r["planted"]}
    found = f"none planted (world at epoch {rates['epoch']})"
    if planted:
        found = ", ".join(
            f"{k} {r['found']}/{r['planted']} found ({r['checked']} checked)"
            for k, r in planted.items()
        )
        if rates["wrong_outcome"]:
            found += f", {rates['wrong_outcome']} aged rows checked with another outcome"
    n = sum(rates["false_alarms"].values())
    alarms = f"{n} false alarm{'' if n == 1 else 's'}"
    if n:
        alarms += " (" + ", ".join(f"{o} {c}" for o, c in rates["false_alarms"].items()) + ")"
    return [
        f"pool aging: {found}; {alarms} in {rates['others_checked']} other rows checked "
        f"({rates['checked']} rows checked)"
    ]
