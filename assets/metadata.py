"""Shared helpers turning plain results into Dagster metadata (counts, reasons, schemas)."""

from __future__ import annotations

import dagster as dg


def reason_counts(prefix: str, counts: dict[str, int], all_reasons: list[str]) -> dict:
    """One metadata entry per reason (zeros included, so the UI can plot them over time)."""
    return {f"{prefix}/{r}": dg.MetadataValue.int(int(counts.get(r, 0))) for r in all_reasons}


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
