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


def test_eta_follows_the_recent_rate(capsys, monkeypatch):
    """A λ path slows down: 10 fast blocks (1 s each), then blocks of 10 s. The ETA after them is
    the recent pace (10 s a block), not the average one."""
    clock = [0.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: clock[0])
    monkeypatch.setenv("DMSTORE_PROGRESS_SECONDS", "0")
    bar = P.progress(total=30, desc="fit lasso", unit="block")
    for i in range(20):
        clock[0] += 1.0 if i < 10 else 10.0
        bar.update(1)
    last = capsys.readouterr().err.splitlines()[-1]
    eta = int(re.search(r"ETA (\d+) s", last).group(1))
    assert eta == 100, last          # 10 blocks left at 10 s each (the mean pace would say 55 s)


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
