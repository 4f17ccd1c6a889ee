"""The reading room in a real browser: ``adaptclip-med dashboard --demo`` driven by headless Chromium.

One Streamlit server for the whole module (session-scoped): the demo data, a demo bank, the lesion
study already scored (as the dashboard itself would) and a broken batch result are made beforehand.
Each flow gets a fresh browser context (a new session, as after a reload):

* scroll (wheel, arrows), W/L drag, score-curve jump, top-slice chip, views: all in the browser;
* sign-off (by the OS account: local mode) -> amend -> the downloads are revision 2's; a stale
  sign-off is refused;
* reload keeps the view (URL); deep link ``?study=``; ``?reviewer=`` is ignored; the "local,
  unauthenticated" banner is shown; no request leaves the machine;
* bad uploads: one line per rejected file, no server path or exception name, nothing kept;
* worklist: broken results flagged and not first, unscored series with a "score" action.

Screenshots (viewer, worklist, report) go to ``test-output/browser/`` (or $ADAPTCLIP_TEST_OUTPUT).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import getpass
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--headless"]
START_TIMEOUT = 180
STEP_TIMEOUT = 120_000  # ms
VIEWPORT = {"width": 1440, "height": 900}
VIEWER_FRAME = "iframe[title*='adaptclip_med_viewer']"
LOCAL_USER = getpass.getuser()  # local mode: the OS account is the reviewer
SHOTS = Path(os.environ.get("ADAPTCLIP_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "browser"

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


COMPARED = "compare-study"  # a study scored with `score --method adaptclip,winclip` (<out>/<method>/ + methods.json)


def _two_method_comparison(data, options, bank: Path, out: Path, weights: Path) -> None:
    """A normal demo scan scored by AdaptCLIP (demo model, demo bank) and WinCLIP (a tiny random
    CLIP saved as a weights file), as ``score --method adaptclip,winclip`` writes it."""
    from tests.support.tiny_models import save_random_clip

    from adaptclip_med.volume.compare import score_with_methods
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.volume.options import ScoringOptions, SlicingOptions

    weights.mkdir(parents=True, exist_ok=True)
    tiny = save_random_clip("winclip-tiny-vit", weights / "winclip-tiny.pt", seed=3)
    winclip = ScoringOptions(model=MethodSpec(method="winclip", backbone=BackboneSpec("winclip-tiny-vit", str(tiny), offline=True),
                                              image_size=84, class_name="head CT"),
                             slicing=SlicingOptions(window=options.slicing.window, batch_size=8))
    score_with_methods(data.reference_dirs[0], out, [options.with_references(bank=str(bank)).with_slicing(window=None, batch_size=8), winclip])


@dataclass
class Room:
    url: str
    output: Path
    data: object  # demo DemoPaths
    study_key: str
    broken_key: str


@pytest.fixture(scope="session")
def room(tmp_path_factory):
    """The CLI in demo mode on a free loopback port, with the lesion study scored and a broken result."""
    from adaptclip_med.review.store import ReviewStore

    from tests.support.scored_demo import prepare_scored_demo

    base = tmp_path_factory.mktemp("room")
    output = base / "review"
    demo = prepare_scored_demo(output, n_references=2, shape=(10, 96, 96))
    data, options, key = demo.data, demo.options, demo.key
    ReviewStore.in_folder(output).register_study(key, "dashboard", replace(demo.candidate.source(), output_dir=demo.out_dir))
    results = base / "batch"
    _two_method_comparison(data, options, demo.bank, results / COMPARED, base / "weights")
    # a broken result with a high score: flagged, never ranked first
    broken = results / "broken-study"
    broken.mkdir(parents=True)
    (broken / "study.json").write_text(json.dumps({"study_key": "broken-study", "score": 0.99, "top_slices": [{"index": 1}]}))
    (broken / "anomaly_probability.nii.gz").write_bytes(b"garbage")

    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(base / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "adaptclip_med.cli.main", "dashboard", "--demo", "--output",
                                   str(output), "--port", str(port), "--references", "demo-ct-head", "--results", str(results)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield Room(url, output, data, key, "broken-study")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="session")
def browser(playwright_driver):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT)
    chromium = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    yield page
    context.close()


# ---------------------------------------------------------------------------------------------- helpers
def _settle(page) -> None:
    """Wait until Streamlit has finished the run triggered by the last action."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
                           " return app && !['initial', 'running', 'rerunRequested']"
                           ".includes(app.getAttribute('data-test-script-state')); }", timeout=STEP_TIMEOUT)


def _open(page, url: str) -> None:
    page.goto(url)
    _settle(page)
    page.get_by_text("Reference library").first.wait_for()
    _settle(page)


