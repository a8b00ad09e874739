-- normalize_url(u): THE definition of URL equality in poolsieve. Staging, dedup, the Python helper
-- poolsieve.pool.urlnorm.normalize_url and the benchmarks all call this macro; nothing re-implements it.
--
-- Rules, in order:
--   * surrounding whitespace is trimmed; the URL must look like
--     scheme://[userinfo@]host[:port][/path][?query][#fragment] with a host of letters, digits,
--     '.', '-', '_' (or an [IPv6] literal) and no tab or line break, else the result is NULL
--   * spaces inside path and query are percent-encoded ('%20'), as a browser or img2dataset sends them
--   * scheme and host are lower-cased; userinfo, path and query keep their case
--   * the default port is dropped (:80 for http, :443 for https), as is an empty port (':')
--   * the fragment is dropped
--   * tracking parameters are dropped from the query: utm_*, fbclid, gclid, dclid, gbraid, wbraid,
--     msclkid, mc_cid, mc_eid, yclid, igshid, _ga, _gl (names matched case-insensitively); the other
--     parameters keep their order and case; a query left empty drops its '?'
--   * trailing-slash rule: the path never ends with '/' ("http://a.b/" = "http://a.b", "/x/" = "/x")
-- Not done (kept distinct on purpose): percent-encoding case, dot-segment removal, 'www.' removal,
-- parameter sorting; they change what some servers return.
--
-- Speed: most pool URLs are already canonical; _url_is_canonical proves that with one anchored,
-- capture-free regex (RE2's DFA; regexp_full_match is 2x slower here) plus a tracking-parameter
-- regex only for URLs with a '?', and only the others pay for the capturing parse.
CREATE OR REPLACE MACRO _url_is_canonical(u) AS
    regexp_matches(u, '^https?://[a-z0-9._\-]+(?:/[^?#\s]*[^/?#\s])?(?:\?[^#\s]*[^?#\s])?$')
    AND NOT CASE WHEN contains(u, '?')
        THEN regexp_matches(u, '(?i)[?&](?:utm_[^=&]*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid|_ga|_gl)(?:=|&|$)')
        ELSE false END;

CREATE OR REPLACE MACRO _url_parts(u) AS regexp_extract(
    trim(u),
    '^([A-Za-z][A-Za-z0-9+.\-]*)://(?:([^/?#@\s]*)@)?([A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]*))?(/[^?#\t\n\r]*)?(?:\?([^#\t\n\r]*))?(?:#[^\t\n\r]*)?$',
    ['scheme', 'userinfo', 'host', 'port', 'path', 'query']);

CREATE OR REPLACE MACRO _url_drop_tracking(q) AS CASE
    WHEN q = '' THEN ''
    WHEN NOT regexp_matches(q, '(?i)(^|&)(utm_[^=&]*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid|_ga|_gl)(=|&|$)')
        THEN '?' || q
    ELSE coalesce('?' || nullif(array_to_string(list_filter(string_split(q, '&'),
            lambda x: NOT regexp_matches(x, '(?i)^(utm_[^=]*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid|_ga|_gl)(=|$)')), '&'), ''), '')
    END;

-- p is NULL when u is NULL or already canonical (then u is the answer); an empty host means "no parse".
CREATE OR REPLACE MACRO _url_assemble(u, p) AS CASE
    WHEN p IS NULL THEN u
    WHEN p.host = '' THEN NULL
    ELSE lower(p.scheme) || '://'
        || CASE WHEN p.userinfo = '' THEN '' ELSE p.userinfo || '@' END
        || lower(p.host)
        || CASE WHEN p.port = '' OR (lower(p.scheme) = 'http' AND p.port = '80')
                     OR (lower(p.scheme) = 'https' AND p.port = '443') THEN ''
                ELSE ':' || p.port END
        || replace(rtrim(p.path, '/'), ' ', '%20')
        || replace(_url_drop_tracking(p.query), ' ', '%20')
    END;

CREATE OR REPLACE MACRO normalize_url(u) AS
    _url_assemble(u, CASE WHEN _url_is_canonical(u) THEN NULL ELSE _url_parts(u) END);

-- url_scheme(u): the lower-cased scheme of u ('' when there is none); staging uses it for reasons.
CREATE OR REPLACE MACRO url_scheme(u) AS lower(regexp_extract(trim(u), '^([A-Za-z][A-Za-z0-9+.\-]*):', 1));

-- url_key(n): the 128-bit key of a normalized URL (MD5, stable across DuckDB versions); dedup joins on it.
CREATE OR REPLACE MACRO url_key(n) AS md5_number(n);

-- uid_key(uid): a DataComp uid (32 hex chars) as its 128-bit integer; NULL when malformed.
CREATE OR REPLACE MACRO uid_key(uid) AS
    CASE WHEN regexp_matches(uid, '^[0-9a-f]{32}$') THEN ('0x' || uid)::UHUGEINT END;
