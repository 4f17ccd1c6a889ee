/* adaptclip-med reading-room viewer: a Streamlit component (components v1 protocol, no build step)
 * over NiiVue (niivue.umd.js, BSD-2-Clause, shipped next to this file).
 *
 * The study volume, the anomaly map, the mask outline and the matched reference scan arrive ONCE per
 * study (base64 NIfTI in the render args); scrolling, windowing, zoom/pan and blending then happen here,
 * with no server round trip.  The view state goes back to Python, debounced, with setComponentValue
 * (the page keeps it in the URL so a reload restores it); a Python-side jump (score curve click on the
 * server, deep link) comes in as `jump` with a nonce.
 *
 * Mouse: wheel = slice, left drag = window/level, shift/middle drag = pan, ctrl+wheel = zoom.
 * A W/L drag is drawn by the 2D-canvas fast path (fastwindow.js: NiiVue's re-window rebuilds whole 3D
 * textures, seconds per move in software GL); NiiVue redraws once on mouseup.
 * Keys: arrows / PageUp / PageDown / Home / End = slice, v = next view, h = heat map, o = outline,
 * +/- = zoom, 0 = reset zoom, w = next window preset, d = distance tool, e = ellipse ROI tool.
 * Other keys go to the page (decision hotkeys).
 *
 * Measurements (distance: two clicks; ellipse ROI: two clicks at opposite corners of its box) live on
 * the slicing view, in canonical voxel coordinates (z, y, x); they go back to Python with the view
 * state, where review/measurements.py recomputes every number from the geometry before keeping it.
 */
