/* adaptclip-med reading room: the window/level drag's 2D-canvas fast path.
 *
 * Why: with software GL (no GPU, SwiftShader) every NiiVue re-window rebuilds the whole 3D colour
 * texture of the image layer (all slices) in the GPU process; measured, a presented drag frame cost
 * 0.25-0.9 s although the viewer's own handler took 13-18 ms.  During a drag only the windowing
 * changes, and the picture on the canvas is, per canvas pixel, linear in the image layer's grey g:
 *     out = out0 + g * (out1 - out0)
 * where out0 / out1 are NiiVue's own frames with every voxel windowed to black / to white (the heat
 * map, the outline, the colour bar, the orientation labels and the ruler all stay in out0 / out1,
 * exactly as NiiVue blends them).  So at mousedown NiiVue draws those two frames once (read back),
 * the value of the voxel under every canvas pixel is looked up once (NiiVue's own canvas -> voxel
 * mapping, nearest sampling), and each move re-windows on the CPU into an ImageData drawn on a 2D
 * canvas laid over the GL canvas.  On mouseup NiiVue redraws once with the final window and the
 * 2D canvas is hidden: the test (tests/dashboard/test_browser.py) compares the two pictures.
 */
(function () {
  "use strict";

  // Canvas pixel centre (device pixels) -> NiiVue voxel, or null outside the slice tile.
  function voxAt(nv, vol, px, py) {
    const frac = nv.canvasPos2frac([px, py]);
    if (!frac || frac[0] < 0) return null;
    return vol.mm2vox(nv.frac2mm(frac), true);  // unrounded: the affine map needs the fractions
  }

  // The canvas -> voxel map is affine inside a slice tile: three samples give it exactly.
  function affineMap(nv, vol, W, H) {
    const step = 8;
    for (let gy = 0; gy < 16; gy++) {
      for (let gx = 0; gx < 16; gx++) {
        const px = (gx + 0.5) * W / 16, py = (gy + 0.5) * H / 16;
        const o = voxAt(nv, vol, px, py);
        if (!o) continue;
        const sx = px + step < W ? step : -step, sy = py + step < H ? step : -step;
        const a = voxAt(nv, vol, px + sx, py), b = voxAt(nv, vol, px, py + sy);
        if (!a || !b) continue;
        const dx = [0, 1, 2].map((i) => (a[i] - o[i]) / sx), dy = [0, 1, 2].map((i) => (b[i] - o[i]) / sy);
        const origin = [0, 1, 2].map((i) => o[i] - dx[i] * px - dy[i] * py);
        return { origin: origin, dx: dx, dy: dy };
      }
    }
    return null;
  }

  function readFrame(gl, W, H) {
    const raw = new Uint8Array(W * H * 4);
    gl.readPixels(0, 0, W, H, gl.RGBA, gl.UNSIGNED_BYTE, raw);
    const out = new Uint8Array(W * H * 4);  // GL rows run bottom-up; canvas rows top-down
    for (let y = 0; y < H; y++) out.set(raw.subarray((H - 1 - y) * W * 4, (H - y) * W * 4), y * W * 4);
    return out;
  }

  // One NiiVue viewer's fast path: prepare() at mousedown, render(lo, hi) per move, finish() after
  // NiiVue's own redraw.
  function FastWindow(nv, canvas2d) {
    this.nv = nv; this.canvas = canvas2d; this.ready = false;
  }

  // ``key`` names everything the picture depends on besides the window (slice, view, zoom, pan,
  // overlays, canvas size): a second drag on the same view reuses the calibration (no GL work).
  FastWindow.prototype.prepare = function (key) {
    const nv = this.nv, vol = nv.volumes[0], gl = nv.gl;
    const W = gl.drawingBufferWidth, H = gl.drawingBufferHeight;
    if (key && key === this.key && this.values && vol === this.vol && W === this.W && H === this.H) { this.ready = true; return true; }
    this.ready = false; this.key = null;
    if (!vol || !W || !H) return false;
    const map = affineMap(nv, vol, W, H);
    if (!map) return false;
    const dims = [vol.hdr.dims[1], vol.hdr.dims[2], vol.hdr.dims[3]];
    // NiiVue samples its 8-bit colour texture with (bi)linear filtering: each canvas pixel mixes the
    // greys of the (up to) four voxels around it in the slice plane; the axis across the slice
    // (constant over the canvas) is taken at its nearest voxel.
    const across = [0, 1, 2].find((i) => Math.abs(map.dx[i]) < 1e-9 && Math.abs(map.dy[i]) < 1e-9);
    if (across === undefined) return false;
    const [ax, ay] = [0, 1, 2].filter((i) => i !== across);
    const slice = Math.round(map.origin[across] + map.dx[across] * 0.5 + map.dy[across] * 0.5);
    if (slice < 0 || slice >= dims[across]) return false;
    const slot = new Map(), voxels = [];  // each voxel of the slice read once (NiiVue's getValue: slope, intercept)
    const tapOf = (i, j) => {
      const v = [0, 0, 0]; v[across] = slice; v[ax] = i; v[ay] = j;
      const key = i + dims[ax] * j;
      let k = slot.get(key);
      if (k === undefined) { k = voxels.length; slot.set(key, k); voxels.push(vol.getValue(v[0], v[1], v[2])); }
      return k;
    };
    const taps = new Int32Array(W * H * 4).fill(-1), weights = new Float32Array(W * H * 2);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const cx = x + 0.5, cy = y + 0.5;
        const u = map.origin[ax] + map.dx[ax] * cx + map.dy[ax] * cy, w = map.origin[ay] + map.dx[ay] * cx + map.dy[ay] * cy;
        if (u < -0.5 || w < -0.5 || u > dims[ax] - 0.5 || w > dims[ay] - 0.5) continue;
        const i0 = Math.floor(u), j0 = Math.floor(w), p = y * W + x;
        const i1 = Math.min(i0 + 1, dims[ax] - 1), j1 = Math.min(j0 + 1, dims[ay] - 1), ic = Math.max(i0, 0), jc = Math.max(j0, 0);
        taps[4 * p] = tapOf(ic, jc); taps[4 * p + 1] = tapOf(i1, jc); taps[4 * p + 2] = tapOf(ic, j1); taps[4 * p + 3] = tapOf(i1, j1);
        weights[2 * p] = u - i0; weights[2 * p + 1] = w - j0;
      }
    }
    const values = Float32Array.from(voxels);
    // NiiVue's own frames with the image layer all black and all white (every other layer as drawn)
    const lo = vol.cal_min, hi = vol.cal_max, far = 1e30;
    vol.cal_min = far; vol.cal_max = 2 * far; nv.refreshLayers(vol, 0); nv.drawScene();
    const out0 = readFrame(gl, W, H);
    vol.cal_min = -2 * far; vol.cal_max = -far; nv.refreshLayers(vol, 0); nv.drawScene();
    const out1 = readFrame(gl, W, H);
    vol.cal_min = lo; vol.cal_max = hi;  // NiiVue re-windows for real on mouseup (the GL canvas is covered till then)
    const delta = new Int16Array(W * H * 4);
    for (let i = 0; i < delta.length; i++) delta[i] = out1[i] - out0[i];
    if (this.canvas.width !== W) this.canvas.width = W;
    if (this.canvas.height !== H) this.canvas.height = H;
    this.W = W; this.H = H; this.values = values; this.grey = new Uint8Array(values.length);
    this.taps = taps; this.weights = weights; this.out0 = out0; this.delta = delta;
    this.image = new ImageData(W, H);
    this.vol = vol; this.key = key || null;
    this.ready = true;
    return true;
  };

  // The grey NiiVue's gray colour map gives each voxel under window [lo, hi] (8 bits, as its colour
  // texture holds it), mixed between the four voxels around each pixel, then blended as above.
  FastWindow.prototype.render = function (lo, hi) {
    if (!this.ready) return false;
    const values = this.values, grey = this.grey, taps = this.taps, weights = this.weights;
    const out0 = this.out0, delta = this.delta, px = this.image.data;
    const scale = 255 / Math.max(hi - lo, 1e-12);
    for (let k = 0; k < values.length; k++) {
      const v = values[k];
      const g = v !== v ? 0 : (v - lo) * scale;
      grey[k] = g < 0 ? 0 : g > 255 ? 255 : Math.round(g);
    }
    for (let p = 0, i = 0; p < this.W * this.H; p++, i += 4) {
      let g = 0;
      const t = 4 * p;
      if (taps[t] >= 0) {
        const fu = weights[2 * p], fw = weights[2 * p + 1];
        const top = grey[taps[t]] + fu * (grey[taps[t + 1]] - grey[taps[t]]);
        const bottom = grey[taps[t + 2]] + fu * (grey[taps[t + 3]] - grey[taps[t + 2]]);
        g = (top + fw * (bottom - top)) / 255;
      }
      px[i] = out0[i] + g * delta[i];  // Uint8ClampedArray: rounds to nearest, clamps
      px[i + 1] = out0[i + 1] + g * delta[i + 1];
      px[i + 2] = out0[i + 2] + g * delta[i + 2];
      px[i + 3] = 255;
    }
    this.canvas.getContext("2d").putImageData(this.image, 0, 0);
    this.canvas.style.display = "block";
    return true;
  };

  // Hidden after NiiVue's own redraw; the calibration stays for the next drag on the same view.
  FastWindow.prototype.finish = function () {
    this.ready = false;
    this.canvas.style.display = "none";
  };

  window.FastWindow = FastWindow;
})();