def _viewer(page):
    """(frame locator, frame) of the reading-room viewer once its volumes are on screen."""
    frames = page.frame_locator(VIEWER_FRAME)
    frames.locator("body[data-ready='1']").wait_for(timeout=STEP_TIMEOUT)
    frame = next(f for f in page.frames if "adaptclip_med_viewer" in f.url)
    return frames, frame


def _view(frame) -> dict:
    return frame.evaluate("() => ({z: window.__viewer.S.z, view: window.__viewer.S.view, level: window.__viewer.S.level,"
                          " width: window.__viewer.S.width, zoom: window.__viewer.S.zoom})")


def _url_params(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _wait_url(page, name: str, value: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _url_params(page).get(name) == value:
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"URL parameter {name} is {_url_params(page).get(name)!r}, expected {value!r}")


def _no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _study_url(room: Room, **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"study": room.study_key, **extra}.items())
    return f"{room.url}/?{query}"


def _below_fold(page, locator) -> bool:
    box = locator.bounding_box()
    return box is None or box["y"] + box["height"] > VIEWPORT["height"]


def _open_dropdown(page, combobox: str, attempts: int = 3) -> None:
    """Open a select's option list; a rerun that lands just after the click redraws the widget and
    closes the list, so the click is repeated until options are on screen."""
    for _ in range(attempts):
        page.locator(combobox).click()
        try:
            page.get_by_role("option").first.wait_for(timeout=10_000)
            return
        except Exception:  # playwright TimeoutError: the list closed again
            _settle(page)
    raise AssertionError(f"{combobox}: the option list did not open")


def _choose_option(page, combobox: str, text: str, attempts: int = 3) -> None:
    """Click the option holding ``text``; a rerun may close the list between opening and clicking
    (seen on the loaded 2-core machine), so the list is reopened and the click repeated."""
    for _ in range(attempts):
        try:
            page.get_by_role("option").filter(has_text=text).first.click(timeout=10_000)
            return
        except Exception:  # playwright TimeoutError: the list closed under the click
            _settle(page)
            _open_dropdown(page, combobox)
    raise AssertionError(f"{combobox}: could not choose the option '{text}'")


# ---------------------------------------------------------------------------------------------- flows
def test_scroll_window_level_and_curve_jump_happen_in_the_browser(room, page):
    from playwright.sync_api import expect

    _open(page, _study_url(room))
    frames, frame = _viewer(page)
    _no_exception(page)
    start = _view(frame)
    top = json.loads((room.output / "studies" / room.study_key / "study.json").read_text())["top_slices"]
    assert start["z"] == top[0]["index"] and start["view"] == "axial"

    pane = frames.locator("#pane-study")
    box = pane.bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(0, -120)
    page.mouse.wheel(0, -120)
    assert _view(frame)["z"] == start["z"] - 2  # the wheel scrolls slices, not the page
    assert page.evaluate("() => window.scrollY") == 0
    for _ in range(5):  # fast presses: every one is a slice
        page.keyboard.press("ArrowDown")
    assert _view(frame)["z"] == min(start["z"] + 3, 9)
    page.keyboard.press("Home")
    assert _view(frame)["z"] == 0
    assert "slice 1 / 10" in frames.locator("#hud-study-tl").inner_text()
    assert "mm" in frames.locator("#hud-study-tl").inner_text()

    # W/L drag: right = wider, down = higher level; the values are on screen
    page.mouse.move(*centre)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(centre[0] + 12 * step, centre[1] + 6 * step)
    page.mouse.up()
    after = _view(frame)
    assert after["width"] > start["width"] and after["level"] > start["level"]
    shown = frame.evaluate("() => `W ${window.__viewer.S.width.toFixed(0)}  L ${window.__viewer.S.level.toFixed(0)}`")
    expect(frames.locator("#hud-study-tr")).to_contain_text(shown)
    expect(frames.locator("#hud-ref-bl")).to_contain_text(shown)  # the reference shares the window

    # click the score strip near its right end: the last slice; a top-slice chip: that slice
    strip = frames.locator("#strip").bounding_box()
    page.mouse.click(strip["x"] + strip["width"] * 0.97, strip["y"] + strip["height"] / 2)
    assert _view(frame)["z"] == 9
    frames.locator("button[data-top='2']").click()
    assert _view(frame)["z"] == top[1]["index"]
    assert "normal reference: bank 'demo-ct-head'" in frames.locator("#hud-ref-tl").inner_text()
    ref_slice = int(frames.locator("#hud-ref-tl").get_attribute("data-slice"))
    frames.locator("button[data-top='1']").click()
    assert int(frames.locator("#hud-ref-tl").get_attribute("data-slice")) != ref_slice or top[0]["index"] == top[1]["index"]
    # the matched slice of the normal SOURCE series (full resolution, HU), as the model compared it
    reference = frames.locator("#hud-ref-tl")
    assert "scan 1\nsource series" in reference.inner_text() and "used by the model" in reference.inner_text()
    ref_shape = frame.evaluate("() => Array.from(window.__viewer.nvR.volumes[0].dims.slice(1, 4))")
    assert ref_shape == [96, 96, 10]  # the demo reference series, not the bank's 128-px thumbnails
    page.locator(".st-key-ref_scan [role='combobox']").click()
    page.get_by_role("option").filter(has_text="normal scan 2").first.click()
    _settle(page)
    expect(reference).to_contain_text("scan 2\nsource series")  # switchable between the bank's scans
    expect(frames.locator("#hud-ref-bl")).to_contain_text(frames.locator("#hud-study-tr").inner_text().split("\n")[0])

    # the whole reading room is on one 1440 x 900 screen
    assert not _below_fold(page, page.locator(VIEWER_FRAME))
    assert not _below_fold(page, page.locator(".st-key-sign button").first)
    assert not _below_fold(page, page.locator(".st-key-next_unread button").first)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "viewer.png"))

    frames.locator("button[data-view='coronal']").click()
    assert _view(frame)["view"] == "coronal"
    page.keyboard.press("+")
    assert _view(frame)["zoom"] > 1
    _wait_url(page, "view", "coronal")
    _no_exception(page)


