"""A small dbt-like runner for the SQL models in ``dbt_like_sql/``.

Conventions (dbt's jaffle-shop, shrunk):
- one SELECT per ``.sql`` file; the file name is the relation name; the folder is the layer;
- inputs only through ``{{ ref('model') }}`` and ``{{ source('name') }}``;
- a ``.yml`` beside a model declares its grain and column tests (run by :func:`column_test_failures`);
- ``macros/*.sql`` hold ``CREATE MACRO`` statements, loaded into every connection first;
- parameters are DuckDB named parameters (``$name``), always bound, never pasted into the text.

Models are materialized in the caller's connection, in dependency order: as TEMP tables, or as
TEMP views when their YAML says ``materialized: view`` (cheaper for a model read once; a view
cannot take parameters, so such a model must not use any).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import duckdb
import yaml

from poolsieve.lake import literal_path
from poolsieve.paths import sql_dir

_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)\s*\}\}")
_SOURCE = re.compile(r"\{\{\s*source\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)\s*\}\}")
_PARAM = re.compile(r"(?<![A-Za-z0-9_$])\$([A-Za-z_][A-Za-z0-9_]*)")


class SqlProjectError(ValueError):
    """A model is missing, malformed, or its refs form a cycle."""


@dataclass(frozen=True)
class Model:
    """One SQL model: a SELECT in ``<layer>/<name>.sql`` with an optional ``<name>.yml``."""

    name: str
    layer: str
    path: Path
    sql: str
    spec: dict = field(default_factory=dict, compare=False)

    @cached_property
    def refs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_REF.findall(self.sql)))

    @cached_property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_SOURCE.findall(self.sql)))

    @cached_property
    def params(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PARAM.findall(_strip_comments(self.sql))))


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_macros(root: Path | None = None) -> str:
    """The ``CREATE MACRO`` text of ``root/macros/*.sql`` (the project's by default), without
    loading the models and their YAML (a connection needs only this)."""
    root = Path(root) if root is not None else sql_dir()
    return "\n".join(p.read_text() for p in sorted((root / "macros").glob("*.sql")))


class SqlProject:
    """All models and macros under one folder, ordered by their refs."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else sql_dir()
        self.models = self._load_models()
        self.macro_sql = read_macros(self.root)

    def _load_models(self) -> dict[str, Model]:
        models: dict[str, Model] = {}
        for path in sorted(self.root.rglob("*.sql")):
            if "macros" in path.relative_to(self.root).parts:
                continue
            name = path.stem
            if name in models:
                raise SqlProjectError(f"two models named {name!r}: {models[name].path} and {path}")
            spec_path = path.with_suffix(".yml")
            spec = yaml.safe_load(spec_path.read_text()) if spec_path.exists() else {}
            layer = path.parent.relative_to(self.root).as_posix()
            models[name] = Model(name, layer, path, path.read_text(), spec or {})
        return models

    def model(self, name: str) -> Model:
        if name not in self.models:
            raise SqlProjectError(f"unknown model {name!r}; known: {sorted(self.models)}")
        return self.models[name]

    def in_layer(self, layer: str) -> list[str]:
        return sorted(n for n, m in self.models.items() if m.layer == layer)

    def plan(self, targets: list[str]) -> list[Model]:
        """The targets and every model they ref, dependencies first (a topological order)."""
        order: list[Model] = []
        state: dict[str, str] = {}

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise SqlProjectError("ref cycle: " + " -> ".join((*chain, name)))
            state[name] = "visiting"
            model = self.model(name)
            for ref in model.refs:
                visit(ref, (*chain, name))
            state[name] = "done"
            order.append(model)

        for target in targets:
            visit(target, ())
        return order

    def code_version(self, targets: list[str], params: dict | None = None) -> str:
        """Hash of the SQL of the targets and their refs, the macros, and any parameters."""
        digest = hashlib.sha256(self.macro_sql.encode())
        for model in self.plan(targets):
            digest.update(model.name.encode() + b"\0" + model.sql.encode())
        for key in sorted(params or {}):
            digest.update(f"{key}={params[key]!r}".encode())
        return digest.hexdigest()[:16]

    def load_macros(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Create the macros in ``conn`` unless these very macros are there already (a session
        variable names the text's hash: a step that runs many models in one connection, such
        as dedup's join per bucket group, loads them once)."""
        if not self.macro_sql.strip():
            return
        tag = hashlib.sha256(self.macro_sql.encode()).hexdigest()[:16]
        if conn.execute("SELECT getvariable('poolsieve_macros')").fetchall()[0][0] == tag:
            return
        conn.execute(self.macro_sql)
        conn.execute("SET VARIABLE poolsieve_macros = $tag", {"tag": tag})

    def render(self, model: Model, sources: dict[str, str]) -> str:
        def source(match: re.Match) -> str:
            name = match.group(1)
            if name not in sources:
                raise SqlProjectError(
                    f"model {model.name} needs source {name!r}; given {sorted(sources)}"
                )
            return _quote(sources[name])

        return _SOURCE.sub(source, _REF.sub(lambda m: _quote(m.group(1)), model.sql))

    def run(
        self,
        conn: duckdb.DuckDBPyConnection,
        targets: list[str],
        sources: dict[str, str],
        params: dict | None = None,
    ) -> list[str]:
        """Materialize the targets (and their refs) as TEMP tables; returns the names built. The
        macros are (re)loaded first, so any connection will do."""
        params = params or {}
        self.load_macros(conn)
        built = []
        for model in self.plan(targets):
            missing = [p for p in model.params if p not in params]
            if missing:
                raise SqlProjectError(f"model {model.name} needs parameters {missing}")
            kind = _materialization(model)
            sql = f"CREATE OR REPLACE TEMP {kind} {_quote(model.name)} AS\n{self.render(model, sources)}"
            conn.execute(sql, {p: params[p] for p in model.params})
            built.append(model.name)
        return built


def _materialization(model: Model) -> str:
    kind = model.spec.get("materialized", "table")
    if kind not in ("table", "view"):
        raise SqlProjectError(
            f"model {model.name}: materialized must be table or view, not {kind!r}"
        )
    if kind == "view" and model.params:
        raise SqlProjectError(
            f"model {model.name} is a view but uses parameters {list(model.params)}"
        )
    return kind.upper()


def column_test_failures(
    conn: duckdb.DuckDBPyConnection, model: Model, relation: str, label: str | None = None
) -> list[str]:
    """Run the column tests declared in the model's YAML against ``relation``; [] when all pass.
    Failures name ``label`` (default: the relation)."""
    failures = []
    for column in model.spec.get("columns", []):
        for test in column.get("tests", []):
            failures += _run_column_test(conn, relation, column["name"], test, label)
    return failures


def file_test_failures(
    conn: duckdb.DuckDBPyConnection, project: SqlProject, files: dict[str, str | Path]
) -> list[str]:
    """The YAML column tests of each model, run on the parquet file it was written to. Each
    file is registered as a temporary view (never a view in the connection's catalog), so any
    connection will do, the lake's catalog included."""
    failures = []
    for name, path in files.items():
        view = f"file_test__{name}"  # the model's own relation may exist in this connection
        conn.register(view, conn.read_parquet(literal_path(path)))
        try:
            failures += column_test_failures(conn, project.model(name), view, label=name)
        finally:
            conn.unregister(view)
    return failures


def _run_column_test(conn, relation: str, column: str, test, label=None) -> list[str]:
    kind, arg = (test, None) if isinstance(test, str) else next(iter(test.items()))
    rel, col, label = _quote(relation), _quote(column), label or relation
    if kind == "not_null":
        bad = conn.execute(f"SELECT count(*) FROM {rel} WHERE {col} IS NULL").fetchall()[0][0]
    elif kind == "unique":
        bad = conn.execute(
            f"SELECT count(*) FROM (SELECT {col} FROM {rel} WHERE {col} IS NOT NULL "
            f"GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    elif kind == "accepted_values":
        bad = conn.execute(
            f"SELECT count(*) FROM {rel} WHERE {col} IS NOT NULL AND NOT list_contains($values, {col})",
            {"values": list(arg["values"])},
        ).fetchall()[0][0]
    else:
        raise SqlProjectError(f"unknown column test {kind!r} on {label}.{column}")
    return [f"{label}.{column}: {kind} failed for {bad} rows"] if bad else []
