"""The HTML report: its sections, and a real headless-browser render when Chromium is present."""
import shutil
import subprocess
from pathlib import Path

import pytest

from dmstore import Store
from dmstore.fit import fit
from dmstore.analysis.report import build_report
from dmstore.train import train


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep") / "s"
    train(root, "tests.train.test_train:TINY", models=200, batch=200)
    train(root, "tests.train.test_train:TINY", models=40, batch=40, role="eval", repeats=2)
    st = Store.open(root, "a")
    f = fit(st, "tiny", 0.5, n_lambdas=4).fit_id
    fit(st, "tiny", 0.5, estimator="diff_means")
    return Path(build_report(st, f, root.parent / "report.html", "test report"))


def test_report_sections(report):
    page = report.read_text()
    for part in ("Table K.1", "figure 5", "figure 9", "figure 7", "figure 8", "data:image/png;base64,",
                 "<td>lasso</td>", "<td>diff_means</td>"):
        assert part in page, part
    assert "http://" not in page and "https://" not in page  # self-contained
    assert 'alt="figure"' not in page and page.count("<figcaption>") == page.count("<img ")
    assert "Each point is one (held-out eval model, target) pair" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    png = tmp_path / "shot.png"
    script = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.sh"
    subprocess.run(["bash", str(script), str(report), str(png)], check=True, timeout=120)
    import matplotlib.image as mpimg
    img = mpimg.imread(png)
    assert img.shape[0] > 1000 and img.shape[1] >= 1000
    ink = (img[..., :3].mean(2) < 0.5).mean()
    assert 0.001 < ink < 0.5  # text and figures drawn, not a blank or black page
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"file://{report.resolve()}"], capture_output=True, text=True, timeout=120).stdout
    import re
    caps = re.findall(r"<figcaption>(.*?)</figcaption>", dom)
    assert len(caps) == dom.count("<img ") >= 2 and all(len(c) > 80 for c in caps)   # the browser shows them