def test_reload_keeps_the_view_and_the_reviewer_is_the_os_account(room, page, browser):
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if urlparse(request.url).hostname not in ("127.0.0.1", None) and urlparse(request.url).scheme in ("http", "https", "ws", "wss") else None)
    _open(page, _study_url(room, reviewer="Mallory"))  # an old-style link naming a reviewer: ignored
    frames, frame = _viewer(page)
    main = page.locator("[data-testid='stMain']")
    assert "local, unauthenticated" in main.inner_text() and f"signed in: {LOCAL_USER}" in main.inner_text()
    assert "Mallory" not in main.inner_text() and page.locator(".st-key-reviewer").count() == 0  # no free-text reviewer
    assert not [c for c in page.context.cookies() if c["name"] == "adaptclip_reviewer"]
    box = frames.locator("#pane-study").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)
    wanted = _view(frame)["z"]
    _wait_url(page, "slice", str(wanted))

    page.reload()
    _settle(page)
    frames, frame = _viewer(page)
    assert _view(frame)["z"] == wanted
    assert f"signed in: {LOCAL_USER}" in page.locator("[data-testid='stMain']").inner_text()
    assert outside == []  # no font, icon or favicon from an outside server


def test_sign_off_amend_and_export_serve_the_current_revision(room, page):
    from playwright.sync_api import expect

    from adaptclip_med.review.store import ReviewStore

    _open(page, _study_url(room))
    _viewer(page)
    page.mouse.click(1300, 885)  # focus on the page, not a field
    page.keyboard.press("1")  # decision hotkey
    _settle(page)
    page.locator("[class*='st-key-so_notes_'] textarea").fill("focal hyperdensity, demo")
    page.locator(".st-key-sign button").first.click()
    _settle(page)
    page.get_by_text(f"by {LOCAL_USER}").first.wait_for()
    page.locator(".st-key-export button").first.click()
    _settle(page)
    with page.expect_download() as first:
        page.locator(".st-key-dl_report_html_r1 button").first.click()
    assert first.value.suggested_filename == f"{room.study_key}_r1_report.html"

    page.mouse.click(1300, 885)  # focus on the page again, not the notes field
    page.keyboard.press("2")
    _settle(page)
    page.keyboard.press("Control+Enter")  # sign hotkey: an amendment
    _settle(page)
    page.get_by_text("revision 2").first.wait_for()
    expect(page.locator(".st-key-dl_report_html_r2 button").first).to_be_visible()
    expect(page.locator(".st-key-dl_report_html_r1")).to_have_count(0)  # revision 1's files are gone from the page
    with page.expect_download() as second:
        page.locator(".st-key-dl_report_html_r2 button").first.click()
    assert second.value.suggested_filename == f"{room.study_key}_r2_report.html"
    html = Path(second.value.path()).read_text()
    assert "False positive" in html and LOCAL_USER in html, html[:3000]
    report = page.context.new_page()
    report.set_content(html)
    SHOTS.mkdir(parents=True, exist_ok=True)
    report.screenshot(path=str(SHOTS / "report.png"), full_page=False)
    report.close()

    store = ReviewStore.in_folder(room.output)
    trail = store.audit_trail(room.study_key)
    exports = [e for e in trail if e.action == "export"]
    assert [e.after["revision"] for e in exports][-2:] == [1, 2] and all(e.reviewer == LOCAL_USER for e in exports)
    assert {e.reviewer for e in trail if e.action in ("sign_off", "amend")} == {LOCAL_USER}  # the sign-off and the amendment
    assert store.verify().ok

    # someone else amends meanwhile: this page's sign-off (based on revision 2) is refused, not overwritten
    from adaptclip_med.review.access import READ, SIGN_OFF, Identity

    elsewhere = Identity("https://idp.test", "elsewhere", "Dr Elsewhere", "", frozenset({READ, SIGN_OFF}))
    store.sign_off(room.study_key, "normal", elsewhere, expected_revision=2)
    page.keyboard.press("1")
    _settle(page)
    page.locator(".st-key-sign button").first.click()
    _settle(page)
    page.get_by_text("signed off meanwhile").first.wait_for()
    review = store.review(room.study_key)
    assert (review.decision, review.reviewer, review.revision) == ("normal", "Dr Elsewhere", 3)
    _no_exception(page)


