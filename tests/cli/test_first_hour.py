"""The first hour's mistakes (issue: numbers to trust, no friction): each gets an error that says
how to fix it, and leaves the store as it was."""
import os

from click.testing import CliRunner

from dmstore.cli import cli
from dmstore.fit import fit


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def test_a_misspelt_split_is_refused_and_no_store_is_made(tmp_path):
    ex = tmp_path / "ex.csv"
    ex.write_text("example_id,split,label\n0,train,1\n1,trian,1\n2,test,1\n")
    r = run("init", tmp_path / "s", "--examples", ex)
    assert r.exit_code == 1, r.output
    assert "data row 2: split 'trian' is not one of train, test, val" in r.output and "fix the spelling" in r.output
    assert not (tmp_path / "s").exists()
    ex.write_text("example_id,split,label\n0,train,1\n1,val,1\n2,test,1\n")
    assert run("init", tmp_path / "s", "--examples", ex).exit_code == 0


def test_query_mistakes_say_how_to_fix_them(filled):
    fid = fit(filled, "exp", 0.5, n_lambdas=3, progress=False).fit_id
    root = filled.root
    r = run("query", root, "SELECT * FROM topk_neighbors(99, 10)")
    assert r.exit_code == 1 and f"no fit 99 in this store; its fits are {fid} (lasso)" in r.output, r.output
    r = run("query", root, "SELECT * FROM topk_neighbors($f, 2)", "-p", "f", "98")
    assert r.exit_code == 1 and "no fit 98" in r.output
    assert run("query", root, f"SELECT count(*) FROM topk_neighbors({fid}, 2)").exit_code == 0
    r = run("query", root, f"SELECT * FROM dm_removal_effect({fid}, 'sets')")
    assert r.exit_code == 1 and "--attach sets=FILE" in r.output, r.output
    r = run("query", root, "SELECT $x + 1")
    assert r.exit_code == 1 and "-p NAME VALUE, e.g. -p x 1" in r.output, r.output
    r = run("query", root, "SELEC * FROM models")
    assert r.exit_code == 1 and 'syntax error at or near "SELEC"' in r.output and "sqlglot" not in r.output
    for cmd in (["query", root, "SELECT 1"], ["export", root, "models"]):
        r = run(*cmd, "-o", root.parent / "dm.xlsx")
        assert r.exit_code == 2 and "rename the file or give --format" in r.output, r.output
        assert not (root.parent / "dm.xlsx").exists()


def test_a_missing_store_names_the_environment_variable(tmp_path, filled):
    env = {k: v for k, v in os.environ.items() if k != "DMSTORE_STORE"}
    r = CliRunner(env={"DMSTORE_STORE": None}).invoke(cli, ["info"], env=env)
    assert r.exit_code == 2 and "set DMSTORE_STORE=PATH" in r.output, r.output
    r = CliRunner().invoke(cli, ["info"], env={"DMSTORE_STORE": str(filled.root)})
    assert r.exit_code == 0 and "examples:" in r.output


def test_vacuum_says_what_it_kept_and_why(filled, synth):
    for lo in range(0, 60, 20):
        filled.append("exp2", synth.alpha, synth.masks[lo:lo + 20], synth.margins[lo:lo + 20], synth.targets,
                      seeds=synth.seeds[lo:lo + 20])
    assert run("compact", filled.root).exit_code == 0
    before = sorted(p.name for p in (filled.root / "batches").iterdir())
    r = run("vacuum", filled.root)
    assert r.exit_code == 0 and "freed 0 bytes" in r.output
    assert "unit(s): retired less than 168 h ago (--retain)" in r.output, r.output
    assert sorted(p.name for p in (filled.root / "batches").iterdir()) == before
    r = run("vacuum", filled.root, "--retain", "0", "--force")
    assert r.exit_code == 0 and "deleted batches/" in r.output


def test_macros_keep_whole_signatures(filled):
    r = CliRunner().invoke(cli, ["macros", str(filled.root)], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    from dmstore.engine import catalog
    listed = [o.signature for o in catalog.macros() if o.name.split("(")[0] + "(" in r.output]
    assert len(listed) >= 10 and all(sig in r.output for sig in listed)     # none cut at 40 characters
    assert any(len(sig) > 40 for sig in listed)
    width = max(len(line) for line in r.output.splitlines())
    assert width <= 200                                                     # the purpose fits the terminal
