"""Where poolsieve's own files are: the SQL project and the instance settings ship inside the
installed package (read through importlib.resources), so a wheel works as well as a checkout."""

import os
from importlib.resources import files
from pathlib import Path


def _package_dir(package: str) -> Path:
    return Path(str(files(package)))


def default_sql_dir() -> Path:
    """The SQL project shipped with poolsieve (``dbt_like_sql/`` in the repository)."""
    return _package_dir("poolsieve.sql")


def sql_dir() -> Path:
    """The SQL project; POOLSIEVE_SQL_DIR points the whole code location at another copy of it.

    Read when a project is loaded (not at import), so a run sees the filters as they are now.
    """
    return Path(os.environ.get("POOLSIEVE_SQL_DIR") or default_sql_dir())


def instance_settings(postgres: bool = False) -> str:
    """The ``dagster.yaml`` poolsieve installs into a new ``$DAGSTER_HOME`` (SQLite storage in
    the home); ``postgres``: the same settings with storage in PostgreSQL, its server and
    credentials read from ``DAGSTER_PG_HOST``, ``_PORT``, ``_DB``, ``_USER``, ``_PASSWORD``."""
    settings = files("poolsieve.pipelines") / "dagster.yaml"
    storage = files("poolsieve.pipelines") / "dagster_postgres.yaml"
    return settings.read_text() + (storage.read_text() if postgres else "")