def test_bad_uploads_are_named_and_not_kept(room, page, tmp_path):
    fake = tmp_path / "fake.nii.gz"
    fake.write_bytes(b"this is not a NIfTI volume")
    notes = tmp_path / "notes.dcm"
    notes.write_bytes(b"plain text, not DICOM" * 20)
    _open(page, f"{room.url}/?page=Worklist")  # the demo opens in the reading room otherwise
    page.get_by_role("tab", name="Upload").click()
    page.locator(".st-key-upload input[type='file']").set_input_files([str(fake), str(notes)])
    page.locator(".st-key-open_upload button").first.wait_for()
    page.locator(".st-key-open_upload button").first.click()
    _settle(page)
    page.get_by_text("fake.nii.gz: not a gzip-compressed NIfTI").first.wait_for(state="attached")
    page.get_by_text("notes.dcm: not a DICOM file").first.wait_for(state="attached")
    text = page.locator("[data-testid='stMain']").inner_text()
    assert "/tmp" not in text and "adaptclip-review-upload" not in text
    assert not any(name in text for name in ("Error:", "Exception", "Traceback", "BadZipFile", "ImageFileError"))
    assert _url_params(page).get("page") != "Viewer"  # stayed on the worklist
    page.get_by_role("tab", name="From the data roots").click()
    page.locator(".st-key-open_pick [role='combobox']").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert len(options) == 4 and not any(o.startswith("NIFTI, 0 slices") for o in options)  # the data roots only
    _no_exception(page)


def test_worklist_flags_broken_results_and_deep_links_open_studies(room, page):
    _open(page, f"{room.url}/?page=Worklist")  # the demo opens in the reading room otherwise
    table = page.locator("[data-testid='stDataFrame']").first
    table.wait_for()
    page.locator(".st-key-wl_pick [role='combobox']").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert options[0].startswith("#1") and "LESIONS" in options[0]  # the readable study ranks first
    assert not any("broken-study" in o for o in options)  # not openable: not offered
    assert any("[not scored]" in o for o in options)  # unscored series: listed to be scored
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "worklist.png"))

    # a row click opens the study; the URL is then a deep link to it
    box = table.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)  # first data row's selection box
    _settle(page)
    _viewer(page)
    assert _url_params(page).get("study") == room.study_key
    fresh = page.context.new_page()
    fresh.goto(page.url)
    _settle(fresh)
    _viewer(fresh)
    assert "LESIONS" in fresh.locator("[data-testid='stMain']").inner_text()
    fresh.close()

    # an unscored series from the worklist goes to the scoring panel, and is scored in the page
    _open(page, f"{room.url}/?page=Worklist")  # the demo opens in the reading room otherwise
    page.locator(".st-key-wl_pick [role='combobox']").click()
    page.get_by_role("option").filter(has_text="NORMAL").filter(has_text="[not scored]").first.click()
    _settle(page)
    page.locator(".st-key-wl_open button").first.click()
    _settle(page)
    page.get_by_text("not scored yet").first.wait_for()
    page.locator(".st-key-score_now button").first.click()
    _settle(page)
    _viewer(page)
    _no_exception(page)


def test_two_methods_maps_switch_in_the_viewer(room, page):
    from playwright.sync_api import expect

    _open(page, f"{room.url}/?study={COMPARED}")
    frames, frame = _viewer(page)
    hud = frames.locator("#hud-study-tl")
    expect(hud).to_contain_text("adaptclip")
    heat = "() => window.__viewer.nv.volumes[1].img.reduce((a, b) => a + b, 0)"
    first = frame.evaluate(heat)
    page.locator(".st-key-map_pick [role='combobox']").click()
    options = page.get_by_role("option").all_inner_texts()
    assert sorted(o.split(" ")[0] for o in options) == ["adaptclip", "winclip"]
    page.get_by_role("option").filter(has_text="winclip").first.click()
    _settle(page)
    expect(hud).to_contain_text("winclip")
    frames.locator("body[data-ready='1']").wait_for()
    second = frame.evaluate(heat)
    assert second != first  # the other method's map is on screen, not a relabelled copy
    page.locator(".st-key-map_pick [role='combobox']").click()
    page.get_by_role("option").filter(has_text="adaptclip").first.click()
    _settle(page)
    expect(hud).to_contain_text("adaptclip")
    _no_exception(page)