(function () {
  "use strict";
  const NV = window.niivue;
  const VIEWS = ["axial", "coronal", "sagittal"];
  const SLICE_TYPE = { axial: NV.SLICE_TYPE.AXIAL, coronal: NV.SLICE_TYPE.CORONAL, sagittal: NV.SLICE_TYPE.SAGITTAL };
  const DEBOUNCE_MS = 450;
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ Streamlit protocol
  function send(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data || {}), "*");
  }
  function setValue(value) { stats.sent += 1; send("streamlit:setComponentValue", { value: value, dataType: "json" }); }
  function setHeight(h) { send("streamlit:setFrameHeight", { height: h }); }

  // ------------------------------------------------------------------ state
  const S = { z: 0, y: 0, x: 0, view: "axial", level: 40, width: 80, zoom: 1, panX: 0, panY: 0,
              opacity: 0.45, heat: true, outline: true, preset: null };
  let A = null;            // last render args
  let studyId = null, refId = null, jumpNonce = null, stateNonce = null;
  let nvS = null, nvR = null, refReady = false, loading = null;
  let sendTimer = null, dirty = false;
  const stats = { wheel: [], wl: [], wlRef: [], firstRender: null, t0: performance.now(), paints: 0, lastPaint: 0, sent: 0,
                  fastPrepare: [], fastCalibration: [], fastRender: [], fastDrags: 0 };
  // Measurement tools: tool = null | "distance" | "ellipse"; pending = the first click of the next one.
  const M = { tool: null, pending: null, items: [] };
  // resetFast: the benchmark swaps in another FastWindow (the previous one, for its before/after figures)
  window.__viewer = { S: S, M: M, stats: stats, ready: false, fast: () => ({ study: fastS, ref: fastR }),
                      resetFast: () => { if (fastS) fastS.finish(); if (fastR) fastR.finish(); fastS = null; fastR = null; } };

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function shape() { return A.shape; }  // canonical [Z, Y, X]

  function mmOf(aff, z, y, x) {
    return [0, 1, 2].map((r) => aff[r][0] * z + aff[r][1] * y + aff[r][2] * x + aff[r][3]);
  }

  // ------------------------------------------------------------------ NiiVue set-up
  function makeNV(canvas) {
    const nv = new NV.Niivue({
      backColor: [0, 0, 0, 1], show3Dcrosshair: false, crosshairWidth: 0, isColorbar: false,
      isOrientationTextVisible: true, isRuler: false, textHeight: 0.045, dragAndDropEnabled: false,
      isRadiologicalConvention: true, multiplanarForceRender: false, isNearestInterpolation: false,
      scrollRequiresFocus: true, logLevel: "error", loadingText: "loading...",
    });
    nv.opts.dragMode = NV.DRAG_MODE.none;
    return nv.attachToCanvas(canvas, false).then(() => nv);  // no MSAA: cheap to composite, also in software GL
  }

  async function loadImage(b64, name, opts) {
    const img = await NV.NVImage.loadFromBase64(Object.assign({ base64: b64, name: name }, opts));
    return img;
  }

  async function loadStudy() {
    const t = performance.now();
    if (!nvS) { nvS = await makeNV($("cv-study")); window.__viewer.nv = nvS; }
    while (nvS.volumes.length) nvS.removeVolume(nvS.volumes[nvS.volumes.length - 1]);
    const v = A.volumes;
    const base = await loadImage(v.base, "study.nii.gz", { colormap: "gray", cal_min: S.level - S.width / 2,
                                                               cal_max: S.level + S.width / 2, trustCalMinMax: true });
    base.colorbarVisible = false;
    nvS.addVolume(base);
    const heat = await loadImage(v.map, "anomaly_map.nii.gz", { colormap: "warm", opacity: S.heat ? S.opacity : 0,
                                                                  cal_min: A.heat_range[0], cal_max: A.heat_range[1], trustCalMinMax: true });
    heat.colorbarVisible = true;
    nvS.addVolume(heat);
    const outline = await loadImage(v.outline, "mask_outline.nii.gz", { colormap: "green", opacity: S.outline ? 1 : 0,
                                                                         cal_min: 0.5, cal_max: 1, trustCalMinMax: true });
    outline.colorbarVisible = false;
    nvS.addVolume(outline);
    nvS.opts.isColorbar = true;
    nvS.opts.isRuler = true;
    nvS.setInterpolation(false);
    stats.firstRender = performance.now() - t;
  }

  async function loadRef() {
    refReady = false;
    if (!A.ref) { $("pane-ref").style.display = "none"; return; }
    $("pane-ref").style.display = "";
    if (!nvR) { nvR = await makeNV($("cv-ref")); window.__viewer.nvR = nvR; }
    while (nvR.volumes.length) nvR.removeVolume(nvR.volumes[nvR.volumes.length - 1]);
    const img = await loadImage(A.ref.volume, "reference.nii.gz", { colormap: "gray", cal_min: S.level - S.width / 2,
                                                                    cal_max: S.level + S.width / 2, trustCalMinMax: true });
    img.colorbarVisible = false;
    nvR.addVolume(img);
    nvR.setInterpolation(false);
    refReady = true;
  }

  // ------------------------------------------------------------------ drawing
  function viewAxis() { return A.view_axes[S.view]; }

  // Re-windowing re-colours ONE layer: the image (layer 0).  NiiVue's updateGLVolume() would rebuild
  // every layer (image, heat map, outline) in both viewers; refreshLayers(volume, 0) rebuilds the
  // image texture only and leaves the overlay texture as it is (what NiiVue's own windowing drag does).
  function windowLayer(nv) {
    const vol = nv && nv.volumes[0];
    const lo = S.level - S.width / 2, hi = S.level + S.width / 2;
    if (!vol || (vol.cal_min === lo && vol.cal_max === hi)) return false;
    vol.cal_min = lo; vol.cal_max = hi;
    nv.refreshLayers(vol, 0);
    return true;
  }

  function applyWindow() {
    windowLayer(nvS);
    if (refReady) windowLayer(nvR);
  }

  // During a drag the reference follows one frame behind the study, at most once per frame, so the
  // study's repaint never waits for the second viewer.
  let refWindowPending = false;
  function followWindowInReference() {
    if (!refReady || refWindowPending) return;
    refWindowPending = true;
    setTimeout(() => {
      refWindowPending = false;
      const t0 = performance.now();
      if (windowLayer(nvR)) { drawRef(); paintedAfter(t0, stats.wlRef); }
    }, 0);
  }

  function refCursor() {
    const [Z, Y, X] = shape();
    const [rz, ry, rx] = A.ref.shape;
    const mapped = A.ref.slices[S.z];
    return [mapped === null || mapped === undefined ? Math.round(S.z * (rz - 1) / Math.max(Z - 1, 1)) : mapped,
            Math.round(S.y * (ry - 1) / Math.max(Y - 1, 1)), Math.round(S.x * (rx - 1) / Math.max(X - 1, 1))];
  }

  function draw(withRef) {
    if (!nvS || !nvS.volumes.length) return;
    const [Z, Y, X] = shape();
    S.z = clamp(S.z, 0, Z - 1); S.y = clamp(S.y, 0, Y - 1); S.x = clamp(S.x, 0, X - 1);
    const mm = mmOf(A.affine, S.z, S.y, S.x);
    nvS.scene.crosshairPos = nvS.mm2frac(mm);
    nvS.scene.pan2Dxyzmm = [S.panX, S.panY, 0, S.zoom];
    nvS.drawScene();
    if (withRef !== false) drawRef();
    hud(mm);
    drawMeasurements();
    drawStrip();
    stats.paints += 1;
  }

  function drawRef() {
    if (!refReady) return;
    const [rz, ry, rx] = refCursor();
    nvR.scene.crosshairPos = nvR.mm2frac(mmOf(A.ref.affine, rz, ry, rx));
    nvR.scene.pan2Dxyzmm = [S.panX, S.panY, 0, S.zoom];
    nvR.drawScene();
  }

  // ------------------------------------------------------------------ value under the cursor
  // The image value (HU for CT: the NIfTI carries the slope) at the voxel under the mouse, read from
  // NiiVue's own copy of the volume: no server round trip.
  let probe = "";
  function probeAt(e) {
    if (!nvS || !nvS.volumes.length || drag) return;
    const rect = $("cv-study").getBoundingClientRect(), dpr = nvS.uiData.dpr || window.devicePixelRatio || 1;
    const frac = nvS.canvasPos2frac([(e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr]);
    if (!frac || frac[0] < 0) { probe = ""; hud(mmOf(A.affine, S.z, S.y, S.x)); return; }
    const vol = nvS.volumes[0], vox = vol.mm2vox(nvS.frac2mm(frac));
    if (vox.some((v, i) => v < 0 || (vol.hdr && v >= vol.hdr.dims[i + 1]))) { probe = ""; }
    else {
      const value = vol.getValue(vox[0], vox[1], vox[2]);
      const map = nvS.volumes[1] ? nvS.volumes[1].getValue(vox[0], vox[1], vox[2]) : null;
      probe = `value ${fmt(value, 0)}${A.units ? " " + A.units : ""}` + (map === null ? "" : `  map ${fmt(map, 3)}`);
      window.__viewer.probe = { vox: Array.from(vox), value: value, map: map };
    }
    hud(mmOf(A.affine, S.z, S.y, S.x));
  }

  // ------------------------------------------------------------------ measurements
  function solve3(m, b) {  // m (3x3) \ b by Cramer's rule: canonical voxel from millimetres
    const det = (a) => a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                       a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    const d = det(m);
    return [0, 1, 2].map((c) => det(m.map((row, r) => row.map((v, k) => (k === c ? b[r] : v)))) / d);
  }
  function voxOfEvent(e) {
    const rect = $("cv-study").getBoundingClientRect(), dpr = nvS.uiData.dpr || window.devicePixelRatio || 1;
    const frac = nvS.canvasPos2frac([(e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr]);
    if (!frac || frac[0] < 0) return null;
    const mm = nvS.frac2mm(frac), aff = A.affine;
    const v = solve3([0, 1, 2].map((r) => [aff[r][0], aff[r][1], aff[r][2]]), [0, 1, 2].map((r) => mm[r] - aff[r][3]));
    const [, Y, X] = shape();
    if (v[1] < -0.5 || v[1] > Y - 0.5 || v[2] < -0.5 || v[2] > X - 0.5) return null;
    return [Math.round(v[1] * 100) / 100, Math.round(v[2] * 100) / 100];
  }
  function col(c) { return [0, 1, 2].map((r) => A.affine[r][c]); }
  function norm(v) { return Math.hypot(v[0], v[1], v[2]); }
  function lengthMm(p, q) {
    const cy = col(1), cx = col(2), dy = q[0] - p[0], dx = q[1] - p[1];
    return norm([0, 1, 2].map((r) => cy[r] * dy + cx[r] * dx));
  }
  function pixelAreaMm2() {
    const a = col(1), b = col(2);
    return norm([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]);
  }
  // The same rule as review/measurements.py: pixels whose centres lie inside the inscribed ellipse.
  function ellipseStats(z, p, q) {
    const cy = (p[0] + q[0]) / 2, cx = (p[1] + q[1]) / 2, ry = Math.abs(q[0] - p[0]) / 2, rx = Math.abs(q[1] - p[1]) / 2;
    const area = Math.PI * ry * rx * pixelAreaMm2(), vol = nvS.volumes[0];
    if (ry <= 0 || rx <= 0) return { area: area, n: 0, mean: null, sd: null };
    let n = 0, sum = 0, sq = 0;
    for (let y = Math.max(0, Math.ceil(cy - ry)); y <= Math.min(shape()[1] - 1, Math.floor(cy + ry)); y++) {
      for (let x = Math.max(0, Math.ceil(cx - rx)); x <= Math.min(shape()[2] - 1, Math.floor(cx + rx)); x++) {
        if (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 > 1) continue;
        const vox = vol.mm2vox(mmOf(A.affine, z, y, x));  // NiiVue's own voxel order (it may reorient the file)
        const v = vol.getValue(vox[0], vox[1], vox[2]);
        if (!isFinite(v)) continue;
        n += 1; sum += v; sq += v * v;
      }
    }
    const mean = n ? sum / n : null;
    return { area: area, n: n, mean: mean, sd: n ? Math.sqrt(Math.max(sq / n - mean * mean, 0)) : null };
  }
  function measureLabel(m, i) {
    const units = A.units ? " " + A.units : "";
    if (m.kind === "distance") return `M${i + 1} slice ${m.z + 1}: ${fmt(lengthMm(m.points[0], m.points[1]), 1)} mm`;
    const s = ellipseStats(m.z, m.points[0], m.points[1]);
    return `M${i + 1} slice ${m.z + 1}: mean ${fmt(s.mean, 1)}${units} SD ${fmt(s.sd, 1)}  ${fmt(s.area, 1)} mm²`;
  }
  function canvasOf(z, y, x) {
    const dpr = nvS.uiData.dpr || window.devicePixelRatio || 1;
    const pos = nvS.frac2canvasPos(nvS.mm2frac(mmOf(A.affine, z, y, x)));
    return pos ? [pos[0] / dpr, pos[1] / dpr] : null;
  }
  function drawMeasurements() {
    const ov = $("ov-study"), cv = $("cv-study"), w = cv.clientWidth, h = cv.clientHeight;
    if (ov.width !== w) ov.width = w;
    if (ov.height !== h) ov.height = h;
    ov.style.width = w + "px"; ov.style.height = h + "px";
    const g = ov.getContext("2d");
    g.clearRect(0, 0, w, h);
    const onSlice = viewAxis() === 0;
    const lines = [];
    M.items.forEach((m, i) => {
      const label = measureLabel(m, i);
      lines.push(label);
      if (!onSlice || m.z !== S.z) return;
      const a = canvasOf(m.z, m.points[0][0], m.points[0][1]), b = canvasOf(m.z, m.points[1][0], m.points[1][1]);
      if (!a || !b) return;
      g.strokeStyle = "#ffd37a"; g.fillStyle = "#ffd37a"; g.lineWidth = 1.5; g.font = "12px system-ui";
      g.beginPath();
      if (m.kind === "distance") { g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); }
      else { g.ellipse((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, Math.abs(b[0] - a[0]) / 2, Math.abs(b[1] - a[1]) / 2, 0, 0, 2 * Math.PI); }
      g.stroke();
      g.fillText(`M${i + 1}`, Math.max(a[0], b[0]) + 4, Math.min(a[1], b[1]));
    });
    if (M.pending && onSlice && M.pending.z === S.z) {
      const a = canvasOf(M.pending.z, M.pending.point[0], M.pending.point[1]);
      if (a) { g.fillStyle = "#ffd37a"; g.fillRect(a[0] - 2, a[1] - 2, 4, 4); }
    }
    const tool = M.tool ? `${M.tool === "distance" ? "distance" : "ellipse ROI"} tool: ` +
      (onSlice ? (M.pending ? "click the second point" : "click the first point") : "switch to the slicing view") : "";
    $("meas").textContent = (tool ? tool + "\n" : "") + lines.join("\n");
    window.__viewer.measurements = lines;
  }
  function measureClick(e) {
    if (viewAxis() !== 0) { drawMeasurements(); return; }
    const p = voxOfEvent(e);
    if (!p) return;
    if (!M.pending || M.pending.z !== S.z) { M.pending = { z: S.z, point: p }; drawMeasurements(); return; }
    M.items.push({ kind: M.tool, z: S.z, points: [M.pending.point, p] });
    M.pending = null;
    drawMeasurements();
    changed();
  }
  function setTool(tool) {
    M.tool = M.tool === tool ? null : tool;
    M.pending = null;
    toolbar();
    drawMeasurements();
  }
  function clearMeasurements() { M.items = []; M.pending = null; drawMeasurements(); changed(); }

  // ------------------------------------------------------------------ shortcuts overlay (?)
  const SHORTCUTS = [
    ["wheel, arrows, PageUp/PageDown", "previous / next slice"], ["Home / End", "first / last slice"],
    ["left drag", "window / level"], ["shift or middle drag", "pan"], ["ctrl + wheel, + / -", "zoom"],
    ["0", "reset zoom"], ["v", "next view (axial, coronal, sagittal)"], ["w", "next window preset"],
    ["h", "heat map on / off"], ["o", "outline on / off"], ["d / e", "distance / ellipse ROI tool on / off (two clicks)"], ["1 / 2 / 3", "decision: confirmed / false positive / normal"],
    ["Ctrl + Enter", "sign off"], ["U", "next unread study"], ["?", "this list"]];
  function toggleHelp(show) {
    const box = $("help");
    const on = show === undefined ? box.style.display !== "block" : show;
    if (on && !box.dataset.filled) {
      box.innerHTML = "<b>Shortcuts</b> (press ? or Esc to close)<table>" +
        SHORTCUTS.map(([k, v]) => `<tr><td><kbd>${k}</kbd></td><td>${v}</td></tr>`).join("") + "</table>";
      box.dataset.filled = "1";
    }
    box.style.display = on ? "block" : "none";
  }

  function fmt(v, d) { return (v === null || v === undefined || !isFinite(v)) ? "-" : Number(v).toFixed(d); }

  function hud(mm) {
    const [Z, Y, X] = shape();
    const ax = viewAxis();
    const idx = [S.z, S.y, S.x][ax], n = [Z, Y, X][ax];
    const world = A.world_axis[ax];
    const score = A.slice_scores[S.z];
    const inst = ax === 0 && A.instances && A.instances[S.z] !== null && A.instances[S.z] !== undefined ? `  (instance ${A.instances[S.z]})` : "";
    $("hud-study-tl").textContent = `${A.labels.study}\n${S.view}  slice ${idx + 1} / ${n}${inst}\n` +
      `pos ${"XYZ"[world]} ${fmt(mm[world], 1)} mm`;
    const context = (A.context || []).join("\n");
    $("hud-study-tr").textContent = (context ? context + "\n" : "") + `W ${fmt(S.width, 0)}  L ${fmt(S.level, 0)}` +
      (S.preset ? `\n${S.preset}` : "") + (probe ? `\n${probe}` : "");
    $("hud-study-bl").textContent = `zoom ${fmt(S.zoom, 2)}x`;
    // A slice score is only ever shown beside the SLICE score threshold (a map value is not comparable).
    const sliceRef = A.slice_threshold === null || A.slice_threshold === undefined ? "" : `\nslice score threshold ${fmt(A.slice_threshold, 3)}`;
    $("hud-study-br").textContent = ax === 0 ? `slice score ${fmt(score, 3)}${sliceRef}\noutline: pixel threshold ${fmt(A.threshold, 3)}` : "";
    $("hud-study-tl").dataset.slice = String(S.z);
    if (refReady) {
      const [rz] = refCursor();
      const how = A.ref.recorded && A.ref.recorded[S.z] ? "used by the model" : "nearest by body position";
      $("hud-ref-tl").textContent = `${A.ref.label}\nslice ${rz + 1} / ${A.ref.shape[0]} (${how})`;
      $("hud-ref-bl").textContent = `W ${fmt(S.width, 0)}  L ${fmt(S.level, 0)}  zoom ${fmt(S.zoom, 2)}x`;
      $("hud-ref-tl").dataset.slice = String(rz);
    }
  }

  function drawStrip() {
    const c = $("strip"), w = c.clientWidth, h = c.clientHeight;
    if (c.width !== w) c.width = w;
    if (c.height !== h) c.height = h;
    const g = c.getContext("2d"), sc = A.slice_scores, Z = sc.length;
    g.clearRect(0, 0, w, h);
    const finite = sc.filter((v) => v !== null && isFinite(v));
    const top = Math.max(...finite, 1e-6), bottom = Math.min(...finite, top);
    const span = Math.max(top - bottom, 1e-6);
    const bw = w / Z, tops = new Set(A.top_slices);
    for (let i = 0; i < Z; i++) {
      const v = sc[i];
      if (v === null || !isFinite(v)) continue;
      const bh = Math.max(2, (0.15 + 0.85 * (v - bottom) / span) * (h - 14));  // min..max of this study
      g.fillStyle = tops.has(i) ? "#e4572e" : "#5b8def";
      g.fillRect(i * bw + 0.5, h - bh, Math.max(1, bw - 1), bh);
    }
    g.fillStyle = "#f5b700";
    g.fillRect((S.z + 0.5) * bw - 1, 0, 2, h);
    g.fillStyle = "#aaa";
    g.font = "11px system-ui";
    g.fillText(`slice scores ${fmt(bottom, 3)}–${fmt(top, 3)} (click to jump; red: highest; yellow: current)`, 4, 11);
  }

  // ------------------------------------------------------------------ changes
  // No server round trip while a mouse button is down: a slow drag used to outlast the debounce, so
  // Streamlit reran mid-drag and greyed the viewer out.  The state goes back once, after mouseup.
  function changed() {
    dirty = true;
    clearTimeout(sendTimer);
    if (!drag) sendTimer = setTimeout(flush, DEBOUNCE_MS);
    window.__viewer.S = S;
  }
  function flush() {
    if (!dirty) return;
    dirty = false;
    setValue({ slice: S.z, view: S.view, level: Math.round(S.level * 10) / 10, width: Math.round(S.width * 10) / 10,
               zoom: Math.round(S.zoom * 100) / 100, opacity: S.opacity, heat: S.heat, outline: S.outline,
               preset: S.preset, ref: A.ref ? A.ref.scan : null,
               measurements: M.items.map((m) => ({ kind: m.kind, z: m.z, points: m.points })) });
  }

  function paintedAfter(t0, list) {
    requestAnimationFrame(() => { const t = performance.now(); list.push(t - t0); stats.lastPaint = t; });
  }

  function step(delta, t0) {
    const ax = viewAxis(), key = ["z", "y", "x"][ax];
    const n = shape()[ax];
    const next = clamp(S[key] + delta, 0, n - 1);
    if (next === S[key]) return;
    S[key] = next;
    draw();
    paintedAfter(t0 === undefined ? performance.now() : t0, stats.wheel);
    changed();
  }

  function goTo(z) {
    S.z = clamp(z, 0, shape()[0] - 1);
    if (S.view !== VIEWS[A.slicing_view]) setView(VIEWS[A.slicing_view]);
    draw();
    changed();
  }

  function setView(view) {
    S.view = view;
    nvS.setSliceType(SLICE_TYPE[view]);
    if (refReady) nvR.setSliceType(SLICE_TYPE[view]);
    S.panX = 0; S.panY = 0;
    toolbar();
    draw();
    changed();
  }

  function setWindow(level, width, preset) {
    S.level = level; S.width = Math.max(1, width); S.preset = preset || null;
    applyWindow();
    draw();
    changed();
  }

  function setOverlay() {
    if (!nvS || nvS.volumes.length < 3) return;
    nvS.volumes[1].opacity = S.heat ? S.opacity : 0;
    nvS.volumes[2].opacity = S.outline ? 1 : 0;
    nvS.updateGLVolume();
    toolbar();
    draw();
    changed();
  }

  function setZoom(z) { S.zoom = clamp(z, 0.5, 8); draw(); changed(); }

  // ------------------------------------------------------------------ toolbar
  function button(label, title, on, fn, cls) {
    const b = document.createElement("button");
    b.textContent = label; b.title = title;
    if (on) b.classList.add("on");
    if (cls) b.classList.add(cls);
    b.addEventListener("click", (e) => { e.preventDefault(); fn(); });
    return b;
  }
  function sep() { const s = document.createElement("span"); s.className = "sep"; return s; }

  function toolbar() {
    const bar = $("bar");
    bar.innerHTML = "";
    VIEWS.forEach((v) => { const b = button(v[0].toUpperCase() + v.slice(1), `${v} view (v)`, S.view === v, () => setView(v));
                           b.dataset.view = v; bar.appendChild(b); });
    bar.appendChild(sep());
    const presets = document.createElement("select");
    presets.id = "preset"; presets.title = "window preset (w); drag on the image to change level/width";
    const custom = document.createElement("option"); custom.textContent = "custom W/L"; custom.value = "";
    presets.appendChild(custom);
    Object.keys(A.presets).forEach((name) => {
      const o = document.createElement("option"); o.value = name; o.textContent = name;
      if (S.preset === name) o.selected = true;
      presets.appendChild(o);
    });
    presets.addEventListener("change", () => { const p = A.presets[presets.value]; if (p) setWindow(p[0], p[1], presets.value); });
    bar.appendChild(presets);
    bar.appendChild(sep());
    bar.appendChild(button("Heat map", "anomaly heat map (h)", S.heat, () => { S.heat = !S.heat; setOverlay(); }));
    bar.appendChild(button("Outline", `mask outline at pixel threshold ${fmt(A.threshold, 3)} (o)`, S.outline,
                           () => { S.outline = !S.outline; setOverlay(); }));
    const op = document.createElement("label");
    op.title = "heat-map opacity";
    op.innerHTML = `opacity <input id="opacity" type="range" min="0" max="1" step="0.05" value="${S.opacity}" style="width:70px">`;
    op.querySelector("input").addEventListener("input", (e) => { S.opacity = Number(e.target.value); if (S.heat) setOverlay(); });
    bar.appendChild(op);
    bar.appendChild(button("Reset zoom", "zoom 1x, no pan (0)", false, () => { S.panX = 0; S.panY = 0; setZoom(1); }));
    bar.appendChild(sep());
    const dist = button("Distance", "distance tool: two clicks on the slice (d)", M.tool === "distance", () => setTool("distance"));
    dist.dataset.tool = "distance"; bar.appendChild(dist);
    const roi = button("Ellipse ROI", "ellipse ROI: two clicks at opposite corners; mean / SD / area (e)", M.tool === "ellipse",
                       () => setTool("ellipse"));
    roi.dataset.tool = "ellipse"; bar.appendChild(roi);
    if (M.items.length) bar.appendChild(button("Clear measurements", "remove all measurements", false, () => { clearMeasurements(); toolbar(); }));
    if (A.top_slices.length) {
      bar.appendChild(sep());
      A.top_slices.forEach((z, i) => { const b = button(`#${i + 1} · ${z + 1}`, `highest slice ${i + 1}: slice ${z + 1}`, false,
                                                         () => goTo(z), "chip"); b.dataset.top = String(i + 1); bar.appendChild(b); });
    }
  }

  // ------------------------------------------------------------------ W/L drag fast path
  // During a W/L drag the study (and the linked reference) are re-windowed on the CPU into a 2D canvas
  // over each GL canvas (fastwindow.js: why, and why the picture is NiiVue's); NiiVue redraws once
  // on mouseup.  Without a picture to start from (no slice under the canvas) the drag falls back to
  // NiiVue's own re-windowing per move.
  let fastS = null, fastR = null;
  function startFastWindow() {
    if (!nvS || !nvS.volumes.length || !window.FastWindow || window.__viewer.fastOff) return false;  // fastOff: the benchmark's baseline
    const t0 = performance.now();
    fastS = fastS || new window.FastWindow(nvS, $("fp-study"));
    const key = JSON.stringify([studyId, refId, A.outline_id, A.heat_range, S.z, S.y, S.x, S.view, S.zoom, S.panX, S.panY,
                                S.opacity, S.heat, S.outline]);
    if (!fastS.prepare(key)) return false;
    const lo = S.level - S.width / 2, hi = S.level + S.width / 2;
    fastS.render(lo, hi);  // in the same task: the calibration frames are never presented
    if (refReady) {
      fastR = fastR && fastR.nv === nvR ? fastR : new window.FastWindow(nvR, $("fp-ref"));
      if (fastR.prepare(key)) fastR.render(lo, hi);
    }
    stats.fastPrepare.push(performance.now() - t0);
    stats.fastCalibration.push({ study: fastS.calibration || "previous", ref: fastR && fastR.ready ? fastR.calibration || "previous" : null });
    return true;
  }
  function endFastWindow() {
    const lo = S.level - S.width / 2, hi = S.level + S.width / 2;
    [[nvS, fastS], [refReady ? nvR : null, fastR]].forEach(([nv, fast]) => {
      if (!nv || !fast || !fast.ready) return;
      nv.volumes[0].cal_min = lo; nv.volumes[0].cal_max = hi;
      nv.refreshLayers(nv.volumes[0], 0);  // NiiVue's own picture for the final window, once
    });
    draw();
    if (fastS) fastS.finish();
    if (fastR) fastR.finish();
    stats.fastDrags += 1;
  }

  // ------------------------------------------------------------------ input
  let drag = null, wheelAcc = 0;
  function inputOn(pane, isRef) {
    pane.addEventListener("wheel", (e) => {
      e.preventDefault(); e.stopPropagation();
      const t0 = performance.now();
      if (e.ctrlKey) { setZoom(S.zoom * (e.deltaY < 0 ? 1.15 : 1 / 1.15)); return; }
      wheelAcc += e.deltaMode === 0 ? e.deltaY : e.deltaY * 40;
      if (Math.abs(wheelAcc) < 20) return;
      const d = wheelAcc > 0 ? 1 : -1;
      wheelAcc = 0;
      step(d, t0);
    }, { capture: true, passive: false });
    pane.addEventListener("mousedown", (e) => {
      e.preventDefault(); e.stopPropagation();
      $(isRef ? "cv-ref" : "cv-study").focus();
      if (!isRef && M.tool && e.button === 0 && !e.shiftKey) { measureClick(e); toolbar(); return; }
      const pan = e.shiftKey || e.button === 1;
      drag = { pan: pan, x: e.clientX, y: e.clientY, sx: e.screenX, sy: e.screenY, level: S.level, width: S.width, panX: S.panX, panY: S.panY, w: pane.clientWidth };
      clearTimeout(sendTimer);  // a state change from before the drag goes back after mouseup (dirty stays set)
      if (!pan) drag.fast = startFastWindow();
    }, { capture: true });
    pane.addEventListener("contextmenu", (e) => { e.preventDefault(); e.stopPropagation(); }, { capture: true });
    ["mouseup", "click", "dblclick", "pointerdown", "pointerup", "pointermove", "touchstart", "touchmove"].forEach((t) =>
      pane.addEventListener(t, (e) => { e.stopPropagation(); }, { capture: true }));
  }
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.pan) {
      const mmPerPx = A.fov_mm / (drag.w * S.zoom);
      S.panX = drag.panX + dx * mmPerPx; S.panY = drag.panY - dy * mmPerPx;
      draw(); changed();
      return;
    }
    if (drag.fast) {  // on the fast path: pointerrawupdate draws, mousemove only where it is missing
      if (!drag.raw) fastMove(e);
      return;
    }
    // Chromium delivers mousemove aligned to animation frames (one coalesced event per frame), so
    // the re-window runs right here, like a wheel step: timed the same way, from the event to the
    // next animation frame.
    const t0 = performance.now();
    const k = A.wl_sensitivity;
    S.width = Math.max(1, drag.width + dx * k); S.level = drag.level + dy * k; S.preset = null;
    if (windowLayer(nvS)) {
      draw(false);
      paintedAfter(t0, stats.wl);
      followWindowInReference();
    }
    changed();
  }, true);
  // A fast-path move: both viewers re-windowed into their 2D canvases, in the input's own task.
  function fastMove(e) {
    const t0 = performance.now();
    const k = A.wl_sensitivity;
    // screen coordinates: Chromium gives a pointerrawupdate in an iframe the top page's client coordinates
    S.width = Math.max(1, drag.width + (e.screenX - drag.sx) * k); S.level = drag.level + (e.screenY - drag.sy) * k; S.preset = null;
    stats.lastMoveEvent = e.timeStamp;  // the benchmark: input event -> frame presented, in the page
    fastS.render(S.level - S.width / 2, S.level + S.width / 2);
    const t1 = performance.now();
    if (fastR && fastR.ready) { fastR.render(S.level - S.width / 2, S.level + S.width / 2); paintedAfter(t1, stats.wlRef); }
    stats.fastRender.push(performance.now() - t0);  // the work itself (both viewers)
    hud(mmOf(A.affine, S.z, S.y, S.x));
    paintedAfter(t0, stats.wl);
    changed();
  }
  // pointerrawupdate (Chromium, secure contexts such as 127.0.0.1) comes as soon as the input
  // arrives instead of waiting for the next animation frame's mousemove; at most one render per
  // frame goes out from it, a later move in the same frame is drawn in that frame's animation callback.
  window.addEventListener("pointerrawupdate", (e) => {
    if (!drag || !drag.fast || drag.pan || !(e.buttons & 1)) return;
    drag.raw = true;
    if (drag.frameDue) { drag.pending = e; return; }
    fastMove(e);
    drag.frameDue = true;
    const d = drag;
    requestAnimationFrame(() => {
      d.frameDue = false;
      if (d.pending && drag === d) { const p = d.pending; d.pending = null; fastMove(p); }
    });
  }, true);
  window.addEventListener("mouseup", () => {
    if (drag && drag.pending) { fastMove(drag.pending); drag.pending = null; }  // the last move counts
    if (drag && drag.fast) endFastWindow();
    if (drag && !drag.pan) toolbar();
    const wasDragging = !!drag;
    drag = null;
    if (wasDragging && dirty) { clearTimeout(sendTimer); sendTimer = setTimeout(flush, DEBOUNCE_MS); }
  }, true);

  $("strip").addEventListener("click", (e) => {
    const r = $("strip").getBoundingClientRect();
    goTo(Math.floor(((e.clientX - r.left) / r.width) * shape()[0]));
  });

  function isTyping(t) {
    return t && (t.tagName === "INPUT" && t.type !== "range" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function onKey(e, fromParent) {
    if (!A || !nvS || isTyping(e.target) || e.altKey || e.metaKey) return false;
    const t0 = performance.now();
    const k = e.key;
    const steps = { ArrowDown: 1, ArrowRight: 1, PageDown: 1, ArrowUp: -1, ArrowLeft: -1, PageUp: -1 };
    if (e.ctrlKey) return false;
    if (k in steps) { step(steps[k], t0); }
    else if (k === "Home") { const ax = viewAxis(); S[["z", "y", "x"][ax]] = 0; draw(); changed(); }
    else if (k === "End") { const ax = viewAxis(); S[["z", "y", "x"][ax]] = shape()[ax] - 1; draw(); changed(); }
    else if (k === "v") { setView(VIEWS[(VIEWS.indexOf(S.view) + 1) % 3]); }
    else if (k === "h") { S.heat = !S.heat; setOverlay(); }
    else if (k === "o") { S.outline = !S.outline; setOverlay(); }
    else if (k === "d") { setTool("distance"); }
    else if (k === "e") { setTool("ellipse"); }
    else if (k === "Escape" && M.tool) { setTool(M.tool); }
    else if (k === "+" || k === "=") { setZoom(S.zoom * 1.25); }
    else if (k === "-") { setZoom(S.zoom / 1.25); }
    else if (k === "0") { S.panX = 0; S.panY = 0; setZoom(1); }
    else if (k === "?") { toggleHelp(); }
    else if (k === "Escape" && $("help").style.display === "block") { toggleHelp(false); }
    else if (k === "w") {
      const names = Object.keys(A.presets), i = (names.indexOf(S.preset) + 1) % names.length;
      setWindow(A.presets[names[i]][0], A.presets[names[i]][1], names[i]); toolbar();
    } else {
      if (!fromParent) forward(e);  // decision hotkeys live on the page
      return false;
    }
    e.preventDefault(); e.stopPropagation();
    return true;
  }
  function forward(e) {
    try {
      const init = { key: e.key, code: e.code, keyCode: e.keyCode, which: e.which, shiftKey: e.shiftKey, ctrlKey: e.ctrlKey,
                     altKey: e.altKey, metaKey: e.metaKey, bubbles: true, cancelable: true };
      window.parent.document.dispatchEvent(new window.parent.KeyboardEvent("keydown", init));
    } catch (err) { /* not same-origin: hotkeys need the focus on the page */ }
  }
  document.addEventListener("keydown", (e) => onKey(e, false), true);
  let parentHooked = false;
  function hookParent() {
    if (parentHooked) return;
    try {
      const handler = (e) => { if (!e.isTrusted) return; if (document.hasFocus()) return; onKey(e, true); };
      window.parent.document.addEventListener("keydown", handler, true);
      window.addEventListener("unload", () => window.parent.document.removeEventListener("keydown", handler, true));
      parentHooked = true;
    } catch (err) { /* cross-origin parent: keys work while the viewer has the focus */ }
  }

  // ------------------------------------------------------------------ layout
  function layout() {
    const H = A.height, W = document.body.clientWidth || window.innerWidth;
    const bar = $("bar").offsetHeight, strip = 64 + 4;
    const ph = Math.max(200, H - bar - strip - 6);
    const hasRef = !!A.ref;
    const sw = hasRef ? Math.floor((W - 6) * A.study_fraction) : W;
    $("pane-study").style.width = sw + "px"; $("pane-study").style.height = ph + "px";
    $("pane-ref").style.width = (W - 6 - sw) + "px"; $("pane-ref").style.height = ph + "px";
    if (nvS) nvS.resizeListener();
    if (nvR && hasRef) nvR.resizeListener();
    setHeight(H);
  }
  window.addEventListener("resize", () => { if (A) { layout(); draw(); } });

  // ------------------------------------------------------------------ render
  function adopt(st) {
    if (!st) return;
    ["z", "view", "level", "width", "zoom", "opacity", "heat", "outline", "preset"].forEach((k) => {
      if (st[k] !== undefined && st[k] !== null) S[k] = st[k];
    });
    if (!VIEWS.includes(S.view)) S.view = "axial";
    if (Array.isArray(st.measurements)) M.items = st.measurements.map((m) => ({ kind: m.kind, z: m.z, points: m.points }));
    const [Z, Y, X] = A.shape;
    if (st.y === undefined) S.y = Math.floor(Y / 2);
    if (st.x === undefined) S.x = Math.floor(X / 2);
  }

  async function render(args) {
    const prev = A;
    A = args;
    window.__viewer.affine = A.affine;
    hookParent();
    $("msg").style.display = "none";
    const newStudy = A.study_id !== studyId, newRef = (A.ref ? A.ref.id : null) !== refId;
    if (newStudy || A.state_nonce !== stateNonce) { adopt(A.state); stateNonce = A.state_nonce; }
    toolbar();
    layout();
    if (newStudy) {
      studyId = A.study_id; refId = null;
      loading = loadStudy();
    }
    try {
      await loading;
      if (newStudy || newRef) { refId = A.ref ? A.ref.id : null; await loadRef(); }
      if (newStudy || newRef) { nvS.setSliceType(SLICE_TYPE[S.view]); if (refReady) nvR.setSliceType(SLICE_TYPE[S.view]); }
      if (!newStudy && prev && (prev.heat_range[0] !== A.heat_range[0] || prev.heat_range[1] !== A.heat_range[1])) {
        nvS.volumes[1].cal_min = A.heat_range[0]; nvS.volumes[1].cal_max = A.heat_range[1];
      }
      if (!newStudy && prev && prev.outline_id !== A.outline_id) {
        nvS.removeVolume(nvS.volumes[2]);
        const o = await loadImage(A.volumes.outline, "mask_outline.nii.gz", { colormap: "green", opacity: S.outline ? 1 : 0,
                                                                              cal_min: 0.5, cal_max: 1, trustCalMinMax: true });
        o.colorbarVisible = false;
        nvS.addVolume(o);
      }
      if (A.jump && A.jump.nonce !== jumpNonce) {
        const first = jumpNonce === null && !newStudy;
        jumpNonce = A.jump.nonce;
        if (!first) { S.z = A.jump.slice; if (S.view !== VIEWS[A.slicing_view]) { S.view = VIEWS[A.slicing_view]; nvS.setSliceType(SLICE_TYPE[S.view]); } }
      }
      applyWindow();
      setOverlayQuiet();
      layout();
      draw();
      if (!window.__viewer.ready) { stats.firstPaint = performance.now() - stats.t0; }
      window.__viewer.ready = true;
      document.body.dataset.ready = "1";
    } catch (err) {
      $("msg").textContent = "The viewer could not display this study (" + (err && err.message ? err.message : "unknown error") + ").";
      $("msg").style.display = "block";
    }
  }
  function setOverlayQuiet() {
    if (!nvS || nvS.volumes.length < 3) return;
    nvS.volumes[1].opacity = S.heat ? S.opacity : 0;
    nvS.volumes[2].opacity = S.outline ? 1 : 0;
    nvS.updateGLVolume();
  }

  $("pane-study").addEventListener("mousemove", probeAt);
  $("pane-study").addEventListener("mouseleave", () => { probe = ""; if (A && nvS) hud(mmOf(A.affine, S.z, S.y, S.x)); });
  inputOn($("pane-study"), false);
  inputOn($("pane-ref"), true);
  window.addEventListener("message", (e) => {
    if (e.data && e.data.type === "streamlit:render") render(e.data.args);
  });
  send("streamlit:componentReady", { apiVersion: 1 });
})();
