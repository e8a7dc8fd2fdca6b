"""The README's analytics examples run on a real (small) digits store and print something
meaningful: every `dmstore query` / `dmstore export` line of its SQL block exits 0 and returns
at least one row with a non-zero number or a non-empty text."""
import csv
import io
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmstore.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def block_lines():
    text = README.read_text()
    start = text.index("instead of the selected one). Examples on the demo store")
    body = text[text.index("```bash", start) + 7:]
    body = body[:body.index("```")]
    return [ln for ln in body.splitlines() if ln.startswith("dmstore query") or ln.startswith("dmstore export")]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """The demo's pipeline at a tenth of its size: digits MLPs, lasso + diff_means fits, a few
    counterfactuals, an embedding."""
    root = tmp_path_factory.mktemp("demo") / "store"
    inv = lambda *a: CliRunner().invoke(cli, ["-q"] + [str(x) for x in a])  # noqa: E731
    for args in (["train", root, "--recipe", "digits", "--models", "500", "--workers", "1"],
                 ["train", root, "--recipe", "digits", "--models", "120", "--role", "eval", "--repeats", "2",
                  "--workers", "1"],
                 ["fit", root, "--experiment", "digits", "--alpha", "0.5", "--lambdas", "5",
                  "--lambda-min-ratio", "0.1", "--tol", "1e-4"],
                 ["fit", root, "--experiment", "digits", "--alpha", "0.5", "--estimator", "diff_means"],
                 ["counterfactual", root, "--fit", "1", "--targets", "1400,1401", "--k", "10,40", "--trials", "2"],
                 ["embed", root, "--fit", "1", "--pca", "5", "--clusters", "4"]):
        r = inv(*args)
        assert r.exit_code == 0, (args, r.output)
    return root


def meaningful(rows: list[dict]) -> bool:
    for row in rows:
        for v in row.values():
            if v in ("", None):
                continue
            try:
                if float(v) != 0:
                    return True
            except ValueError:
                if v.lower() not in ("false", "nan"):
                    return True
    return False


@pytest.mark.parametrize("line", block_lines())
def test_readme_example_runs_and_says_something(line, demo_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--attach sets=sets.csv" in line:   # the line before it writes sets.csv
        prev = block_lines()[block_lines().index(line) - 1]
        r = CliRunner().invoke(cli, shlex.split(prev.replace("$S", str(demo_store)))[1:])
        assert r.exit_code == 0, r.output
    args = shlex.split(line.replace("$S", str(demo_store)))[1:]
    if args[0] == "export":
        out = tmp_path / args[args.index("-o") + 1]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
    else:
        r = CliRunner().invoke(cli, args + ["--csv"])
        assert r.exit_code == 0, (line, r.output)
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and meaningful(rows), (line, rows[:3])
    if "dm_removal_effect" in line:
        assert all(float(x["predicted_effect"]) > 0 for x in rows), rows    # top-10 positive weights removed
    assert not re.search(r"\bnan\b", str(rows[:1]).lower()) or "corr" in line


def test_report_on_digits_says_how_to_read_each_figure(demo_store, tmp_path):
    """Figures with captions and real alt texts; figure 9 names test and neighbour ids; figure 7
    says how many targets have no support; figure 5 says how many points it shows."""
    import re as _re
    from dmstore import Store
    from dmstore.analysis.report import build_report
    page = Path(build_report(Store.open(demo_store), 1, tmp_path / "r.html")).read_text()
    caps = _re.findall(r"<figcaption>(.*?)</figcaption>", page)
    alts = _re.findall(r'alt="([^"]*)"', page)
    assert len(caps) == len(alts) == 5 and all(len(a) > 30 for a in alts), alts   # figures 5, 9, 7, 8, F.4
    assert "each method&#x27;s top-k examples: lasso" in page
    assert _re.search(r"Test digits 13\d\d, 13\d\d", page)            # figure 9's alt names the rows
    assert _re.search(r"\d+ of \d+ targets \(\d+ %\) have no support", page)
    assert _re.search(r"density of [\d,]+ pairs", page)
    assert "width:640px" in page and "margin:1.5em auto" in page