def test_normal_scan_picker_flags_label_maps_and_series_with_findings(room, page):
    _open(page, f"{room.url}/?page=Reference%20library")
    page.locator(".st-key-lib_scan button").first.click()
    _settle(page)
    _open_dropdown(page, ".st-key-ref_pick [role='combobox']")
    options = page.get_by_role("option").all_inner_texts()
    flagged = [o for o in options if o.startswith("⚠")]
    assert any("NIFTI" in o for o in flagged), options  # the demo's lesion mask: a label map
    assert any("LESIONS" in o for o in flagged)  # scored with findings
    assert not any("NORMAL" in o for o in flagged)
    _choose_option(page, ".st-key-ref_pick [role='combobox']", "NIFTI")
    page.keyboard.press("Escape")
    _settle(page)
    page.get_by_text("not a normal reference").first.wait_for()
    assert "label map" in page.locator("[data-testid='stMain']").inner_text()
    _no_exception(page)


def test_reading_room_numbering_thresholds_reference_level_probe_help_and_finding_jump(room, page):
    """Issue 25 in the browser: the corner text numbers the slice as every output does (1-based, with
    the DICOM instance), names the slice score's own threshold, the reference is at the same level
    on every slice, the value under the cursor is shown in HU, '?' lists the shortcuts, and a
    finding in the list jumps the viewer to its peak slice."""
    import re

    from playwright.sync_api import expect

    _open(page, _study_url(room))
    frames, frame = _viewer(page)
    report = json.loads((room.output / "studies" / room.study_key / "study.json").read_text())
    top = report["top_slices"][0]
    assert _view(frame)["z"] == top["index"]
    tl = frames.locator("#hud-study-tl").inner_text()
    assert f"slice {top['slice']} / 10  (instance {top['instance_number']})" in tl  # = study.json, slices.csv, reports
    br = frames.locator("#hud-study-br").inner_text()
    assert "slice score " in br and "slice score threshold " in br and "outline: pixel threshold " in br
    assert re.search(r"slice score threshold [0-9.]+", br) and "\nthreshold" not in br
    for z in range(10):  # the normal reference: the same level as the study slice on every slice
        frame.evaluate(f"() => {{ window.__viewer.S.z = {z}; }}")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowUp")
        shown = _view(frame)["z"]
        assert int(frames.locator("#hud-ref-tl").get_attribute("data-slice")) == shown

    canvas = frames.locator("#cv-study")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(frames.locator("#hud-study-tr")).to_contain_text("HU")
    probe = frame.evaluate("() => window.__viewer.probe")
    assert probe is not None and -1100 < probe["value"] < 3100  # a CT value in HU, not the 0..1 network input

    # W/L drag with real mouse events: no state message to the server while the button is down, even
    # with pauses longer than the debounce (a Streamlit rerun mid-drag greyed the viewer out); one after.
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    sent = frame.evaluate("() => window.__viewer.stats.sent")
    width = _view(frame)["width"]
    for i in range(4):
        page.mouse.move(cx + 10 * (i + 1), cy + 3 * (i + 1))
        page.wait_for_timeout(700)
    assert frame.evaluate("() => window.__viewer.stats.sent") == sent and _view(frame)["width"] > width
    page.mouse.up()
    deadline = time.monotonic() + 20
    while frame.evaluate("() => window.__viewer.stats.sent") == sent and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert frame.evaluate("() => window.__viewer.stats.sent") == sent + 1
    _settle(page)

    canvas.click()
    page.keyboard.press("?")
    help_box = frames.locator("#help")
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("window / level")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "shortcuts.png"))
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    jump = page.locator("[class*='st-key-so_goto_'] button").last
    summary = page.locator("[data-testid='stExpander'] summary").filter(has_text="Findings at pixel threshold").first
    summary.scroll_into_view_if_needed()
    summary.click()
    _settle(page)
    jump.wait_for(state="attached")
    peak = int(re.search(r"peak [0-9.]+ on slice (\d+)", jump.inner_text()).group(1))
    jump.evaluate("b => b.click()")  # the button's own click handler (the list may sit below the fold)
    _settle(page)
    deadline = time.monotonic() + 30
    while _view(frame)["z"] != peak - 1 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert _view(frame)["z"] == peak - 1  # the finding's peak slice, numbered as the viewer numbers it
    assert f"slice {peak} / 10" in frames.locator("#hud-study-tl").inner_text()
    page.screenshot(path=str(SHOTS / "finding-jump.png"))
    _no_exception(page)


