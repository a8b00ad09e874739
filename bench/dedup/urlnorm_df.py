"""normalize_url re-implemented as polars and pandas expressions, for the baselines only.

poolsieve's single definition is ``dbt_like_sql/macros/normalize_url.sql``; these ports follow
its rules one by one so the baselines dedup on the same key, and :func:`check_against_duckdb`
compares them row by row with the macro. Port notes:

* DuckDB's ``trim`` strips the Unicode space separators (Zs), not tabs/newlines: :data:`ZS`.
* RE2's ``\\s`` is ``[\\t\\n\\f\\r ]``; polars uses Rust's regex, whose ``\\s`` is Unicode, so the
  polars pattern spells the class out. pandas with pyarrow strings runs RE2 (pyarrow.compute).
* Tracking parameters: the query is split on '&' and matching elements dropped. As a regex:
  double every '&', wrap the query in '&...&' (each element is then '&elem&', non-overlapping),
  delete the tracking ones, then undo the wrapping and the doubling.
* The macro's fast path (already-canonical URLs returned unchanged) gives the same result as the
  full parse, so the ports always do the full parse.
"""

from __future__ import annotations

ZS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_WS = r"\t\n\f\r "
PARTS_RE = (
    rf"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?:(?P<userinfo>[^/?#@{_WS}]*)@)?"
    rf"(?P<host>[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]*))?"
    rf"(?P<path>/[^?#{_WS}]*)?(?:\?(?P<query>[^#{_WS}]*))?(?:#[^{_WS}]*)?$"
)
_TRACKING = "fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid|_ga|_gl"
WRAPPED_TRACKING_RE = rf"&(?:(?i:utm_)[^&]*|(?i:{_TRACKING})(?:=[^&]*)?)&"
PARTS = ["scheme", "userinfo", "host", "port", "path", "query"]


def polars_with_normalized(lf, url: str = "url", out: str = "url_norm"):
    """``lf`` plus column ``out``: the normalized ``url`` (null when unparseable).

    Built in stages of with_columns so the regex parse runs once per row (an expression that
    re-uses ``extract_groups(...)`` inline is re-evaluated per use).
    """
    import polars as pl

    parts = pl.col(url).str.strip_chars(ZS).str.extract_groups(PARTS_RE)
    fields = {f"_{n}": pl.col("_p").struct.field(n).fill_null("") for n in PARTS}
    return (
        lf.with_columns(_p=parts)
        .with_columns(**fields, _null=pl.col("_p").struct.field("host").is_null())
        .with_columns(pl.col("_scheme").str.to_lowercase(), _kept=_polars_query(pl.col("_query")))
        .with_columns(pl.when(pl.col("_null")).then(None).otherwise(_polars_join()).alias(out))
        .drop("_p", "_null", "_kept", *fields)
    )


def _polars_query(query):
    """The query without tracking parameters (without its '?')."""
    wrapped = "&" + query.str.replace_all("&", "&&", literal=True) + "&"
    return (
        wrapped.str.replace_all(WRAPPED_TRACKING_RE, "")
        .str.strip_prefix("&")
        .str.strip_suffix("&")
        .str.replace_all("&&", "&", literal=True)
    )


def _polars_join():
    import polars as pl

    scheme, port, user, kept = (pl.col(c) for c in ("_scheme", "_port", "_userinfo", "_kept"))
    default_port = (
        (port == "")
        | ((scheme == "http") & (port == "80"))
        | ((scheme == "https") & (port == "443"))
    )
    return pl.concat_str(
        scheme,
        pl.lit("://"),
        pl.when(user == "").then(pl.lit("")).otherwise(user + "@"),
        pl.col("_host").str.to_lowercase(),
        pl.when(default_port).then(pl.lit("")).otherwise(":" + port),
        pl.col("_path").str.strip_chars_end("/"),
        pl.when(kept == "").then(pl.lit("")).otherwise("?" + kept),
    )


