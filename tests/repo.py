"""The checkout the tests run in (for files that are the repository's, not the package's)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