def test_distance_and_ellipse_roi_tools_measure_in_millimetres(room, page):
    """Issue 25 item 6: 'd' + two clicks draws a distance, 'e' + two clicks an ellipse ROI; the panel
    lists the length in mm and the ROI's mean / SD / area, computed with the volume's own spacing
    (the same arithmetic as review/measurements.py), and the geometry goes back to the server."""
    import math
    import re

    import numpy as np
    from playwright.sync_api import expect

    from adaptclip_med.review.measurements import distance_mm, pixel_area_mm2

    _open(page, _study_url(room))
    frames, frame = _viewer(page)
    canvas = frames.locator("#cv-study")
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    canvas.click(position={"x": 5, "y": 5}, modifiers=["Shift"])  # focus without a W/L change
    page.keyboard.press("d")
    expect(frames.locator("[data-tool='distance']")).to_have_class(re.compile("on"))
    sent = frame.evaluate("() => window.__viewer.stats.sent")
    page.mouse.click(cx - 60, cy)
    page.mouse.click(cx + 60, cy + 20)
    panel = frames.locator("#meas")
    expect(panel).to_contain_text("M1 slice")
    items = frame.evaluate("() => window.__viewer.M.items")
    affine = np.array(frame.evaluate("() => window.__viewer.affine"))
    assert len(items) == 1 and items[0]["kind"] == "distance" and items[0]["z"] == _view(frame)["z"]
    expected = distance_mm(affine, *items[0]["points"])
    shown = float(re.search(r"M1 slice \d+: ([0-9.]+) mm", panel.inner_text()).group(1))
    assert expected > 5 and shown == pytest.approx(expected, abs=0.06)

    page.keyboard.press("e")
    page.mouse.click(cx - 30, cy - 30)
    page.mouse.click(cx + 30, cy + 20)
    expect(panel).to_contain_text("M2 slice")
    items = frame.evaluate("() => window.__viewer.M.items")
    (y0, x0), (y1, x1) = items[1]["points"]
    area = math.pi * abs(y1 - y0) / 2 * abs(x1 - x0) / 2 * pixel_area_mm2(affine)
    found = re.search(r"M2 slice \d+: mean (-?[0-9.]+) HU SD ([0-9.]+)\s+([0-9.]+) mm²", panel.inner_text())
    assert found, panel.inner_text()
    assert float(found.group(3)) == pytest.approx(area, abs=0.06)
    deadline = time.monotonic() + 20  # the geometry goes back to Streamlit with the view state
    while frame.evaluate("() => window.__viewer.stats.sent") == sent and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert frame.evaluate("() => window.__viewer.stats.sent") > sent
    _settle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "measurements.png"))

    # kept with the sign-off: recomputed on the server from the geometry, equal to what the panel showed
    from adaptclip_med.review.store import ReviewStore

    page.keyboard.press("Escape")  # tool off
    page.mouse.click(1300, 885)
    page.keyboard.press("1")
    _settle(page)
    page.keyboard.press("Control+Enter")
    _settle(page)
    store = ReviewStore.in_folder(room.output)
    deadline = time.monotonic() + 30
    while not (store.review(room.study_key) and store.review(room.study_key).measurements) and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    kept = store.review(room.study_key).measurements
    assert [m["kind"] for m in kept] == ["distance", "ellipse"]
    assert kept[0]["length_mm"] == pytest.approx(shown, abs=0.06)
    assert kept[1]["area_mm2"] == pytest.approx(area, abs=0.06)
    assert kept[1]["mean"] == pytest.approx(float(found.group(1)), abs=0.06)
    assert store.verify().ok
    _no_exception(page)


# The fast path's picture during a drag, kept in the page; then compared there with NiiVue's own redraw.
_SNAPSHOT_FAST_JS = """() => {
  const v = window.__viewer, snap = (id) => {
    const c = document.getElementById(id);
    return c.width ? new Uint8ClampedArray(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) : null;
  };
  v.snapStudy = snap('fp-study'); v.snapRef = snap('fp-ref');
  return {study: getComputedStyle(document.getElementById('fp-study')).display,
          ref: getComputedStyle(document.getElementById('fp-ref')).display,
          wl: `${Math.round(v.S.level * 10) / 10},${Math.round(v.S.width * 10) / 10}`};
}"""
# Both calibrations of the fast path on the study viewer's current picture: their black frames and
# their white-minus-black frames, largest difference (then NiiVue re-windows back to its window).
_CALIBRATIONS_AGREE_JS = """() => {
  const nv = window.__viewer.nv, vol = nv.volumes[0], canvas = document.createElement('canvas');
  const cheap = new window.FastWindow(nv, canvas);
  cheap.prepare();
  window.FastWindow.forceRewindow = true;
  const rewindow = new window.FastWindow(nv, canvas);
  rewindow.prepare();
  window.FastWindow.forceRewindow = false;
  nv.refreshLayers(vol, 0); nv.drawScene();
  let max = 0;
  for (let i = 0; i < cheap.out0.length; i++)
    max = Math.max(max, Math.abs(cheap.out0[i] - rewindow.out0[i]), Math.abs(cheap.delta[i] - rewindow.delta[i]));
  return [cheap.calibration, rewindow.calibration, max];
}"""

