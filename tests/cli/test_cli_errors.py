"""No command ends in a traceback: every command, walked from the click tree, given no
arguments, an unknown option, a missing store, or dummy values on a real store, exits 2 (usage)
or 1 (`Error: …`) — or 0 where the dummy values make a valid call."""
import click
import pytest
from click.testing import CliRunner

from dmstore.cli import cli


def commands(group=cli, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


DUMMY = {"integer": "99", "float": "0.3", "text": "nope", "directory": None, "file": None, "path": None}
LONG_JOBS = {("demo",), ("train",), ("serve",)}   # would really train (or serve until stopped) on good input:
# checked with bad input only


def dummy_args(cmd, store, tmp_path):
    args = []
    for p in cmd.params:
        if not p.required or p.name == "store":
            continue
        kind = getattr(p.type, "name", "text")
        value = DUMMY.get(kind, "nope") or str(tmp_path / "nope")
        if isinstance(p.type, click.Choice):
            value = p.type.choices[0]
        args += [value] if isinstance(p, click.Argument) else [p.opts[0], value]
    return [store] + args


def no_traceback(r, args):
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.output, repr(r.exception))


@pytest.mark.parametrize("path,cmd", list(commands()), ids=[" ".join(p) for p, _ in commands()])
def test_every_command_fails_cleanly(path, cmd, filled, tmp_path, monkeypatch):
    monkeypatch.delenv("DMSTORE_STORE", raising=False)
    run = lambda args: CliRunner().invoke(cli, list(path) + [str(a) for a in args])  # noqa: E731
    r = run(["--no-such-option"])
    no_traceback(r, "--no-such-option")
    assert r.exit_code == 2 and "No such option" in r.output
    if path != ("demo",):
        r = run([])
        no_traceback(r, [])
        assert r.exit_code == 2 and "Usage:" in r.output, r.output
    if path in LONG_JOBS:
        bad = {("train",): [tmp_path / "missing", "--alpha", "7"], ("serve",): [tmp_path / "missing"],
               ("demo",): ["--out", "/proc/nope/x"]}[path]
        r = run(bad)
        no_traceback(r, path)
        assert r.exit_code in (1, 2) and ("Error" in r.output), r.output
        return
    missing = dummy_args(cmd, tmp_path / "missing", tmp_path)
    if path != ("init",):
        r = run(missing)
        no_traceback(r, missing)
        assert r.exit_code in (1, 2) and "Error" in r.output, (missing, r.output)
    on_store = dummy_args(cmd, filled.root, tmp_path)
    r = run(on_store)
    no_traceback(r, on_store)
    assert r.exit_code in (0, 1, 2), (on_store, r.output)
    if r.exit_code:
        assert "Error" in r.output, (on_store, r.output)


@pytest.mark.parametrize("path,cmd", list(commands()), ids=[" ".join(p) for p, _ in commands()])
def test_every_command_has_examples_and_every_option_help(path, cmd):
    text = cmd.help or ""
    assert f"dmstore {' '.join(path)}" in text, f"`dmstore {' '.join(path)} --help` shows no example"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name != "help":
            assert p.help, f"dmstore {' '.join(path)} {p.opts[0]} has no help text"


def test_library_errors_name_python_arguments_and_the_cli_its_flags(filled):
    """One error, two vocabularies: `fit(val_fraction=2)` says val_fraction; the command says
    --val-fraction (the mapping of DmstoreError.params to the command's options)."""
    from dmstore import InputError
    from dmstore.fit import fit
    with pytest.raises(InputError, match=r"^val_fraction must be in \(0, 1\)") as e:
        fit(filled, "exp", 0.5, val_fraction=2)
    assert e.value.params == ("val_fraction",) and "--" not in str(e.value)
    r = CliRunner().invoke(cli, ["fit", str(filled.root), "--experiment", "exp", "--alpha", "0.5",
                                 "--val-fraction", "2"])
    assert r.exit_code == 1 and r.output.startswith("Error: --val-fraction must be in (0, 1)"), r.output
    r = CliRunner().invoke(cli, ["fit", str(filled.root), "--experiment", "exp", "--alpha", "0.5",
                                 "--lambdas", "3", "--lambda-min-ratio", "7"])
    assert r.exit_code == 1 and "--lambdas must be >= 1 and --lambda-min-ratio in (0, 1)" in r.output, r.output


def test_removals_with_targets_is_a_usage_error(filled, tmp_path):
    """--removals names its own targets: --targets or --n-targets beside it is refused (exit 2),
    before anything is retrained."""
    sets = tmp_path / "sets.csv"
    sets.write_text("set_id,target_id,train_id\n0,41,3\n")
    for extra in (["--targets", "41"], ["--n-targets", "2"]):
        r = CliRunner().invoke(cli, ["counterfactual", str(filled.root), "--fit", "1", "--removals", str(sets), *extra])
        assert r.exit_code == 2 and "--removals names its own targets" in r.output, r.output
