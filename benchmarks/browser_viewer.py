"""Browser benchmark of the reading-room viewer (not a timed test): headless Debian Chromium against
``adaptclip-med dashboard --demo`` with the demo lesion study scored.

Measures, inside the viewer's iframe (its own instrumentation, ``window.__viewer.stats``):

* wheel step -> the new slice drawn (event handler start to the next animation frame after the
  NiiVue draw call), median of N steps;
* W/L drag -> repaint (first mousemove of a frame to the next animation frame after the image
  layer is re-windowed and drawn), median of N drag moves; and the linked reference viewer, which
  follows one task later (its own re-window + draw to the next animation frame);
* presented frame: the same two changes timed to the SECOND animation frame, i.e. until the
  compositor produced the frame that holds them (what a reader sees; with ``--disable-gpu`` this
  is software GL, so it measures the CPU, not the viewer);
* the same re-windowing with the GL work forced to completion (``gl.finish()``): the image layer
  alone (what a drag does), every layer (``updateGLVolume``, what a drag did before), a plain redraw;
* first render: volumes decoded and drawn (from the render message), and page load to ready;
* what a user feels on a W/L drag: each real mouse move (Playwright, through Chromium's input
  pipeline) to the second animation frame after it, measured from the driving process (so it
  includes the DevTools round trip, an upper bound), and how many state messages went to the
  server during the drag (none: the state goes back once, after mouseup), and in the page from the
  event's own ``timeStamp`` (no DevTools round trip); measured in one page for NiiVue re-windowing
  per move (the fast path off), the previous fast path (``--previous-fast-path REV``: fastwindow.js
  as of that git revision), the current fast path calibrated by two NiiVue re-windows (the first
  mousedown's baseline) and the current one, each with its preparation at mousedown and its own
  work per move (``wl_drags``);
* where a presented W/L frame's time goes: a plain redraw, NiiVue's re-window, the fast-path render.

    python -m benchmarks.browser_viewer [--steps 40] [--shape 24,256,256] [--previous-fast-path REV] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.measure import write_results
from tests.support.scored_demo import prepare_scored_demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--headless"]
RESULTS = Path(__file__).resolve().parent / "results" / "browser_viewer.json"

# Both changes timed to the frame that presents them: await a frame, change, await two frames.
PRESENTED_JS = """async ([kind, n]) => {
  const v = window.__viewer, nv = v.nv;
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const out = [];
  for (let i = 0; i < n; i++) {
    await frame();
    const t = performance.now();
    const pane = document.getElementById('pane-study');
    if (kind === 'wheel') {
      pane.dispatchEvent(new WheelEvent('wheel', {deltaY: (i % 10) < 5 ? 100 : -100, bubbles: true, cancelable: true}));
    } else {
      const r = pane.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
      pane.dispatchEvent(new MouseEvent('mousedown', {clientX: x, clientY: y, button: 0, bubbles: true}));
      window.dispatchEvent(new MouseEvent('mousemove', {clientX: x + ((i % 2) ? 8 : -8), clientY: y + 4, bubbles: true}));
      window.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    }
    await frame(); await frame();
    out.push(performance.now() - t);
  }
  return out;
}"""


# What each way of re-windowing costs once the GL work has actually run (gl.finish()), so the figure
# does not depend on where the compositor happens to wait: the image layer alone (what a drag now
# does), every layer (NiiVue's updateGLVolume, what a drag did before), and a plain redraw.
GL_COST_JS = """(n) => {
  const nv = window.__viewer.nv, gl = nv.gl, vol = nv.volumes[0];
  const lo = vol.cal_min, hi = vol.cal_max, out = {image_layer: [], all_layers: [], draw_only: []};
  for (let i = 0; i < n; i++) {
    const d = (i % 2 ? 1 : -1) * 0.05 * (hi - lo);
    gl.finish();
    let t = performance.now();
    vol.cal_min = lo + d; vol.cal_max = hi + d; nv.refreshLayers(vol, 0); nv.drawScene(); gl.finish();
    out.image_layer.push(performance.now() - t);
    t = performance.now();
    vol.cal_min = lo - d; vol.cal_max = hi - d; nv.updateGLVolume(); gl.finish();
    out.all_layers.push(performance.now() - t);
    t = performance.now();
    nv.drawScene(); gl.finish();
    out.draw_only.push(performance.now() - t);
  }
  vol.cal_min = lo; vol.cal_max = hi; nv.refreshLayers(vol, 0); nv.drawScene();
  return out;
}"""


# Where a presented W/L frame's time goes (in-page, each change to the second animation frame after
# it): a plain NiiVue redraw, NiiVue re-windowing the study's image layer (its whole 3D colour
# texture) and redrawing, and the fast path's CPU re-window of the slice into its 2D canvas.
PRESENTED_PARTS_JS = """async (n) => {
  const v = window.__viewer, nv = v.nv, vol = nv.volumes[0];
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const lo = vol.cal_min, hi = vol.cal_max, out = {draw_only: [], niivue_rewindow_study: [], fast_path_render: []};
  const time = async (list, fn) => { await frame(); const t = performance.now(); fn(); await frame(); await frame();
                                     list.push(performance.now() - t); };
  for (let i = 0; i < n; i++) {
    const d = (i % 2 ? 1 : -1) * 0.05 * (hi - lo);
    await time(out.draw_only, () => nv.drawScene());
    await time(out.niivue_rewindow_study, () => { vol.cal_min = lo + d; vol.cal_max = hi + d; nv.refreshLayers(vol, 0); nv.drawScene(); });
  }
  vol.cal_min = lo; vol.cal_max = hi; nv.refreshLayers(vol, 0); nv.drawScene();
  const fast = new window.FastWindow(nv, document.getElementById('fp-study'));
  fast.prepare();
  for (let i = 0; i < n; i++) {
    const d = (i % 2 ? 1 : -1) * 0.05 * (hi - lo);
    await time(out.fast_path_render, () => fast.render(lo + d, hi + d));
  }
  fast.finish(); nv.refreshLayers(vol, 0); nv.drawScene();
  return out;
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(output: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "adaptclip_med.cli.main", "dashboard", "--demo", "--output", str(output),
                               "--port", str(port), "--references", "demo-ct-head"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit("dashboard did not start")


#: Resolves once the frame after the next one is presented: the input before it is on screen; gives the
#: time then and the timeStamp of the last mousemove the fast path drew (the page's own clock).
TWO_FRAMES_JS = """() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(
  () => r({now: performance.now(), event: window.__viewer.stats.lastMoveEvent === undefined ? null : window.__viewer.stats.lastMoveEvent}))))"""

#: Loads another fastwindow.js (the previous commit's) as window.FastWindowPrevious, the current one kept.
LOAD_PREVIOUS_JS = """(src) => { const cur = window.FastWindow; (0, eval)(src); window.FastWindowPrevious = window.FastWindow;
  window.FastWindowCurrent = cur; window.FastWindow = cur; }"""


def _summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))], 1),
            "min_ms": round(min(values), 1), "n": len(values)}