_COMPARE_WITH_NIIVUE_JS = """() => {
  const v = window.__viewer;
  function compare(nv, snap) {
    nv.drawScene();  // read back in the same task (no preserveDrawingBuffer)
    const gl = nv.gl, W = gl.drawingBufferWidth, H = gl.drawingBufferHeight, raw = new Uint8Array(W * H * 4);
    gl.readPixels(0, 0, W, H, gl.RGBA, gl.UNSIGNED_BYTE, raw);
    if (!snap || snap.length !== raw.length) return {size: false};
    let sum = 0, off = 0, max = 0, lit = 0, n = 0;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) {
      const a = raw[((H - 1 - y) * W + x) * 4 + c], b = snap[(y * W + x) * 4 + c], d = Math.abs(a - b);
      sum += d; n += 1; if (d > 8) off += 1; if (d > max) max = d; if (b > 40) lit += 1;
    }
    return {size: true, mean: sum / n, off: off / n, max: max, lit: lit / n};
  }
  return {study: compare(v.nv, v.snapStudy), ref: v.nvR ? compare(v.nvR, v.snapRef) : null,
          shown: getComputedStyle(document.getElementById('fp-study')).display,
          wl: `${Math.round(v.S.level * 10) / 10},${Math.round(v.S.width * 10) / 10}`};
}"""


def test_wl_drag_fast_path_shows_niivues_picture_and_talks_to_the_server_once(room, page):
    """A real mouse W/L drag is drawn by the 2D-canvas fast path (fastwindow.js) in the study and the
    linked reference; its picture is NiiVue's own redraw after mouseup (heat map, outline, labels
    included), no state message goes to the server during the drag, one after, with the same W/L."""
    _open(page, _study_url(room))
    frames, frame = _viewer(page)
    box = frames.locator("#cv-study").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    sent = frame.evaluate("() => window.__viewer.stats.sent")
    start = _view(frame)
    for i in range(6):
        page.mouse.move(cx + 9 * (i + 1), cy - 4 * (i + 1))
        page.wait_for_timeout(120)
    during = frame.evaluate(_SNAPSHOT_FAST_JS)
    assert during["study"] == "block" and during["ref"] == "block"  # both viewers on the fast path
    assert frame.evaluate("() => window.__viewer.stats.sent") == sent  # no server round trip mid-drag
    assert _view(frame)["width"] > start["width"] and _view(frame)["level"] < start["level"]
    page.mouse.up()
    after = frame.evaluate(_COMPARE_WITH_NIIVUE_JS)
    assert after["shown"] == "none" and after["wl"] == during["wl"]  # NiiVue took over, same window
    assert frame.evaluate("() => window.__viewer.stats.fastDrags") == 1
    # calibrated from NiiVue's colour texture (black / white texels), not by two re-windows of the volume
    assert frame.evaluate("() => window.__viewer.stats.fastCalibration") == [{"study": "texture", "ref": "texture"}]
    # the colour map's own entries (used where the window leaves no voxel black or white) are those texels
    texels = frame.evaluate("() => { const f = window.__viewer.fast().study;"
                            " return [f.texels, window.FastWindow.colormapTexels(f.nv, f.nv.volumes[0])]; }")
    assert texels[0] == texels[1], texels
    for name in ("study", "ref"):
        diff = after[name]
        assert diff["size"], f"{name}: fast canvas and GL canvas differ in size"
        assert diff["lit"] > 0.05, f"{name}: the compared picture is (nearly) black"
        # the same picture, pixel for pixel: at most the 8-bit rounding of NiiVue's colour texture apart
        assert diff["max"] <= 4 and diff["mean"] < 0.5, f"{name}: {diff}"
    deadline = time.monotonic() + 20
    while frame.evaluate("() => window.__viewer.stats.sent") == sent and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert frame.evaluate("() => window.__viewer.stats.sent") == sent + 1
    _wait_url(page, "wl", during["wl"])  # the W/L the server keeps is the one the reader saw
    _settle(page)

    # a second drag on the same view reuses the calibration frames: still NiiVue's picture
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(3):
        page.mouse.move(cx - 7 * (i + 1), cy + 5 * (i + 1))
        page.wait_for_timeout(120)
    again = frame.evaluate(_SNAPSHOT_FAST_JS)
    page.mouse.up()
    after = frame.evaluate(_COMPARE_WITH_NIIVUE_JS)
    assert again["study"] == "block" and after["wl"] == again["wl"] != during["wl"]
    assert frame.evaluate("() => window.__viewer.stats.fastDrags") == 2
    assert all(after[name]["max"] <= 4 and after[name]["mean"] < 0.5 for name in ("study", "ref")), after

    # the cheap calibration gives the frames NiiVue's two re-windows give, at this window (black and
    # white texels found in the texture) and at one wider than the values (none: the colour map's entries)
    assert frame.evaluate(_CALIBRATIONS_AGREE_JS) == ["texture", "rewindow", 0]
    frame.evaluate("() => { const v = window.__viewer, img = v.nv.volumes[0].img; let lo = Infinity, hi = -Infinity;"
                   " for (const x of img) { lo = Math.min(lo, x); hi = Math.max(hi, x); }"
                   " v.S.level = (lo + hi) / 2; v.S.width = 1.6 * (hi - lo) + 10; }")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 1, cy)
    page.mouse.up()  # NiiVue now has the wide window
    assert frame.evaluate(_CALIBRATIONS_AGREE_JS) == ["colormap", "rewindow", 0]
    _no_exception(page)


