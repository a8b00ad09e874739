"""Where the project's own files live (the SQL models ship beside the Python packages)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the SQL project; POOLSIEVE_SQL_DIR points the whole code location at another copy of it
SQL_DIR = Path(os.environ.get("POOLSIEVE_SQL_DIR") or REPO_ROOT / "dbt_like_sql")
