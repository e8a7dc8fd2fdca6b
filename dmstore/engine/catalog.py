"""The one catalog of dmstore's SQL: every file of `sql/` parsed once.

    sql/<name>.sql            a view or macro the user sees (`-- view: name`, `-- macro: sig`,
                              `-- table macro: sig`), with `-- Parameters:`, `-- Columns:` /
                              `-- Returns:` and optionally `-- Requires: relation.column`
    sql/spark/<name>.sql      a hand-written Spark variant, where sqlglot is not faithful
    sql/internal/<name>.sql   a query dmstore itself runs (`-- query: name`, `$param` markers)

Views, macros, the Spark translation, `dmstore macros` and `dmstore views` all read it from
here; `objects()` is in dependency order (each after what its body reads).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import NotFoundError, QueryError

_HEADER = re.compile(r"^--\s*(view|macro|table macro|query):\s*(.+?)\s*$", re.M)
_FIELD = re.compile(r"^(Parameters|Columns|Returns|Requires):\s*(.*)$")
MACRO = re.compile(r"CREATE\s+OR\s+REPLACE\s+MACRO\s+(\w+)\s*\((.*?)\)\s+AS\s+(TABLE\b)?", re.S | re.I)
_REQUIRES = re.compile(r"^(\w+)\.(\w+)")
TABLE_ARG = re.compile(r"query_table\((\w+)\)")


@dataclass(frozen=True)
class SqlObject:
    """One file of `sql/`. kind: 'view' | 'macro' | 'table macro' | 'query'; params: ((name,
    default SQL or None), …); table_params: parameters that name a table (query_table);
    requires: (relation, column) the object needs, or None."""
    name: str
    kind: str
    signature: str
    params: tuple
    table_params: tuple
    requires: tuple | None
    purpose: str
    doc: str
    parameters: str
    columns: str
    text: str
    body: str
    spark: str | None

    @property
    def is_view(self) -> bool:
        return self.kind == "view"


def strip_comments(text: str) -> str:
    """SQL text without its comment lines and the final ';'."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip().rstrip(";")


def _files(sub: str | None = None) -> dict[str, str]:
    root = resources.files("dmstore.sql")
    if sub:
        root = root.joinpath(sub)
    return {p.name[:-4]: p.read_text() for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".sql")}


def _parse(name: str, text: str, spark: str | None) -> SqlObject | None:
    h = _HEADER.search(text)
    if not h:
        return None
    kind = h.group(1)
    header = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
    fields, purpose, key = {}, [], None
    for line in header[1:]:
        k = _FIELD.match(line)
        if k:
            key = k.group(1).lower()
            fields[key] = k.group(2)
        elif key:
            fields[key] += " " + line
        else:
            purpose.append(line)
    doc = " ".join(purpose)
    first = doc.split(". ")[0].rstrip(".") + "." if doc else ""
    params = []
    m = MACRO.search(text) if "macro" in kind else None
    if m:
        for p in (x.strip() for x in m.group(2).split(",") if x.strip()):
            pname, _, default = p.partition(":=")
            params.append((pname.strip(), default.strip() or None))
    req = _REQUIRES.match(fields.get("requires", ""))
    return SqlObject(name=name, kind=kind, signature=h.group(2), params=tuple(params),
                     table_params=tuple(TABLE_ARG.findall(text)),
                     requires=(req.group(1), req.group(2)) if req else None,
                     purpose=first, doc=doc, parameters=fields.get("parameters", "none"),
                     columns=fields.get("columns") or fields.get("returns", ""), text=text,
                     body=strip_comments(text), spark=spark)


def _order(objs: dict[str, SqlObject]) -> list[str]:
    """Names in dependency order: views first, each after the views its body reads; then
    macros, each after the macros it calls (file order among equals)."""
    def reads(o: SqlObject, among) -> set:
        body = o.body.split(" AS", 1)[1] if " AS" in o.body else o.body
        return {n for n in among if n != o.name and re.search(rf"\b{n}\b", body)}
    out: list[str] = []
    for group in ([n for n in objs if objs[n].is_view], [n for n in objs if not objs[n].is_view]):
        deps = {n: reads(objs[n], group) for n in group}
        pending = list(group)
        while pending:
            ready = [n for n in pending if deps[n] <= set(out)]
            if not ready:
                raise QueryError(f"sql/: circular definitions among {', '.join(sorted(pending))}")
            out += ready
            pending = [n for n in pending if n not in ready]
    return out


@lru_cache(maxsize=None)
def objects() -> dict[str, SqlObject]:
    """name → SqlObject of every view and macro of `sql/`, in dependency order."""
    spark = {n: strip_comments(t) for n, t in _files("spark").items()}
    parsed = {}
    for name, text in _files().items():
        o = _parse(name, text, spark.get(name))
        if o is not None and o.kind != "query":
            parsed[name] = o
    return {n: parsed[n] for n in _order(parsed)}


def needs(names) -> set[str]:
    """`names` and every view and macro their bodies read, transitively (what a script that
    defines only `names` must also define)."""
    objs = objects()
    out, todo = set(), [n for n in names if n in objs]
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out.add(n)
        body = objs[n].body.split(" AS", 1)[1] if " AS" in objs[n].body else objs[n].body
        todo += [m for m in objs if m != n and m not in out and re.search(rf"\b{m}\b", body)]
    return out


def get(name: str) -> SqlObject:
    try:
        return objects()[name]
    except KeyError:
        raise NotFoundError(f"no view or macro {name!r}; one of {', '.join(sorted(objects()))}") from None


def views() -> list[SqlObject]:
    """The relations (views), each after the views it reads."""
    return [o for o in objects().values() if o.is_view]


def view_names() -> list[str]:
    return [o.name for o in views()]


def macros() -> list[SqlObject]:
    """The analytics (macros and table macros), each after the macros it calls."""
    return [o for o in objects().values() if not o.is_view]


def applies(o: SqlObject, columns: dict[str, list[str]]) -> bool:
    """Whether `o` applies to a store whose relations have these columns (its Requires header)."""
    return o.requires is None or o.requires[1] in columns.get(o.requires[0], [])


@lru_cache(maxsize=None)
def internal(name: str) -> str:
    """The SQL of `sql/internal/<name>.sql` (a query dmstore runs itself; `$name` parameters)."""
    files = _files("internal")
    if name not in files:
        raise NotFoundError(f"no internal query {name!r} in sql/internal/")
    return strip_comments(files[name])


def internal_names() -> list[str]:
    return list(_files("internal"))
