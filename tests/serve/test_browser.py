"""`dmstore serve` in a real browser: Debian's chromium driven by Selenium (Debian's
chromium-driver) against the server started as a user starts it, on a small real digits store.
Opens the home page, clicks a method through to its targets, a target, a neighbour; checks that
every image loaded, the charts drew, and the console stayed clean; saves screenshots."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="Debian's chromium and chromium-driver are not installed")


@pytest.fixture(scope="module")
def server(digits_store):
    proc = subprocess.Popen([sys.executable, "-m", "dmstore", "serve", str(digits_store["root"]), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stderr.readline()
    m = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
    assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
    yield m.group(1)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1280,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _settle(drv):
    """Wait until the page has loaded and every image has finished (loaded or failed)."""
    for _ in range(100):
        if drv.execute_script("return document.readyState === 'complete' && "
                              "Array.from(document.images).every(i => i.complete)"):
            return
        time.sleep(0.1)


def _check_page(drv, shots: Path, name: str):
    _settle(drv)
    for el in drv.find_elements("css selector", "img[loading=lazy]"):   # lazy images below the fold
        drv.execute_script("arguments[0].scrollIntoView()", el)
    _settle(drv)
    broken = drv.execute_script("return Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                                ".map(i => i.src)")
    assert broken == [], f"{name}: images that did not load: {broken[:5]}"
    errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], f"{name}: console errors: {errors[:3]}"
    drv.execute_script("window.scrollTo(0, 0)")
    drv.save_screenshot(str(shots / f"{name}.png"))


def test_click_through_in_chromium(server, browser, digits_store, tmp_path):
    shots = Path(os.environ.get("DMSTORE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    drv = browser
    drv.get(server)
    _check_page(drv, shots, "home")
    assert "lasso" in drv.page_source and "diff_means" in drv.page_source
    assert drv.execute_script("return Chart.getChart('lds-chart') !== undefined && "
                              "Chart.getChart('cost-chart') !== undefined")   # the charts drew
    # a method (the lasso fit's row) -> its targets, ordered by worst LDS
    link = drv.find_element("css selector", f'a.fitlink[href="/targets?fit={digits_store["lasso"]}"]')
    link.click()
    _check_page(drv, shots, "targets")
    assert "/targets?fit=" in drv.current_url
    first = drv.find_element("css selector", "a.target")
    target = int(first.get_attribute("href").rsplit("/", 1)[1])
    first.click()
    _check_page(drv, shots, "target")
    assert drv.current_url.endswith(f"/target/{target}")
    n_img = drv.execute_script("return document.images.length")
    assert n_img >= 5   # the target and its neighbours for both methods
    assert drv.execute_script("return document.querySelectorAll('canvas.scatter').length > 0 && "
                              "Array.from(document.querySelectorAll('canvas.scatter')).every(c => Chart.getChart(c))")
    # a neighbour -> its example page, which links back to the targets it influences
    nb = drv.find_element("css selector", "section.fit figure.ex a")
    train_id = int(nb.get_attribute("href").rsplit("/", 1)[1])
    nb.click()
    _check_page(drv, shots, "example")
    assert drv.current_url.endswith(f"/example/{train_id}") and f"Example #{train_id}" in drv.page_source
    drv.get(server + "sql?q=SELECT+estimator%2C+lds+FROM+estimator_comparison")
    _check_page(drv, shots, "sql")
    assert len(drv.find_elements("css selector", "table.result tbody tr")) == 2
    drv.get(server + f"leakage?fit={digits_store['lasso']}")
    _check_page(drv, shots, "leakage")
    for name in ("home", "targets", "target", "example", "sql", "leakage"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