def _drag(page, cx: float, cy: float, dx: float, dy: float, steps: int = 6) -> None:
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(steps):
        page.mouse.move(cx + dx * (i + 1) / steps, cy + dy * (i + 1) / steps)
        page.wait_for_timeout(120)


def test_wl_drag_to_a_window_far_below_the_values_shows_niivues_picture(room, page):
    """A drag to a window reaching far below the values (about level 200, width 3766 on the phantom:
    its lowest value, air, windowed to a dark grey, not black) is still drawn by the fast path, and
    its picture is NiiVue's own redraw after mouseup.  Where NiiVue's windowing of the image layer
    leaves the plain linear map (here: a negative colour map set on the image), no fast canvas is
    shown: the drag re-windows through NiiVue itself, the picture the reader then sees is NiiVue's."""
    _open(page, _study_url(room))
    frames, frame = _viewer(page)
    box = frames.locator("#cv-study").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    assert frame.evaluate("() => window.FastWindow.disagreements(window.__viewer.nv, window.__viewer.nv.volumes[0])") == []
    _drag(page, cx, cy, 505, 22)  # width +~3700 (the viewer's sensitivity is ~7.3 per pixel)
    during = frame.evaluate(_SNAPSHOT_FAST_JS)
    assert during["study"] == "block" and during["ref"] == "block", during
    page.mouse.up()
    after = frame.evaluate(_COMPARE_WITH_NIIVUE_JS)
    assert after["wl"] == during["wl"]
    level, width = (float(x) for x in during["wl"].split(","))
    lo = level - width / 2
    air = frame.evaluate("() => { let m = Infinity; for (const x of window.__viewer.nv.volumes[0].img) m = Math.min(m, x); return m; }")
    assert width > 3000 and lo < air - 500, (during["wl"], air)  # far below the lowest value (air)
    assert 255 * (air - lo) / width > 30  # the air is a visible grey in this window, not black
    for name in ("study", "ref"):
        diff = after[name]
        assert diff["size"] and diff["lit"] > 0.05, f"{name}: {diff}"
        assert diff["max"] <= 4 and diff["mean"] < 0.5, f"{name}: {diff}"
    _settle(page)

    # the fallback: a negative colour map on the image layer (NiiVue's shader then windows the
    # voxels below zero through it) -- no fast canvas, NiiVue re-windows per move
    frame.evaluate("() => { const nv = window.__viewer.nv; nv.volumes[0].colormapNegative = 'winter';"
                   " nv.refreshLayers(nv.volumes[0], 0); nv.drawScene(); }")
    assert frame.evaluate("() => window.FastWindow.disagreements(window.__viewer.nv, window.__viewer.nv.volumes[0])") \
        == ["negative colour map"]
    drags = frame.evaluate("() => window.__viewer.stats.fastDrags")
    _drag(page, cx, cy, -60, 10, steps=3)
    shown = frame.evaluate("() => getComputedStyle(document.getElementById('fp-study')).display")
    wl = frame.evaluate("() => { const v = window.__viewer, vol = v.nv.volumes[0];"
                        " return [v.S.level - v.S.width / 2, vol.cal_min, v.S.level + v.S.width / 2, vol.cal_max]; }")
    page.mouse.up()
    assert shown == "none"  # never the fast path's picture
    assert wl[0] == pytest.approx(wl[1]) and wl[2] == pytest.approx(wl[3])  # NiiVue itself has the drag's window
    assert frame.evaluate("() => window.__viewer.stats.fastDrags") == drags
    _no_exception(page)
