"""Shared helpers turning plain results into Dagster metadata (counts, reasons, schemas)."""

from __future__ import annotations

import base64
import contextlib
import time

import dagster as dg


def reason_counts(prefix: str, counts: dict[str, int], all_reasons: list[str]) -> dict:
    """One metadata entry per reason (zeros included, so the UI can plot them over time)."""
    return {f"{prefix}/{r}": dg.MetadataValue.int(int(counts.get(r, 0))) for r in all_reasons}


def png_markdown(path) -> dg.MetadataValue:
    """A PNG embedded in markdown metadata: the UI shows it inline (no file server needed)."""
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{path.stem}](data:image/png;base64,{data})")


def table_schema(columns: list[tuple[str, str]]) -> dg.MetadataValue:
    return dg.MetadataValue.table_schema(
        dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in columns])
    )


def conservation_check(name: str, read: int, parts: dict[str, int]) -> dg.AssetCheckResult:
    """Rows are conserved: every row read ends up in exactly one of ``parts``."""
    total = sum(parts.values())
    return dg.AssetCheckResult(
        check_name=name,
        passed=read == total,
        metadata={"read": read, **parts, "difference": read - total},
        description=f"read {read} = " + " + ".join(f"{k} {v}" for k, v in parts.items()),
    )


def throttled(log, every_s: float = 10.0):
    """``report(done, total, what)``: logs "what done/total (pct, rate, ETA)" at most every
    ``every_s`` seconds, and always the final call (done == total)."""
    start, last = time.monotonic(), [float("-inf")]

    def report(done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        rate = done / max(now - start, 1e-9)
        eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        log(f"{what} {done}/{total}{pct} at {rate:.1f}/s{eta}")

    return report


def problem_check(name: str, problem: str, **metadata) -> dg.AssetCheckResult:
    """Passes when ``problem`` is empty; otherwise fails and says what is wrong."""
    return dg.AssetCheckResult(
        check_name=name, passed=not problem, description=problem or "ok", metadata=metadata
    )


def yaml_check(name: str, failures: list[str]) -> dg.AssetCheckResult:
    """The model's YAML column tests (uid unique, not null, accepted values) on the output."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failures,
        metadata={"failures": failures[:20]},
        description="; ".join(failures[:5]) or "every YAML column test passed",
    )


@contextlib.contextmanager
def failing_clearly(*errors: type[Exception]):
    """Turn the plain logic's input errors (a missing upstream file, a bad setting) into a
    dg.Failure carrying just their message: no retry, no Python traceback in the UI."""
    try:
        yield
    except errors as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None


#: what the plain logic raises for missing inputs or bad configuration
INPUT_ERRORS = (FileNotFoundError, ValueError)

# check names shared by several assets
ROWS_CONSERVED = "rows_conserved"
YAML_TESTS = "yaml_column_tests"