@dataclass
class Drag:
    """One real W/L drag's figures."""

    felt: list[float]  # per move: input event sent -> frame holding it presented (driver side)
    in_page: list[float]  # per move: the event's timeStamp -> that frame (the page's clock), fast path only
    sent_during: int
    sent_after: int
    prepare_ms: float  # the mousedown's fast-path preparation (0 when the fast path is off)
    calibration: Any  # how the fast path calibrated (texture / rewindow / previous / reused)
    handler: list[float]  # the viewer's handler -> next animation frame, per move
    work: list[float]  # the fast path's own work per move (both viewers' renders), ms


def _real_drag(page, frame, cx: float, cy: float, steps: int) -> Drag:
    """One W/L drag of real mouse moves: per move, input event sent -> the frame holding it presented
    (two animation frames); state messages during the drag and after mouseup; the mousedown's
    fast-path preparation (ms, 0 when the fast path is off)."""
    page.mouse.move(cx, cy)
    prepared = frame.evaluate("() => window.__viewer.stats.fastPrepare.length")
    frame.evaluate("() => { window.__viewer.stats.wl.splice(0); window.__viewer.stats.lastMoveEvent = undefined;"
                   " (window.__viewer.stats.fastRender || []).splice(0); }")
    page.mouse.down()
    sent_before = frame.evaluate("() => window.__viewer.stats.sent")
    felt, in_page, last_event = [], [], None
    for i in range(steps):
        t0 = time.perf_counter()
        page.mouse.move(cx + (i % 7) * 6 + 3, cy + (i % 5) * 4 + 2)
        shown = frame.evaluate(TWO_FRAMES_JS)
        felt.append((time.perf_counter() - t0) * 1000)
        if shown["event"] is not None and shown["event"] != last_event:
            in_page.append(shown["now"] - shown["event"])
            last_event = shown["event"]
        page.wait_for_timeout(500 if i % 10 == 9 else 60)  # some pauses longer than the state debounce
    sent_during = frame.evaluate("() => window.__viewer.stats.sent") - sent_before
    page.mouse.up()
    deadline = time.monotonic() + 60  # the state goes back debounced after mouseup (slow under load)
    while frame.evaluate("() => window.__viewer.stats.sent") == sent_before + sent_during and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    page.wait_for_timeout(1000)  # and only once
    sent_after = frame.evaluate("() => window.__viewer.stats.sent") - sent_before - sent_during
    prepare = frame.evaluate(f"() => window.__viewer.stats.fastPrepare.slice({prepared})")
    calibration = frame.evaluate(f"() => window.__viewer.stats.fastCalibration.slice({prepared})")
    handler = frame.evaluate("() => window.__viewer.stats.wl.splice(0)")
    work = frame.evaluate("() => (window.__viewer.stats.fastRender || []).splice(0)")
    return Drag(felt, in_page, sent_during, sent_after, round(prepare[0], 1) if prepare else 0.0,
                calibration[0] if calibration else None, handler, work)


