"""Login through a real OpenID Connect provider, in a real browser.

The test starts npm ``oidc-provider`` (tests/idp/idp.mjs, Debian's Node) and ``adaptclip-med
dashboard --oidc-metadata-url ...`` on free loopback ports, then drives headless Chromium:

* a radiologist logs in at the provider, signs off, and the audit row names the ID token's
  issuer + subject; the page never requests anything from outside this machine;
* a user without the sign-off role sees a disabled form, and a forced click is refused by the
  server (nothing stored);
* log out ends the session (the provider's end-session page, back through /oauth2callback);
* an edited or forged identity cookie gives no identity;
* a page served under another host name (DNS rebinding) gets nothing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, STEP_TIMEOUT, VIEWPORT, _free_port, _settle, _wait_healthy

IDP_DIR = Path(__file__).resolve().parents[1] / "idp"
NODE = shutil.which("node")
ACCOUNTS = {"rad": {"name": "Dr Rad", "email": "rad@hospital.test", "groups": ["radiologist"]},
            "reader": {"name": "Dr Reader", "email": "reader@hospital.test", "groups": ["students"]}}
CLIENT = {"client_id": "adaptclip-dashboard", "client_secret": "test-only-client-secret"}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(NODE is None or not (IDP_DIR / "node_modules" / "oidc-provider").is_dir(),
                                 reason="the test identity provider is installed by .ci/run (npm ci in tests/idp)")]


@dataclass
class Site:
    url: str
    issuer: str
    output: Path
    study_key: str


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"{log.name}: exited early:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"{log.name}: no '{text}' in time")


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_data, tiny_options):
    """A scored study in a results folder, the identity provider and the dashboard (review only)."""
    from adaptclip_med.review.discovery import discover
    from adaptclip_med.review.paths import AllowedRoots
    from adaptclip_med.volume.bank_builder import build_reference_bank
    from adaptclip_med.volume.pipeline import make_scorer, model_for
    from adaptclip_med.volume.study_run import score_study

    base = tmp_path_factory.mktemp("login")
    bank = build_reference_bank("ct-head", list(demo_data.reference_dirs), model_for(tiny_options),
                                tiny_options.preprocessing(), base / "banks", batch_size=8, calibrate=False)
    results = base / "results"
    outputs = score_study(demo_data.study_dir, results / "s1", make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None)))
    key = next(c.study_key for c in discover(AllowedRoots([demo_data.root])).candidates if "LESIONS" in c.description)
    (results / "worklist.csv").write_text("study_key,score,top_slice,series,status,output,notes\n"
                                          f"{key},{outputs.score},{outputs.top_slices[0]},CT,done,s1,\n")

    idp_port, port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{port}"
    config = base / "idp.json"
    config.write_text(json.dumps({"port": idp_port, "client": {**CLIENT, "redirect_uri": f"{url}/oauth2callback"},
                                  "accounts": ACCOUNTS}))
    idp = _start([NODE, str(IDP_DIR / "idp.mjs"), str(config)], base / "idp.log")
    dashboard = None
    try:
        _wait_for_line(base / "idp.log", "READY", idp)
        issuer = f"http://127.0.0.1:{idp_port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "ADAPTCLIP_MED_OIDC_CLIENT_SECRET": CLIENT["client_secret"]}
        dashboard = _start([sys.executable, "-m", "adaptclip_med.cli.main", "dashboard", "--output", str(base / "review"),
                            "--results", str(results), "--data-root", str(demo_data.root), "--port", str(port),
                            "--oidc-metadata-url", f"{issuer}/.well-known/openid-configuration",
                            "--oidc-client-id", CLIENT["client_id"], "--oidc-scope", "openid profile email groups"],
                           base / "dashboard.log", env)
        _wait_healthy(url, dashboard)
        yield Site(url, issuer, base / "review", key)
    finally:
        if dashboard is not None:
            _stop(dashboard)
        _stop(idp)


@pytest.fixture(scope="module")
def chromium(playwright_driver):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT)
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


def _log_in(page, site: Site, login: str) -> None:
    page.goto(site.url)
    _settle(page)
    page.locator(".st-key-login button").first.click()
    page.wait_for_url(f"{site.issuer}/**")
    page.locator("input[name='login']").fill(login)
    page.locator("input[name='password']").fill("any")
    page.locator("button[type='submit']").click()
    page.locator("button[type='submit']").filter(has_text="Continue").click()  # consent
    page.wait_for_url(f"{site.url}/**")
    _settle(page)
    page.get_by_text(ACCOUNTS[login]["name"]).first.wait_for()


def _open_study(page, site: Site) -> None:
    page.goto(f"{site.url}/?study={site.study_key}")
    _settle(page)
    page.locator(".st-key-sign button").first.wait_for()


def _outside_requests(page, site: Site) -> list[str]:
    """Requests made by the dashboard's pages (not the provider's own login page) to other hosts."""
    seen: list[tuple[str, str]] = page.context._adaptclip_requests  # type: ignore[attr-defined]
    return [url for url, origin in seen if origin.startswith(site.url) and urlparse(url).hostname not in ("127.0.0.1", None)
            and not url.startswith(("data:", "blob:", "about:"))]


def _origin(request) -> str:
    try:
        return request.frame.url
    except Exception:  # a service-worker request has no frame
        return ""


@pytest.fixture()
def context(chromium):
    context = chromium.new_context(viewport=VIEWPORT)
    context._adaptclip_requests = []  # type: ignore[attr-defined]
    context.on("request", lambda request: context._adaptclip_requests.append((request.url, _origin(request))))
    yield context
    context.close()


def test_radiologist_logs_in_signs_off_and_logs_out(site, context):
    from playwright.sync_api import expect

    from adaptclip_med.review.store import ReviewStore

    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    _log_in(page, site, "rad")
    top = page.locator("[data-testid='stMain']").inner_text()
    assert "Dr Rad <rad@hospital.test> (sign off)" in top and "local, unauthenticated" not in top

    _open_study(page, site)
    page.locator(".st-key-decide_confirmed button").first.click()
    _settle(page)
    page.locator("[class*='st-key-so_notes_'] textarea").fill("signed by the logged-in radiologist")
    page.locator(".st-key-sign button").first.click()
    _settle(page)
    page.get_by_text("by Dr Rad").first.wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "signed-in.png"))  # who is signed in, the sign-off they made

    store = ReviewStore.in_folder(site.output)
    review = store.review(site.study_key)
    assert (review.decision, review.reviewer, review.reviewer_id) == ("confirmed", "Dr Rad <rad@hospital.test>",
                                                                      f"{site.issuer}#rad")
    row = [e for e in store.audit_trail(site.study_key) if e.action == "sign_off"][-1]
    assert row.reviewer_id == f"{site.issuer}#rad" and row.after["reviewer_id"] == f"{site.issuer}#rad"
    assert store.verify().ok
    assert _outside_requests(page, site) == []  # fonts, icons, favicon: all served by this machine

    page.locator(".st-key-logout button").first.click()
    page.wait_for_url(f"{site.issuer}/**")
    page.locator("button[autofocus], button[name='logout']").first.click()  # the provider's "sign out?" page
    page.wait_for_url(f"{site.url}/**")
    _settle(page)
    expect(page.locator(".st-key-login button").first).to_be_visible()
    assert "Dr Rad" not in page.locator("[data-testid='stMain']").inner_text()
    page.goto(f"{site.url}/?study={site.study_key}")  # no way back in without logging in again
    _settle(page)
    expect(page.locator(".st-key-login button").first).to_be_visible()
    assert page.locator(".st-key-sign").count() == 0


def test_a_user_without_the_sign_off_role_cannot_sign_off(site, context):
    from playwright.sync_api import expect

    from adaptclip_med.review.store import ReviewStore

    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    _log_in(page, site, "reader")
    assert "Dr Reader <reader@hospital.test> (read only)" in page.locator("[data-testid='stMain']").inner_text()
    _open_study(page, site)
    store = ReviewStore.in_folder(site.output)
    before = store.review(site.study_key)
    expect(page.locator(".st-key-sign button").first).to_be_disabled()  # UI
    expect(page.locator(".st-key-decide_normal button").first).to_be_disabled()
    page.get_by_text("Read only: Dr Reader").first.wait_for()
    page.screenshot(path=str(SHOTS / "read-only.png"))
    # server: a forced click (the disabled attribute removed in the page) and the hotkeys store nothing
    page.evaluate("() => document.querySelectorAll('.st-key-sign button, .st-key-decide_normal button')"
                  ".forEach(b => { b.disabled = false; b.removeAttribute('disabled'); })")
    page.locator(".st-key-decide_normal button").first.click(force=True)
    _settle(page)
    page.locator(".st-key-sign button").first.click(force=True)
    _settle(page)
    page.keyboard.press("3")
    page.keyboard.press("Control+Enter")
    _settle(page)
    after = store.review(site.study_key)
    assert after == before  # nothing stored for the reader
    assert not any(e.reviewer_id.endswith("#reader") for e in store.audit_trail(site.study_key))
    assert _outside_requests(page, site) == []


def _signed_cookie(context, name: str) -> dict:
    found = [c for c in context.cookies() if c["name"] == name]
    assert found, f"no {name} cookie after login"
    return found[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _edited(value: str, change) -> str:
    """The signed identity cookie (itsdangerous: ``.b64(zlib(json)).timestamp.signature``) with its
    claims changed and the original timestamp and signature kept."""
    compressed = value.startswith(".")
    payload, stamp, signature = value.lstrip(".").split(".")
    raw = _unb64(payload)
    outer = json.loads(zlib.decompress(raw) if compressed else raw)
    nested = isinstance(outer, str)  # Streamlit signs the JSON text of the claims
    changed = change(json.loads(outer) if nested else outer)
    data = json.dumps(json.dumps(changed) if nested else changed, separators=(",", ":")).encode()
    return ("." + _b64(zlib.compress(data)) if compressed else _b64(data)) + f".{stamp}.{signature}"


def test_an_edited_or_forged_identity_cookie_gives_no_identity(site, chromium, context):
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    _log_in(page, site, "reader")
    cookie = _signed_cookie(context, "_streamlit_user")

    def promote(claims):
        return {**claims, "sub": "rad", "name": "Dr Rad", "groups": ["radiologist"]}

    claims = {"iss": site.issuer, "sub": "rad", "name": "Dr Rad", "groups": ["radiologist"], "is_logged_in": True,
              "provider": "default"}
    value = cookie["value"]
    variants = {"edited claims, original signature": _edited(value, promote),
                "unsigned claims": _b64(json.dumps(claims).encode()),
                "claims with a made-up signature": _b64(json.dumps(claims).encode()) + "." + value.split(".")[-2] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "wrong signature": value[: value.rindex(".") + 1] + ("A" * len(value.split(".")[-1]))}
    for label, value in variants.items():
        other = chromium.new_context(viewport=VIEWPORT)
        other.add_cookies([{"name": "_streamlit_user", "value": value, "url": site.url}])
        forged = other.new_page()
        forged.set_default_timeout(STEP_TIMEOUT)
        forged.goto(f"{site.url}/?study={site.study_key}")
        _settle(forged)
        forged.locator(".st-key-login button").first.wait_for()  # the login page: no identity
        text = forged.locator("[data-testid='stMain']").inner_text()
        assert "Dr Rad" not in text and forged.locator(".st-key-sign").count() == 0, label
        other.close()


def test_a_page_under_another_host_name_gets_nothing(site, playwright_driver):
    """DNS rebinding: a name that resolves to this machine is not the configured host."""
    port = urlparse(site.url).port
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(STEP_TIMEOUT)
        page.goto(f"http://rebind.test:{port}/?study={site.study_key}")
        _settle(page)
        page.get_by_text("Host not allowed").first.wait_for()
        assert page.locator(".st-key-login").count() == 0 and page.locator(".st-key-sign").count() == 0
    finally:
        browser.close()
