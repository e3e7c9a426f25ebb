"""The dashboard in a real browser: Debian's headless chromium driven by Selenium, against a real
directory and two real peers. Saves the README's screenshot, docs/img/dashboard.png.

Needs /usr/bin/chromium and /usr/bin/chromedriver (`bash scripts/install_browser.sh`); skips,
saying so, without them. Selenium is given both paths, so it never looks for a browser or a
driver to download.
"""
import os
import shutil

import pytest

from tests.integration.helpers import live_peers, wait_until
from tests.procs import ROOT

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """A headless chromium under chromedriver with a fresh profile; quit at teardown."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} is not installed: run `bash scripts/install_browser.sh` "
                        "(Debian's chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: run make venv")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, should anything call it: no downloads
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER,
                                                               log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


# The page replaces its tables every few seconds, so an element found by one WebDriver call may be
# gone by the next (StaleElementReferenceException). Rows are therefore read in one script that
# runs inside the page: one consistent snapshot per call.
SNAPSHOT = """
return Array.from(document.querySelectorAll(arguments[0])).map(function (row) {
  return {peer_id: row.dataset.peerId || null, classes: Array.from(row.classList), text: row.innerText,
          cells: Array.from(row.querySelectorAll("td")).map(function (c) { return c.innerText.trim(); }),
          name: (row.querySelector("td.name") || {innerText: null}).innerText};
});
"""


def rows(driver, css):
    """Every row matching css, read at one moment: peer_id, classes, text, cells, name."""
    return driver.execute_script(SNAPSHOT, css)


def wait_for(driver, condition, timeout=15):
    """Wait (bounded) until condition(driver) is true; return its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def test_the_dashboard_shows_live_peers_their_files_and_searches(browser, directory_factory, peer_factory):
    from selenium.webdriver.common.by import By

    directory = directory_factory(lease=30, replication=2)
    first = peer_factory(directory.url, peer_id="alice", files={
        "holiday/beach.jpg": b"sand " * 3000, "notes/todo.txt": b"buy milk\n"})
    first.wait_for_output("published", timeout=20)
    browser.get(directory.url + "/")
    assert browser.title == "p2p directory"
    assert [r["peer_id"] for r in rows(browser, "tr.peer")] == ["alice"]

    # The page refreshes itself: the second peer appears without a reload.
    second = peer_factory(directory.url, peer_id="bob", files={"holiday/mountains.jpg": b"rock " * 4000})
    second.wait_for_output("published", timeout=20)
    wait_until(lambda: live_peers(directory.url) == ["alice", "bob"], timeout=20)
    wait_for(browser, lambda d: sorted(r["peer_id"] for r in rows(d, "tr.peer")) == ["alice", "bob"])
    wait_for(browser, lambda d: len(rows(d, "tr.file")) == 3)
    peer_cells = {r["peer_id"]: r["cells"] for r in rows(browser, "tr.peer")}
    assert peer_cells["alice"][1] == first.address and peer_cells["alice"][2] == "2"
    assert peer_cells["bob"][1] == second.address and peer_cells["bob"][2] == "1"
    assert "s ago" in peer_cells["bob"][3]
    # Every file has one holder of the two wanted: all are highlighted as below target (until a
    # backup copy lands: the replication the directory plans may already be under way).
    files = rows(browser, "tr.file")
    assert any("below" in r["classes"] for r in files) and all("/ 2" in r["text"] for r in files)
    assert browser.execute_script("return document.getElementById('count-peers').innerText") == "2"

    box = browser.find_element(By.ID, "q")
    box.send_keys("HOLIDAY")
    browser.find_element(By.CSS_SELECTOR, "#search button").click()
    wait_for(browser, lambda d: len(rows(d, "tr.result")) == 2)
    found = sorted(r["name"] for r in rows(browser, "tr.result"))
    assert found == ["holiday/beach.jpg", "holiday/mountains.jpg"]
    assert browser.current_url.endswith("?q=HOLIDAY")

    # Nothing came from anywhere but the directory, and the page raised no error (a CSP
    # violation or a script error would be a SEVERE console entry).
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert resources and all(url.startswith(directory.url + "/") for url in resources), resources
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []

    browser.execute_script("window.scrollTo(0, 0)")
    shot = browser.get_screenshot_as_png()
    assert shot.startswith(b"\x89PNG")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    tmp = SCREENSHOT.with_suffix(".png.tmp")
    tmp.write_bytes(shot)
    shutil.move(tmp, SCREENSHOT)
