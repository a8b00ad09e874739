"""PNG plots the assets attach to their materializations (the Dagster UI shows them inline).

matplotlib runs headless (Agg); each figure is written atomically and closed, so a long-running
code server does not collect figures.
"""

from __future__ import annotations

from pathlib import Path

from poolsieve.lake import atomic_file

DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on a code server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` as a PNG (atomically) and close it."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path
