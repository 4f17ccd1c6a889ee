"""A real browser against a real server: ``adaptclip-med dashboard --demo`` driven by headless Chromium.

Opens the demo study from the data roots, scores it on demand, steps through slices, signs it off,
checks the page never shows an exception, saves screenshots of the viewer and the worklist in the
test's output folder (``tmp_path``), then uploads the same study through the page.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--headless"]
START_TIMEOUT = 150
STEP_TIMEOUT = 120_000  # ms

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dashboard exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("dashboard did not become healthy in time")


@pytest.fixture()
def demo_server(tmp_path):
    """The CLI in demo mode on a free loopback port.  The demo data (smaller than the default, to keep
    the test short) and a demo bank are made beforehand; ``--demo`` reuses data it finds."""
    from adaptclip_med.cli.dashboard import DEMO_DATA
    from adaptclip_med.demo.phantom import make_demo_dataset
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for
    from adaptclip_med.volume.reference_bank import build_reference_bank

    output = tmp_path / "review"
    data = make_demo_dataset(output / DEMO_DATA, seed=0, n_references=2, shape=(10, 96, 96))
    options = demo_options()
    build_reference_bank("demo-ct-head", data.reference_dirs, model_for(options), options.preprocessing(),
                         output / "banks", batch_size=8)
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "adaptclip_med.cli.main", "dashboard", "--demo", "--output",
                                   str(output), "--port", str(port), "--references", "demo-ct-head"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url, output, data.study_dir
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _settle(page) -> None:
    """Wait until Streamlit has finished the run triggered by the last action."""
    page.wait_for_timeout(400)
    page.wait_for_function("() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
                           " return app && !['initial', 'running', 'rerunRequested']"
                           ".includes(app.getAttribute('data-test-script-state')); }", timeout=STEP_TIMEOUT)


def _click(page, key: str) -> None:
    # buttons with a tooltip render a hidden twin: take the first
    page.locator(f".st-key-{key} button").first.click()
    _settle(page)


def _choose(page, key: str, option_text: str) -> None:
    page.locator(f".st-key-{key} [role='combobox']").click()
    page.get_by_role("option").filter(has_text=option_text).first.click()
    _settle(page)


def _no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.first.inner_text()


def test_sign_off_in_a_real_browser(demo_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, output, data_study = demo_server
    expect.set_options(timeout=STEP_TIMEOUT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 2100})  # tall enough for the whole viewer
        page.set_default_timeout(STEP_TIMEOUT)
        page.goto(url)
        expect(page.get_by_text("Model ready").first).to_be_visible()
        _settle(page)

        page.locator(".st-key-reviewer input").fill("Dr Browser")
        page.locator(".st-key-reviewer input").press("Enter")
        _settle(page)
        _click(page, "scan_roots")
        _choose(page, "open_pick", "LESIONS")
        _click(page, "open_candidate")
        expect(page.get_by_text("not scored yet").first).to_be_visible()
        _click(page, "score_now")
        expect(page.locator(".st-key-top_1 button").first).to_be_visible()
        _no_exception(page)

        _click(page, "top_2")
        _click(page, "next_slice")
        _click(page, "top_1")
        expect(page.get_by_text("normal reference: bank 'demo-ct-head'").first).to_be_visible()
        expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()
        _no_exception(page)

        page.locator("[class*='st-key-so_decision_'] label").filter(has_text="Confirmed anomaly").click()
        page.locator("[class*='st-key-so_notes_'] textarea").fill("focal hyperdensity, demo")
        page.get_by_role("button", name="Sign off").first.click()
        expect(page.get_by_text("Signed off: Confirmed anomaly by Dr Browser").first).to_be_visible()
        _settle(page)
        _no_exception(page)
        page.screenshot(path=str(tmp_path / "viewer.png"))

        page.locator("[data-testid='stSidebar'] label").filter(has_text="Worklist").click()
        _settle(page)
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
        _no_exception(page)
        page.screenshot(path=str(tmp_path / "worklist.png"))

        # the same study uploaded from the browser opens with its existing results and decision
        page.get_by_role("tab", name="Upload").click()
        page.locator(".st-key-upload input[type='file']").set_input_files(sorted(str(p) for p in data_study.iterdir()))
        expect(page.locator(".st-key-open_upload button").first).to_be_visible()
        _click(page, "open_upload")
        expect(page.get_by_text("Confirmed anomaly").first).to_be_visible()
        expect(page.locator(".st-key-slice").first).to_be_visible()
        _no_exception(page)
        browser.close()

    from adaptclip_med.review.store import ReviewStore

    review_statuses = ReviewStore.in_folder(output).statuses()
    assert list(review_statuses.values()) == ["confirmed"]
    assert (tmp_path / "viewer.png").stat().st_size > 50_000 and (tmp_path / "worklist.png").stat().st_size > 20_000