def pandas_normalize(url):
    """The normalized form of a pandas string Series (pyarrow dtype); missing when unparseable."""
    parts = url.str.strip(ZS).str.extract(PARTS_RE)
    f = {name: parts[name].fillna("") for name in PARTS}
    scheme = f["scheme"].str.lower()
    default_port = (
        (f["port"] == "")
        | ((scheme == "http") & (f["port"] == "80"))
        | ((scheme == "https") & (f["port"] == "443"))
    )
    wrapped = "&" + f["query"].str.replace("&", "&&", regex=False) + "&"
    kept = (
        wrapped.str.replace(WRAPPED_TRACKING_RE, "", regex=True)
        .str.removeprefix("&")
        .str.removesuffix("&")
        .str.replace("&&", "&", regex=False)
    )
    norm = (
        scheme
        + "://"
        + f["userinfo"].where(f["userinfo"] == "", f["userinfo"] + "@")
        + f["host"].str.lower()
        + (":" + f["port"]).where(~default_port, "")
        + f["path"].str.rstrip("/")
        + kept.where(kept == "", "?" + kept)
    )
    return norm.where(parts["host"].notna())


EDGE_CASES = [
    "http://Example.COM:80/a/b/?utm_source=x&id=3#frag",
    "HTTPS://a.b:443/",
    "https://a.b:8443/x",
    "https://a.b:/x",
    "http://a.b:443/x",
    "http://a.b?",
    "http://a.b/?&",
    "http://a.b?&utm_x=1",
    "http://a.b?a=1&&b=2&fbclid=z",
    "http://a.b?UTM_Source=1&FBCLID&gclidx=1&_ga=2&_gl&mc_cid=3&x=utm_a",
    "http://a.b/p?utm_a=1&utm_b=2&utm_c",
    "http://a.b/p?x=1&utm_a&y=2&",
    "http://a.b//",
    "  http://a.b/x  ",
    "\u00a0http://a.b/x\u3000",
    "\thttp://a.b/x",
    "http://a b/x",
    "http://user:pw@Host.example/x/",
    "http://@a.b/x",
    "http://[::1]:80/x",
    "http://[FE80::1]/",
    "ftp://a.b/x",
    "a.b/x",
    "",
    None,
    "http://a.b/x#",
    "http://a.b/x?#y",
    "http://a.b/%7Euser/",
    "http://a.b/x?q=a/b/",
    "http://a.b/x@y/z?u=1@2",
    "HtTp://WWW.x-y_z.COM/Path/To/",
    "http://a.b/p?utm_=1",
    "http://a.b/p?fbclid=&x",
    "http://a.b/é/ü?ß=1",
    "mailto:x@y.z",
    "http://a.b:80",
    "http://a.b:/",
    "https://a.b:443?x=1#f",
]


def check_against_duckdb(urls: list, macro_sql: str) -> dict:
    """Row-by-row comparison of both ports with the SQL macro; returns mismatch counts + samples."""
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    table = pa.table({"url": pa.array(list(urls), type=pa.string())})
    conn = duckdb.connect()
    conn.execute(macro_sql)
    conn.register("urls_in", table)
    want = [r[0] for r in conn.execute("SELECT normalize_url(url) FROM urls_in").fetchall()]
    got_pl = polars_with_normalized(pl.from_arrow(table).lazy()).collect()["url_norm"].to_list()
    series = pd.Series(table.column("url").to_pandas(types_mapper=pd.ArrowDtype))
    got_pd = [None if pd.isna(v) else v for v in pandas_normalize(series).tolist()]
    return {
        name: _mismatches(list(urls), want, got)
        for name, got in (("polars", got_pl), ("pandas", got_pd))
    }


def _mismatches(urls: list, want: list, got: list) -> dict:
    bad = [(u, w, g) for u, w, g in zip(urls, want, got, strict=True) if w != g]
    return {"rows": len(urls), "mismatches": len(bad), "examples": bad[:5]}
