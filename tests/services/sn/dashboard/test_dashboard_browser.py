"""The dashboard and the offline API docs in a real headless Chromium against a real
`fedchain up` network on 127.0.0.1: the page shows the ENs, a round appears after Train
(pushed by server-sent events), Verify shows ok, /docs and /redoc render offline.

Runs for real in CI (.ci/run installs chromium and chromium-driver); outside CI it skips
with one line when the browser is missing. Saves the page as docs/dashboard.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fedchain.shared.processes import fedchain_argv
from tests.conftest import REPO, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and os.environ.get("CI") != "true":
    pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - after the skip: a dev dependency
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
SCREENSHOT = REPO / "docs" / "dashboard.png"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(FEDCHAIN_HEARTBEAT_INTERVAL="0.5", FEDCHAIN_HEARTBEAT_TIMEOUT="10", FEDCHAIN_TORCH_THREADS="1")
    return env


def _fedchain(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(fedchain_argv(args), capture_output=True, text=True, timeout=timeout,
                          env=_env(), cwd=REPO, check=False)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A kept `fedchain up` network (entry, one SN, two ENs) after one round: (base URL, API token)."""
    port = free_port()
    state = tmp_path / "fc"
    up = _fedchain("up", "--state-dir", str(state), "--port", str(port), "--rounds", "1", "--keep",
                   "--sns", "1", "--ens", "2", "--max-samples", "600", timeout=400)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        tokens = dict(line.split("=", 1) for line in (state / "tokens.env").read_text().splitlines()
                      if line and not line.startswith("#"))
        yield f"http://127.0.0.1:{port + 1000}", tokens["FEDCHAIN_API_TOKEN"]
    finally:
        down = _fedchain("down", "--state-dir", str(state), timeout=90)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500",
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"):  # no internet: any CDN fails
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def test_dashboard_shows_the_federation_trains_a_round_and_verifies(
    network: tuple[str, str], browser: WebDriver
) -> None:
    base, token = network
    wait = WebDriverWait(browser, 60)
    browser.get(base + "/")
    wait.until(lambda d: _text(d, "live") == "live")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tree-rows tr.en")) == 2)
    ens = browser.find_elements(By.CSS_SELECTOR, "#tree-rows tr.en")
    assert all("alive" in row.text for row in ens)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tree-rows tr.sn")) == 2  # M-SN and one SN
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tree-svg circle")) == 1 + 1 + 2  # M-SN, SN, ENs
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#round-rows tr.round")) == 1)

    browser.find_element(By.ID, "train").click()  # no token yet: refused in the page
    assert "API token" in _text(browser, "control-result")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "train").click()
    wait.until(lambda d: "training" in _text(d, "control-result"))
    WebDriverWait(browser, 300).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#round-rows tr.round[data-round="2"]')
    )  # pushed by /events: the page does not poll
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curve path.acc")) == 1
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#block-rows tr.block td') and
               "round" in _text(d, "block-rows"))
    wait.until(lambda d: _text(d, "st-state") == "idle")

    browser.find_element(By.ID, "verify").click()
    wait.until(lambda d: _text(d, "verify-result").startswith("ok"))
    browser.find_element(By.CSS_SELECTOR, '#round-rows tr.round[data-round="2"]').click()
    wait.until(ec.visibility_of_element_located((By.ID, "evidence")))
    evidence = _text(browser, "evidence-body")
    assert "participants (2)" in evidence and "rejected updates (0)" in evidence
    assert token not in browser.page_source
    browser.save_screenshot(str(SCREENSHOT))

    metrics = httpx.get(base + "/metrics", timeout=10).text
    values = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
    assert float(values["fedchain_last_round"]) == 2 and float(values["fedchain_ens_alive"]) == 2
    assert float(values["fedchain_sns_alive"]) == 2 and float(values["fedchain_rounds_total"]) == 2
    assert 0 < float(values["fedchain_round_accuracy"]) <= 1 and float(values["fedchain_round_participants"]) == 2
    assert float(values['fedchain_bytes_sent_total{stream="model"}']) > 0
    assert float(values['fedchain_bytes_received_total{stream="aggregate"}']) > 0
    assert float(values['fedchain_ledger_append_seconds_count{kind="round"}']) == 2


def test_api_docs_render_offline_with_their_operations(network: tuple[str, str], browser: WebDriver) -> None:
    base, _token = network
    wait = WebDriverWait(browser, 60)
    browser.get(base + "/docs")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    summaries = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert "/train" in summaries and "/verify" in summaries and "/events" in summaries
    assert browser.find_elements(By.CSS_SELECTOR, ".btn.authorize")  # the bearer scheme
    browser.get(base + "/redoc")
    wait.until(lambda d: "/verify" in d.find_element(By.TAG_NAME, "body").text)
