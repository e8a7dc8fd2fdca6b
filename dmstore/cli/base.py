"""The command class every dmstore command uses: STORE from `DMSTORE_STORE` when the arguments
name none, and the one mapping of library errors to the command line — `Error: …` and exit 1,
with the library's Python argument names (`DmstoreError.params`) shown as this command's flags.
Usage errors (click's) exit 2."""
from __future__ import annotations

import os
import re
from pathlib import Path

import click

from ..errors import DmstoreError

ENV_STORE = "DMSTORE_STORE"


def _flag(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


def cli_message(e: DmstoreError, command: click.Command | None) -> str:
    """The error's message with each Python argument name it lists replaced by its flag."""
    msg = str(e)
    by_name = {p.name: p for p in (command.params if command is not None else [])}
    for name in getattr(e, "params", ()):
        p = by_name.get(name)
        if p is not None:
            msg = re.sub(rf"(?<![\w\-$'\"=.]){re.escape(name)}(?![\w=(])", _flag(p), msg)
    return msg


def os_message(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}; check the path and its permissions"


class Command(click.Command):
    """A dmstore command. When it takes STORE, `DMSTORE_STORE` supplies it when the arguments
    given do not name one: when they do not parse without it, or when their first argument is
    not an existing directory and they parse with it too."""

    def parse_args(self, ctx, args):
        env = os.environ.get(ENV_STORE)
        if env and "store" in [p.name for p in self.params]:
            as_is, with_env = self._parses(ctx, args), self._parses(ctx, [env] + list(args))
            given = as_is.get("store") if as_is is not None else None
            if with_env is not None and (as_is is None or not (isinstance(given, str) and Path(given).is_dir())):
                args = [env] + list(args)
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter as e:
            if e.param is not None and e.param.name == "store":
                raise click.UsageError(f"Missing argument 'STORE': give the store directory first, or set "
                                       f"{ENV_STORE}=PATH for every command", ctx) from None
            raise

    def _parses(self, ctx, args):
        try:
            opts, rest, _ = self.make_parser(ctx).parse_args(list(args))
        except click.UsageError:
            return None
        if rest or any(p.required and opts.get(p.name) in (None, ()) for p in self.params
                       if isinstance(p, click.Argument)):
            return None
        return opts

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DmstoreError as e:
            raise click.ClickException(cli_message(e, self)) from None
        except OSError as e:   # a path the user gave cannot be read or written
            raise click.ClickException(os_message(e)) from None


class Group(click.Group):
    """A command group whose commands are `Command`s."""
    command_class = Command
    group_class = type
