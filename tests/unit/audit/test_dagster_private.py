"""poolsieve's one adapter over Dagster's private modules works against the pinned release.

If a Dagster upgrade moves or changes the stale-status resolver, this test names the break
(instead of ``poolsieve stale`` failing on a user's graph).
"""

from __future__ import annotations

import dagster as dg

from poolsieve.audit.dagster_private import MISSING, STALE, stale_status_resolver


def _defs(version: str) -> dg.Definitions:
    @dg.asset(code_version=version)
    def upstream() -> int:
        return 1

    @dg.asset(deps=[upstream], code_version="1")
    def downstream() -> int:
        return 2

    return dg.Definitions(assets=[upstream, downstream])


def _status(defs: dg.Definitions, instance, key: str):
    resolver = stale_status_resolver(instance, defs.resolve_asset_graph())
    return resolver.get_status(dg.AssetKey(key), None)


def test_resolver_reports_missing_fresh_and_stale_as_the_ui_does():
    instance = dg.DagsterInstance.ephemeral()
    before = _defs("1")
    assert _status(before, instance, "upstream") == MISSING
    assert dg.materialize([*before.assets], instance=instance).success
    assert _status(before, instance, "upstream") not in (MISSING, STALE)
    after = _defs("2")  # upstream's code changed: it is stale, downstream's input is not yet
    assert _status(after, instance, "upstream") == STALE
    causes = stale_status_resolver(instance, after.resolve_asset_graph()).get_stale_causes(
        dg.AssetKey("upstream"), None
    )
    assert any("code version" in str(c.reason) for c in causes), causes
