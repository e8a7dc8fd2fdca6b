"""Progress on stderr when it is not a terminal: periodic lines (done/total, rate, ETA), a last
line, and silence with --quiet."""
import re

from click.testing import CliRunner

from dmstore.cli import cli
from dmstore import progress as P


def test_line_progress_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("DMSTORE_PROGRESS_SECONDS", "0")
    bar = P.progress(total=4, desc="train x", unit="model")
    assert isinstance(bar, P.LineProgress)
    for _ in range(4):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"train x: 1/4 model \(25 %\), [\d.]+ model/s, ETA \d+ s", lines[0]), lines[0]
    assert re.fullmatch(r"train x: 4/4 model \(100 %\), [\d.]+ model/s, done in \d+ s", lines[-1]), lines[-1]
    assert len(lines) == 5
    bar = P.progress(total=4, desc="quiet", unit="model", enabled=False)
    bar.update(4)
    bar.close()
    assert capsys.readouterr().err == ""


def test_cli_fit_reports_progress_and_quiet_silences_it(filled, monkeypatch):
    monkeypatch.setenv("DMSTORE_PROGRESS_SECONDS", "0")
    args = ["fit", str(filled.root), "--experiment", "exp", "--alpha", "0.5", "--lambdas", "3",
            "--lambda-min-ratio", "0.1"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert re.search(r"fit lasso: \d+/\d+ λ-block .* done in \d+ s", r.stderr), r.stderr
    r = CliRunner().invoke(cli, ["-q"] + args)
    assert r.exit_code == 0 and "λ-block" not in r.stderr, r.stderr
    P.set_quiet(False)
