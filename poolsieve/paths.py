"""Where the project's own files live (the SQL models ship beside the Python packages)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SQL_DIR = REPO_ROOT / "dbt_like_sql"


def sql_dir() -> Path:
    """The SQL project; POOLSIEVE_SQL_DIR points the whole code location at another copy of it.

    Read when a project is loaded (not at import), so a run sees the filters as they are now.
    """
    return Path(os.environ.get("POOLSIEVE_SQL_DIR") or DEFAULT_SQL_DIR)
