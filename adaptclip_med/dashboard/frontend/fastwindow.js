/* adaptclip-med reading room: the window/level drag's 2D-canvas fast path.
 *
 * Why: with software GL (no GPU, SwiftShader) every NiiVue re-window rebuilds the whole 3D colour
 * texture of the image layer (all slices) in the GPU process; measured, a presented drag frame cost
 * 0.25-0.9 s although the viewer's own handler took 13-18 ms.  During a drag only the windowing
 * changes, and the picture on the canvas is, per canvas pixel, linear in the image layer's grey g:
 *     out = out0 + g * (out1 - out0)
 * where out0 / out1 are NiiVue's own frames with every voxel windowed to black / to white (the heat
 * map, the outline, the colour bar, the orientation labels and the ruler all stay in out0 / out1,
 * exactly as NiiVue blends them).  So at mousedown NiiVue draws those two frames once (read back;
 * its colour texture filled with the black / white texel for the purpose, then restored: no
 * re-window), the voxels around every canvas pixel are looked up once (NiiVue's own canvas -> voxel
 * mapping and bilinear sampling), and each move re-windows the slice's voxels on the CPU and blends
 * the slice tile's pixels into an ImageData put on a 2D canvas laid over the GL canvas.  On mouseup
 * NiiVue redraws once with the final window and the 2D canvas is hidden: the test
 * (tests/dashboard/test_browser.py) compares the two pictures, and the cheap calibration with the
 * re-window one.
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

  // The image layer's colour texture (NiiVue's volumeTexture: RGBA8, RAS order, every slice), read back
  // layer by layer through a framebuffer: a copy to restore, and the texels to calibrate with.
  function readTexture(gl, tex, dims) {
    const [nx, ny, nz] = dims, plane = nx * ny * 4, data = new Uint8Array(plane * nz);
    const fb = gl.createFramebuffer(), oldFb = gl.getParameter(gl.FRAMEBUFFER_BINDING);
    gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
    for (let z = 0; z < nz; z++) {
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, tex, 0, z);
      if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) { gl.bindFramebuffer(gl.FRAMEBUFFER, oldFb); gl.deleteFramebuffer(fb); return null; }
      gl.readPixels(0, 0, nx, ny, gl.RGBA, gl.UNSIGNED_BYTE, data.subarray(z * plane, (z + 1) * plane));
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, oldFb);
    gl.deleteFramebuffer(fb);
    return data;
  }
  // ``data``: the whole texture, or one layer (then written to every layer: a fill without a
  // texture-sized buffer)
  function writeTexture(gl, tex, dims, data) {
    const unit = gl.getParameter(gl.ACTIVE_TEXTURE);
    gl.activeTexture(gl.TEXTURE0);
    const old = gl.getParameter(gl.TEXTURE_BINDING_3D);
    gl.bindTexture(gl.TEXTURE_3D, tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    if (data.length === dims[0] * dims[1] * 4) {
      for (let z = 0; z < dims[2]; z++) gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, z, dims[0], dims[1], 1, gl.RGBA, gl.UNSIGNED_BYTE, data);
    } else {
      gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, 0, dims[0], dims[1], dims[2], gl.RGBA, gl.UNSIGNED_BYTE, data);
    }
    gl.bindTexture(gl.TEXTURE_3D, old);
    gl.activeTexture(unit);
  }

  // The black and white texels from the colour map itself (NiiVue's orient shader for layer 0: the
  // colour map's entry 0 / 255, alpha times the layer's opacity), for a window that leaves no voxel
  // black or white.  Only for the plain case (opacity 1, not inverted); null otherwise.
  function colormapTexels(nv, vol) {
    if (vol.opacity !== 1 || vol.colormapInvert) return null;
    const lut = nv.colormap(vol.colormap);
    if (!lut || lut.length < 1024) return null;
    return [Uint8Array.from(lut.slice(0, 4)), Uint8Array.from(lut.slice(1020, 1024))];
  }

  // NiiVue's frames with every voxel of the image layer black / white, the cheap way: its colour
  // texture already holds the black texel (a voxel at or below the window's low end: the colour map
  // at 0) and the white one (at or above its high end: the colour map at 1) whenever the volume has
  // such voxels (else they come from the colour map), so the texture is filled with each in turn (one
  // upload, no re-window), drawn, read back, and restored.  What the re-window to +-1e30 gives (same
  // colour map entries), without NiiVue's orient pass over the volume and its gradient texture
  // (seconds in software GL).  Null where neither way applies: then the re-window.
  function calibrateFromTexture(nv, vol, W, H) {
    const gl = nv.gl, tex = nv.volumeTexture, d = vol.dimsRAS;
    if (!tex || !d || nv.opts.is2DSliceShader) return null;
    const img = vol.img, slope = vol.hdr.scl_slope || 1, inter = vol.hdr.scl_inter || 0;
    let mn = Infinity, mx = -Infinity;
    for (let i = 0; i < img.length; i++) { const v = img[i]; if (v < mn) mn = v; if (v > mx) mx = v; }
    const a = mn * slope + inter, b = mx * slope + inter;
    const hasBlack = Math.min(a, b) <= vol.cal_min, hasWhite = Math.max(a, b) >= vol.cal_max;
    const fromMap = hasBlack && hasWhite ? null : colormapTexels(nv, vol);
    if (!(hasBlack && hasWhite) && !fromMap) return null;
    const dims = [d[1], d[2], d[3]], saved = readTexture(gl, tex, dims);
    if (!saved) return null;
    // the gray colour map is monotonic: the darkest texel is its entry 0, the brightest its entry 255
    let dark = 0, bright = 0;
    for (let i = 4; i < saved.length; i += 4) {
      if (saved[i] < saved[dark]) dark = i;
      if (saved[i] > saved[bright]) bright = i;
    }
    const black = hasBlack ? saved.slice(dark, dark + 4) : fromMap[0], white = hasWhite ? saved.slice(bright, bright + 4) : fromMap[1];
    const fill = (texel) => {
      const buf = new Uint32Array(dims[0] * dims[1]);  // one layer
      buf.fill(new Uint32Array(texel.buffer, texel.byteOffset, 1)[0]);
      writeTexture(gl, tex, dims, new Uint8Array(buf.buffer));
      nv.drawScene();
      return readFrame(gl, W, H);
    };
    const out0 = fill(black), out1 = fill(white);
    writeTexture(gl, tex, dims, saved);
    return { out0: out0, out1: out1, texels: [Array.from(black), Array.from(white)], how: hasBlack && hasWhite ? "texture" : "colormap" };
  }

  // The same two frames through NiiVue's re-window (the image layer windowed to +-1e30).
  function calibrateByRewindow(nv, vol, W, H) {
    const gl = nv.gl, lo = vol.cal_min, hi = vol.cal_max, far = 1e30;
    vol.cal_min = far; vol.cal_max = 2 * far; nv.refreshLayers(vol, 0); nv.drawScene();
    const out0 = readFrame(gl, W, H);
    vol.cal_min = -2 * far; vol.cal_max = -far; nv.refreshLayers(vol, 0); nv.drawScene();
    const out1 = readFrame(gl, W, H);
    vol.cal_min = lo; vol.cal_max = hi;  // NiiVue re-windows for real on mouseup (the GL canvas is covered till then)
    return { out0: out0, out1: out1, rewindowed: true };
  }

  // Why the fast path may not draw: the ways NiiVue's orient shader (its windowing of layer 0) can
  // leave the plain linear map the fast path computes -- grey = clamp((v - cal_min) / (cal_max -
  // cal_min)) through the gray colour map, 8 bits -- for ANY window: a negative colour map
  // (colormapNegative, cal_minNeg/cal_maxNeg), a colour map type other than min-to-max (alpha
  // threshold, from zero: transparent or translucent below cal_min), a modulation image, another or
  // inverted colour map, a label colour map, dark voxels clipped (isAlphaClipDark), NaN windows.
  // Empty where none applies.  Otherwise the drag falls back to NiiVue's own re-window per move
  // (slower, never a different picture).  Where none applies the two agree at every window,
  // including windows reaching far below or above the values (the browser test checks one).
  function disagreements(nv, vol) {
    const why = [];
    if (vol.colormap !== "gray") why.push("colour map " + vol.colormap);
    if (vol.colormapInvert) why.push("inverted colour map");
    if (vol.colormapNegative) why.push("negative colour map");
    if (vol.colormapType) why.push("colour map type " + vol.colormapType);
    if (vol.colormapLabel) why.push("label colour map");
    if (vol.modulationImage !== null && vol.modulationImage !== undefined && vol.modulationImage >= 0) why.push("modulation image");
    if (nv.isAlphaClipDark || nv.opts.isAlphaClipDark) why.push("dark voxels clipped");
    if (!isFinite(vol.cal_min) || !isFinite(vol.cal_max)) why.push("window not finite");
    return why;
  }

  // ``key`` names everything the picture depends on besides the window (slice, view, zoom, pan,
  // overlays, canvas size): a second drag on the same view reuses the calibration (no GL work).
  FastWindow.prototype.prepare = function (key) {
    const nv = this.nv, vol = nv.volumes[0], gl = nv.gl;
    const W = gl.drawingBufferWidth, H = gl.drawingBufferHeight;
    if (vol && disagreements(nv, vol).length) this.key = null;  // set since the last calibration: checked below
    if (key && key === this.key && this.grid && vol === this.vol && W === this.W && H === this.H) { this.ready = true; this.calibration = "reused"; return true; }
    this.ready = false; this.key = null; this.rewindowed = false; this.refused = null;
    if (!vol || !W || !H) return false;
    const why = disagreements(nv, vol);
    if (why.length) { this.refused = why; return false; }
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
    // The slice's values (NiiVue's getValue: slope, intercept) on a grid with a one-voxel border
    // repeating the edge voxels (the texture's clamp to edge): a pixel's four taps are then
    // base, base + 1, base + stride, base + stride + 1.
    const nu = dims[ax], nw = dims[ay], stride = nu + 2, grid = new Float32Array(stride * (nw + 2));
    const v = [0, 0, 0];
    v[across] = slice;
    for (let j = -1; j <= nw; j++) {
      for (let i = -1; i <= nu; i++) {
        v[ax] = Math.min(Math.max(i, 0), nu - 1); v[ay] = Math.min(Math.max(j, 0), nw - 1);
        grid[(j + 1) * stride + i + 1] = vol.getValue(v[0], v[1], v[2]);
      }
    }
    const base = new Int32Array(W * H).fill(-1), weights = new Float32Array(W * H * 2);
    let x0 = W, x1 = -1, y0 = H, y1 = -1;  // the slice tile's bounding box: the only pixels a move changes
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const cx = x + 0.5, cy = y + 0.5;
        const u = map.origin[ax] + map.dx[ax] * cx + map.dy[ax] * cy, w = map.origin[ay] + map.dx[ay] * cx + map.dy[ay] * cy;
        if (u < -0.5 || w < -0.5 || u > nu - 0.5 || w > nw - 0.5) continue;
        const i0 = Math.floor(u), j0 = Math.floor(w), p = y * W + x;
        base[p] = (j0 + 1) * stride + i0 + 1;
        weights[2 * p] = u - i0; weights[2 * p + 1] = w - j0;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
    if (x1 < 0) return false;
    const t0 = performance.now();
    const frames = (!FastWindow.forceRewindow && calibrateFromTexture(nv, vol, W, H)) || calibrateByRewindow(nv, vol, W, H);
    this.calibrationMs = performance.now() - t0;
    const out0 = frames.out0, out1 = frames.out1;
    const delta = new Int16Array(W * H * 4);
    for (let i = 0; i < delta.length; i++) delta[i] = out1[i] - out0[i];
    if (this.canvas.width !== W) this.canvas.width = W;
    if (this.canvas.height !== H) this.canvas.height = H;
    this.ctx = this.canvas.getContext("2d");
    this.image = new ImageData(W, H);
    const px = this.image.data;
    for (let i = 0; i < px.length; i += 4) { px[i] = out0[i]; px[i + 1] = out0[i + 1]; px[i + 2] = out0[i + 2]; px[i + 3] = 255; }
    this.W = W; this.H = H; this.grid = grid; this.grey = new Float32Array(grid.length); this.stride = stride;
    this.base = base; this.weights = weights; this.out0 = out0; this.delta = delta;
    this.box = [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
    this.vol = vol; this.key = key || null; this.rewindowed = !!frames.rewindowed;
    this.calibration = this.rewindowed ? "rewindow" : frames.how;
    this.texels = frames.texels || null;
    this.ready = true; this.drawn = false;
    return true;
  };

  // The grey NiiVue's gray colour map gives each voxel under window [lo, hi] (8 bits, as its colour
  // texture holds it), mixed between the four voxels around each pixel, then blended as above.  Only
  // the slice tile's box is recomputed and put (nothing allocated per move).
  FastWindow.prototype.render = function (lo, hi) {
    if (!this.ready) return false;
    const grid = this.grid, grey = this.grey, base = this.base, weights = this.weights, stride = this.stride;
    const out0 = this.out0, delta = this.delta, px = this.image.data, W = this.W;
    const scale = 255 / Math.max(hi - lo, 1e-12);
    for (let k = 0; k < grid.length; k++) {
      const v = grid[k];
      const g = v !== v ? 0 : (v - lo) * scale;
      grey[k] = g < 0 ? 0 : g > 255 ? 255 : Math.round(g);
    }
    const [bx, by, bw, bh] = this.box;
    for (let y = by; y < by + bh; y++) {
      for (let p = y * W + bx, end = p + bw; p < end; p++) {
        const b = base[p];
        if (b < 0) continue;  // outside the slice: out0 (already there)
        const fu = weights[2 * p], fw = weights[2 * p + 1];
        const g00 = grey[b], g10 = grey[b + 1], g01 = grey[b + stride], g11 = grey[b + stride + 1];
        const top = g00 + fu * (g10 - g00), bottom = g01 + fu * (g11 - g01);
        const g = (top + fw * (bottom - top)) / 255, i = 4 * p;
        px[i] = out0[i] + g * delta[i];  // Uint8ClampedArray: rounds to nearest, clamps
        px[i + 1] = out0[i + 1] + g * delta[i + 1];
        px[i + 2] = out0[i + 2] + g * delta[i + 2];
      }
    }
    this.ctx.putImageData(this.image, 0, 0, bx, by, bw, bh);
    if (!this.drawn) {  // the first render puts the whole frame (labels, colour bar outside the tile)
      this.ctx.putImageData(this.image, 0, 0);
      this.canvas.style.display = "block";
      this.drawn = true;
    }
    return true;
  };

  // Hidden after NiiVue's own redraw; the calibration stays for the next drag on the same view.
  FastWindow.prototype.finish = function () {
    this.ready = false; this.drawn = false;
    this.canvas.style.display = "none";
  };

  // forceRewindow: the benchmark's baseline for the first mousedown (calibrate by two re-windows)
  FastWindow.forceRewindow = false;
  FastWindow.colormapTexels = (nv, vol) => { const t = colormapTexels(nv, vol); return t && t.map((x) => Array.from(x)); };  // the test compares
  FastWindow.disagreements = disagreements;  // the test names the reasons
  window.FastWindow = FastWindow;
})();
