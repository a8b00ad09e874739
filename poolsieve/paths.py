"""Where the project's own files live (the SQL models ship beside the Python packages)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = REPO_ROOT / "dbt_like_sql"