def _drag_figures(drag: Drag) -> dict:
    return {"input_to_presented_frame": _summary(drag.felt),
            "input_event_timestamp_to_presented_frame_in_page": _summary(drag.in_page) if drag.in_page else None,
            "handler_to_next_animation_frame": _summary(drag.handler) if drag.handler else None,
            "fast_path_work_per_move": _summary(drag.work) if drag.work else None,
            "prepare_at_mousedown_ms": drag.prepare_ms, "calibration": drag.calibration,
            "state_messages_during_drag": drag.sent_during, "state_messages_after_mouseup": drag.sent_after}


def measure(url: str, steps: int, previous_source: str | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(180_000)
        started = time.perf_counter()
        page.goto(url)
        print("page loaded", flush=True)
        frames = page.frame_locator("iframe[title*='adaptclip_med_viewer']")
        frames.locator("body[data-ready='1']").wait_for()
        load_to_ready = (time.perf_counter() - started) * 1000
        frame = next(f for f in page.frames if "adaptclip_med_viewer" in f.url)
        print("viewer ready", flush=True)
        page.wait_for_timeout(1500)
        box = frames.locator("#pane-study").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        for i in range(steps):  # real input events, through Playwright
            page.mouse.wheel(0, 100 if (i % 10) < 5 else -100)
            page.wait_for_timeout(60)
        # Before: NiiVue re-windows per move (fast path off); the previous fast path (when given); the
        # current one calibrated by two re-windows (the first mousedown's baseline); the current one.
        drags = {}
        frame.evaluate("() => { window.__viewer.fastOff = true; }")
        drags["niivue_rewindow_per_move"] = _real_drag(page, frame, cx, cy, steps)
        frame.evaluate("() => { window.__viewer.stats.wlRef.splice(0); window.__viewer.fastOff = false; }")
        if previous_source:
            frame.evaluate(LOAD_PREVIOUS_JS, previous_source)
            frame.evaluate("() => { window.FastWindow = window.FastWindowPrevious; window.__viewer.resetFast(); }")
            drags["previous_fast_path"] = _real_drag(page, frame, cx, cy, steps)
            frame.evaluate("() => { window.FastWindow = window.FastWindowCurrent; }")
        frame.evaluate("() => { window.__viewer.resetFast(); window.FastWindow.forceRewindow = true; }")
        drags["fast_path_calibrated_by_rewindow"] = _real_drag(page, frame, cx, cy, steps)
        frame.evaluate("() => { window.__viewer.resetFast(); window.FastWindow.forceRewindow = false;"
                       " window.__viewer.stats.wlRef.splice(0); }")
        drags["fast_path"] = _real_drag(page, frame, cx, cy, steps)
        after = drags["fast_path"]
        stats = frame.evaluate("() => ({wheel: window.__viewer.stats.wheel, wlRef: window.__viewer.stats.wlRef,"
                               " firstRender: window.__viewer.stats.firstRender, shape: window.__viewer.nv.volumes[0].dims})")
        print("interactive figures taken", flush=True)
        presented_wheel = frame.evaluate(PRESENTED_JS, ["wheel", max(10, steps // 2)])
        presented_wl = frame.evaluate(PRESENTED_JS, ["wl", max(10, steps // 2)])
        gl_cost = frame.evaluate(GL_COST_JS, max(10, steps // 2))
        parts = frame.evaluate(PRESENTED_PARTS_JS, max(10, steps // 2))
        browser.close()
    return {"wheel_to_slice_drawn": _summary(stats["wheel"]), "wl_drag_to_repaint": _summary(after.handler),
            "wl_real_input_to_presented_frame": _summary(after.felt),
            "wl_input_event_timestamp_to_presented_frame_in_page": _summary(after.in_page) if after.in_page else None,
            "wl_real_input_to_presented_frame_niivue_rewindow": _summary(drags["niivue_rewindow_per_move"].felt),
            "wl_fast_path_prepare_at_mousedown_ms": after.prepare_ms,
            "wl_drag_to_repaint_niivue_rewindow": _summary(drags["niivue_rewindow_per_move"].handler),
            "wl_drags": {name: _drag_figures(drag) for name, drag in drags.items()},
            **{f"presented_{name}": _summary(values) for name, values in parts.items()},
            "wl_state_messages_to_server_during_drag": after.sent_during, "wl_state_messages_after_mouseup": after.sent_after,
            "wl_drag_reference_follows": _summary(stats["wlRef"]) if stats["wlRef"] else None,
            "wheel_to_frame_presented": _summary(presented_wheel), "wl_to_frame_presented": _summary(presented_wl),
            "gl_finished_window_image_layer": _summary(gl_cost["image_layer"]),
            "gl_finished_window_all_layers": _summary(gl_cost["all_layers"]),
            "gl_finished_draw_only": _summary(gl_cost["draw_only"]),
            "first_render_ms": round(stats["firstRender"], 1), "page_load_to_viewer_ready_ms": round(load_to_ready, 1),
            "volume_dims": stats["shape"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--shape", default="24,128,128",
                        help="slices,rows,columns of the demo lesion study (e.g. 24,256,256: the in-plane size `dashboard --demo` shows; the phantom needs >= ~20 slices for its lesions)")
    parser.add_argument("--previous-fast-path", metavar="REV",
                        help="also drag with fastwindow.js as of this git revision (e.g. a commit before a change): before/after in one page")
    args = parser.parse_args()
    previous = None
    if args.previous_fast_path:
        previous = subprocess.run(["git", "show", f"{args.previous_fast_path}:adaptclip_med/dashboard/frontend/fastwindow.js"],
                                  check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent).stdout
    shape = tuple(int(n) for n in args.shape.split(","))
    with tempfile.TemporaryDirectory(prefix="browser-bench-") as folder:
        output = Path(folder) / "review"
        key = prepare_scored_demo(output, n_references=3, shape=shape).key
        port = _free_port()
        server = _serve(output, port)
        try:
            figures = measure(f"http://127.0.0.1:{port}/?study={key}", args.steps, previous)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    load = os.getloadavg()
    result = {"benchmark": "browser_viewer", "browser": "Debian Chromium, headless, --disable-gpu (SwiftShader WebGL2)",
              "viewport": "1440x900", "cpu_count": os.cpu_count(), "load_average_1m": round(load[0], 2),
              "machine": platform.machine(), "goal_ms": 50, **figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
