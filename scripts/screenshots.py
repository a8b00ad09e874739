"""Screenshots of the Dagster UI for the README, taken from the demo's own runs.

    make demo && make screenshots      (writes docs/screenshots/*.png)

Starts `dagster dev` on 127.0.0.1 with the demo's code location (as `make dev` does) over the
demo's DAGSTER_HOME and lake, opens the asset graph, a partitioned asset's partitions and the
leaderboard's plot in Debian's chromium (Playwright), saves each page, and stops the server by
PID. The browser test (tests/e2e/test_ui.py) checks the same
pages on a small world of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO_ROOT = Path(__file__).resolve().parents[1]
from poolsieve_demo.server import free_port  # noqa: E402
from tests.dagster_ui import FLAGS, DagsterDev, open_page, show_markdown  # noqa: E402

PAGES = [  # (file, path, text that says the page is ready)
    (
        "asset_graph.png",
        "/assets/leaderboard?view=lineage&lineageScope=upstream&lineageDepth=20",
        "pool_features",
    ),
    ("partitions.png", "/assets/subset?view=partitions", "no_filter"),
    ("leaderboard.png", "/assets/leaderboard", "accuracy_plot"),
]


def main() -> int:
    args = _parser().parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"POOLSIEVE_LAKE": str(args.lake), "NO_ALBUMENTATIONS_UPDATE": "1"}
    dev = DagsterDev(args.home, free_port(), env, args.out / ".dagster_dev.log")
    dev.start()
    try:
        dev.wait_loaded()
        _shoot(dev.url, args.out)
    finally:
        dev.stop()
    print(f"screenshots in {args.out}")
    return 0


def _shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        for name, path, ready in PAGES:
            open_page(page, url + path, ready)
            if name == "partitions.png":  # one partition's metadata: kept, drops per reason
                page.get_by_text("clip_score_top30", exact=True).first.click()
                page.get_by_text("kept_fraction").first.wait_for(timeout=30_000)
            if name == "leaderboard.png":
                page.screenshot(path=str(out / "leaderboard_table.png"))
                show_markdown(page, "accuracy_plot")
            page.screenshot(path=str(out / name))
        browser.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    home = os.environ.get("DAGSTER_HOME") or REPO_ROOT / ".dagster_home"
    p.add_argument("--home", type=Path, default=Path(home), help="the demo's DAGSTER_HOME")
    p.add_argument("--lake", type=Path, default=REPO_ROOT / "lake")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    return p


if __name__ == "__main__":
    sys.exit(main())
