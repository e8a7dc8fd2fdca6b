"""Option bundles and types shared by the commands (as sqlite-utils' `output_options`): STORE,
write modes, output format and file, --as-of, -p parameters, --attach, --shard, target choice,
recipes, and the resource caps of queries."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import click

from ..store.validate import MODES

store_arg = click.argument("store", type=click.Path(file_okay=False), metavar="STORE")
mode_opt = click.option("--mode", type=click.Choice(list(MODES)), default="append", show_default=True,
                        help="error: refuse if the experiment/alpha holds models; append: add new, "
                             "skip identical, refuse conflicts; overwrite: replace conflicts; "
                             "ignore: keep stored records on conflict.")
as_of_opt = click.option("--as-of", "as_of", type=click.IntRange(0), default=None, metavar="VERSION",
                         help="Read the store as it was at this log version (see `dmstore log`).")
param_opt = click.option("-p", "--param", "params", type=(str, str), multiple=True,
                         metavar="NAME VALUE", help="Named SQL parameter, used as $NAME.")
recipe_opt = click.option("--recipe", default=None, metavar="SPEC",
                          help="The recipe to retrain with (default: the one `dmstore train` recorded).")

# the output file's extension names its format; any other extension needs --format
EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
              ".pq": "parquet", ".txt": "table", ".npy": "npy", ".pt": "pt"}


def output_options(formats=("table", "csv", "json", "jsonl", "parquet"), default="table"):
    """--format, the --csv/--json/--nl/--table shortcuts and -o FILE ('-': stdout). The format
    follows -o's extension unless --format or a shortcut says it; a mismatch, or an extension
    that names no format without --format, is a usage error. The command receives `fmt`, `out`."""
    def deco(f):
        opts = [
            click.option("--format", "fmt", type=click.Choice(list(formats)), default=None,
                         help=f"Output format [default: from -o's extension, else {default}]."),
            click.option("--csv", "as_csv", is_flag=True, help="Shortcut for --format csv."),
            click.option("--json", "as_json_fmt", is_flag=True, help="Shortcut for --format json (one array)."),
            click.option("--nl", "as_nl", is_flag=True, help="Shortcut for --format jsonl (one object a line)."),
            click.option("-o", "--output", "out", type=click.Path(allow_dash=True), default=None,
                         help="Write to this file ('-': stdout) instead of stdout; its extension "
                              "(.csv .json .jsonl .ndjson .parquet) gives the format."),
        ]
        if "table" in formats:
            opts.insert(4, click.option("--table", "as_table", is_flag=True, help="Shortcut for --format table."))

        @functools.wraps(f)
        def wrapper(*args, fmt=None, as_csv=False, as_json_fmt=False, as_nl=False, as_table=False, out=None, **kw):
            flags = {"csv": as_csv, "json": as_json_fmt, "jsonl": as_nl, "table": as_table}
            chosen = [name for name, on in flags.items() if on]
            if fmt is not None:
                chosen.append(fmt)
            if len(set(chosen)) > 1:
                raise click.UsageError(f"conflicting output formats: {', '.join(sorted(set(chosen)))}; give one")
            suffix = Path(out).suffix.lower() if out not in (None, "-") else ""
            ext = EXTENSIONS.get(suffix)
            if suffix and ext is None and not chosen:
                known = " ".join(e for e, v in EXTENSIONS.items() if v in formats)
                raise click.UsageError(f"-o {out}: the extension {suffix} names no output format ({known}); "
                                       f"rename the file or give --format")
            if chosen and ext and ext != chosen[0]:
                raise click.UsageError(f"-o {out} looks like {ext} but the format is {chosen[0]}; "
                                       f"rename the file or drop the format option")
            fmt = chosen[0] if chosen else (ext if ext in formats else default)
            if fmt not in formats:
                raise click.UsageError(f"format {fmt} is not available here; one of {', '.join(formats)}")
            return f(*args, fmt=fmt, out=out, **kw)
        for o in reversed(opts):
            wrapper = o(wrapper)
        return wrapper
    return deco


def key_values(items, what: str, flag: str) -> dict:
    """{key: value} of repeated KEY=VALUE options (`what` names them in the error, e.g. NAME=FILE)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected {what}", param_hint=flag)
        out[key] = value
    return out


def attach_opt(help_text: str = "Expose a CSV/Parquet file as relation NAME (e.g. removal sets for "
                                "dm_removal_effect)."):
    """--attach NAME=FILE (repeatable); the command receives `tables`: {name: file}."""
    def parse(ctx, param, items):
        return key_values(items, "NAME=FILE", "--attach")
    return click.option("--attach", "tables", multiple=True, metavar="NAME=FILE", callback=parse, help=help_text)


def limits_opts(f):
    """--memory-limit and --threads of a query's DuckDB connection."""
    f = click.option("--threads", type=click.IntRange(1), default=None,
                     help="DuckDB threads [default: all cores].")(f)
    return click.option("--memory-limit", default=None, metavar="SIZE",
                        help="DuckDB memory cap, e.g. 4GB or 50% [default: 50% of the machine's memory]; "
                             "beyond it the query spills into the store's .tmp/.")(f)


class Shard(click.ParamType):
    """K/N with 0 <= K < N → (K, N)."""
    name = "K/N"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
        if not m or not int(m.group(1)) < int(m.group(2)):
            self.fail(f"{value!r}: expected K/N with 0 <= K < N, e.g. 0/8", param, ctx)
        return int(m.group(1)), int(m.group(2))


class IntList(click.ParamType):
    """Comma-separated integers (10,20,40) → a tuple."""
    name = "INTS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(int(x) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"{value!r}: expected integers like 10,20,40", param, ctx)


def target_choice_opts(f):
    """--n-targets N (random) and --targets IDS, resolved by `target_choice`."""
    f = click.option("--targets", default=None, metavar="IDS",
                     help="These targets: ids like 1400 or 1400,1500-1510, or a split (test, train).")(f)
    return click.option("--n-targets", type=click.IntRange(1), default=None,
                        help="Draw this many of the fit's targets at random [default: 10 when --targets "
                             "is not given].")(f)


def target_choice(store, n_targets, targets):
    """--n-targets N (a random count) or --targets IDS (ids or a split), never both."""
    if n_targets is not None and targets is not None:
        raise click.UsageError("give --n-targets N (random targets) or --targets IDS, not both")
    if targets is None:
        return n_targets or 10
    return [int(t) for t in store.resolve_targets(targets)]
