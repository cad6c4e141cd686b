// vaekit latent explorer: move a point through the latent space and watch the decoder.
//
// Everything runs here, in the page: data.js (written by `vaekit explore`) holds the
// decoder as a list of operations over float32 tensors and the test set's posterior
// means; ops.js turns the operations into a decode function and this file draws.
// No server, no network.
"use strict";

(function () {
  const DATA = window.VAEKIT_EXPLORER;
  // Matplotlib's tab10, as in latent_scatter.png.
  const COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  ];
  const STRIP_STEPS = 10;
  const MAX_PINS = 9;

  const { typed, makeDecoder } = window.VAEKIT_OPS; // ops.js: the decoder

  // ------------------------------------------------------------------ page state

  const meta = DATA.meta;
  const D = meta.latentDim;
  const [C, H, W] = meta.imageShape;
  const decode = makeDecoder(DATA.decoder, D);
  if (decode.outputShape.join() !== meta.imageShape.join()) {
    throw new Error(`the decoder makes ${decode.outputShape}, not an image ${meta.imageShape}`);
  }
  const range = meta.range; // per dimension [lo, hi]: what the map and sliders cover
  const axes = meta.axes.slice(); // the dimensions on the map's x and y axes
  const z = new Float64Array(D).fill(0);
  const pins = [];
  const stats = { decodes: 0, frames: 0, lastMs: 0, recent: [] };
  const $ = (id) => document.getElementById(id);

  const scatter = (() => {
    const s = DATA.scatter;
    if (!s) return null;
    const codes = typed(s.coords, Uint16Array);
    const mu = new Float32Array(codes.length);
    for (let i = 0; i < s.n; i++) {
      for (let d = 0; d < D; d++) {
        mu[i * D + d] = s.lo[d] + (codes[i * D + d] / 65535) * (s.hi[d] - s.lo[d]);
      }
    }
    return { n: s.n, mu, labels: typed(s.labels, Uint8Array) };
  })();
  const classNames = meta.classNames.length
    ? meta.classNames
    : scatter
      ? [...new Set(scatter.labels)].sort((a, b) => a - b).map(String)
      : [];
  // z[d] starts at the prior's mean, inside the range.
  for (let d = 0; d < D; d++) z[d] = Math.min(Math.max(0, range[d][0]), range[d][1]);

  // ------------------------------------------------------------------ the map

  const map = $("map");
  const mapCtx = map.getContext("2d");
  const backdrop = document.createElement("canvas");
  const PAD = { left: 34, right: 8, top: 8, bottom: 26 }; // CSS px, for tick labels
  let dpr = 1;
  let plot = { x: 0, y: 0, w: 1, h: 1 }; // plot area in canvas pixels

  // With a 1-D latent the vertical axis shows the label, one band per class.
  const oneD = D === 1;
  const xRange = () => range[axes[0]];
  const yRange = () => (oneD ? [-0.5, classNames.length - 0.5] : range[axes[1]]);
  const toPx = (v, r, start, len) => start + ((v - r[0]) / (r[1] - r[0])) * len;
  const px = (v) => toPx(v, xRange(), plot.x, plot.w);
  const py = (v) => plot.y + plot.h - toPx(v, yRange(), 0, plot.h);
  const fromPx = (p, r, start, len) => r[0] + ((p - start) / len) * (r[1] - r[0]);

  function ticks([lo, hi]) {
    const step = [0.5, 1, 2, 5, 10, 20, 50].find((t) => (hi - lo) / t <= 8) || 100;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
      out.push(Math.round(v * 1e6) / 1e6);
    }
    return out;
  }

  function resizeMap() {
    const rect = map.getBoundingClientRect();
    dpr = window.devicePixelRatio || 1;
    map.width = backdrop.width = Math.max(1, Math.round(rect.width * dpr));
    map.height = backdrop.height = Math.max(1, Math.round(rect.height * dpr));
    plot = {
      x: PAD.left * dpr,
      y: PAD.top * dpr,
      w: map.width - (PAD.left + PAD.right) * dpr,
      h: map.height - (PAD.top + PAD.bottom) * dpr,
    };
    drawBackdrop();
    requestRender(false);
  }

  // The test set's means on the chosen axes, drawn once per size or axes change.
  function drawBackdrop() {
    const ctx = backdrop.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, backdrop.width, backdrop.height);
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.fillStyle = "#555";
    ctx.strokeStyle = "#e4e4e4";
    ctx.lineWidth = dpr;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const v of ticks(xRange())) {
      const x = px(v);
      ctx.beginPath();
      ctx.moveTo(x, plot.y);
      ctx.lineTo(x, plot.y + plot.h);
      ctx.stroke();
      ctx.fillText(String(v), x, plot.y + plot.h + 3 * dpr);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const yTicks = oneD ? classNames.map((_, i) => i) : ticks(yRange());
    for (const v of yTicks) {
      const y = py(v);
      ctx.beginPath();
      ctx.moveTo(plot.x, y);
      ctx.lineTo(plot.x + plot.w, y);
      ctx.stroke();
      ctx.fillText(oneD ? classNames[v] : String(v), plot.x - 4 * dpr, y);
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText(`z[${axes[0]}] →`, plot.x + plot.w - 48 * dpr, backdrop.height - 1);
    if (!oneD) {
      ctx.save();
      ctx.translate(11 * dpr, plot.y + 48 * dpr);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "right";
      ctx.fillText(`z[${axes[1]}] →`, 0, 0);
      ctx.restore();
    }
    ctx.strokeStyle = "#999";
    ctx.strokeRect(plot.x, plot.y, plot.w, plot.h);
    if (!scatter) return;
    const r = 1.6 * dpr;
    ctx.globalAlpha = 0.6;
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y, plot.w, plot.h);
    ctx.clip();
    for (let i = 0; i < scatter.n; i++) {
      const label = scatter.labels[i];
      const jitter = oneD ? (((i * 2654435761) % 1000) / 1000 - 0.5) * 0.7 : 0;
      const y = oneD ? label + jitter : scatter.mu[i * D + axes[1]];
      ctx.fillStyle = COLOURS[label % COLOURS.length];
      ctx.fillRect(px(scatter.mu[i * D + axes[0]]) - r, py(y) - r, 2 * r, 2 * r);
    }
    ctx.restore();
    ctx.globalAlpha = 1;
  }

  function drawMap() {
    mapCtx.drawImage(backdrop, 0, 0);
    const yOf = (v) => py(oneD ? (classNames.length - 1) / 2 : v[axes[1]]);
    if (pins.length >= 2) {
      const [a, b] = pins.slice(-2);
      mapCtx.strokeStyle = "#222";
      mapCtx.lineWidth = 2 * dpr;
      mapCtx.setLineDash([5 * dpr, 4 * dpr]);
      mapCtx.beginPath();
      mapCtx.moveTo(px(a[axes[0]]), yOf(a));
      mapCtx.lineTo(px(b[axes[0]]), yOf(b));
      mapCtx.stroke();
      mapCtx.setLineDash([]);
    }
    mapCtx.font = `bold ${11 * dpr}px system-ui, sans-serif`;
    mapCtx.textAlign = "center";
    mapCtx.textBaseline = "middle";
    pins.forEach((pin, i) => {
      const x = px(pin[axes[0]]);
      const y = yOf(pin);
      mapCtx.fillStyle = "#fff";
      mapCtx.strokeStyle = "#222";
      mapCtx.lineWidth = 1.5 * dpr;
      mapCtx.beginPath();
      mapCtx.arc(x, y, 8 * dpr, 0, 2 * Math.PI);
      mapCtx.fill();
      mapCtx.stroke();
      mapCtx.fillStyle = "#222";
      mapCtx.fillText(String(i + 1), x, y + 0.5 * dpr);
    });
    // The cursor: crosshair and ring at the current z.
    const x = px(z[axes[0]]);
    const y = yOf(z);
    mapCtx.strokeStyle = "rgba(0, 0, 0, 0.55)";
    mapCtx.lineWidth = dpr;
    mapCtx.beginPath();
    mapCtx.moveTo(x, plot.y);
    mapCtx.lineTo(x, plot.y + plot.h);
    if (!oneD) {
      mapCtx.moveTo(plot.x, y);
      mapCtx.lineTo(plot.x + plot.w, y);
    }
    mapCtx.stroke();
    mapCtx.strokeStyle = "#000";
    mapCtx.lineWidth = 2 * dpr;
    mapCtx.beginPath();
    mapCtx.arc(x, y, 6 * dpr, 0, 2 * Math.PI);
    mapCtx.stroke();
  }

  // ------------------------------------------------------------------ images

  const tile = document.createElement("canvas"); // one image at its own size
  tile.width = W;
  tile.height = H;
  const tileCtx = tile.getContext("2d");
  const tileData = tileCtx.createImageData(W, H);

  // Pixels (C, H, W) in [0, 1] into the tile canvas: grey for one channel, else RGB.
  function toTile(pixels) {
    const rgba = tileData.data;
    const plane = H * W;
    for (let i = 0; i < plane; i++) {
      for (let k = 0; k < 3; k++) {
        rgba[4 * i + k] = Math.round(255 * pixels[(C === 1 ? 0 : k) * plane + i]);
      }
      rgba[4 * i + 3] = 255;
    }
    tileCtx.putImageData(tileData, 0, 0);
  }

  // Draw the tile enlarged, nearest neighbour, into a canvas sized to its CSS box.
  function blit(canvas, x, y, w, h) {
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, x, y, w, h);
  }

  function fitCanvas(canvas) {
    const rect = canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
  }

  const image = $("decoded");
  function drawDecoded() {
    const t0 = performance.now();
    const pixels = decode(z);
    const now = performance.now();
    stats.decodes += 1;
    stats.lastMs = now - t0;
    stats.recent.push(now);
    while (stats.recent[0] < now - 1000) stats.recent.shift();
    toTile(pixels);
    fitCanvas(image);
    blit(image, 0, 0, image.width, image.height);
  }

  const strip = $("strip");
  function drawStrip() {
    fitCanvas(strip);
    const ctx = strip.getContext("2d");
    ctx.fillStyle = "#f3f3f3";
    ctx.fillRect(0, 0, strip.width, strip.height);
    $("strip-note").textContent =
      pins.length >= 2
        ? `From pin ${pins.length - 1} to pin ${pins.length}, ${STRIP_STEPS} steps ` +
          "(click one to go there)."
        : "Click the map to pin a point; pin two to see the path between them.";
    if (pins.length < 2) return;
    const [a, b] = pins.slice(-2);
    const cell = strip.width / STRIP_STEPS;
    for (let k = 0; k < STRIP_STEPS; k++) {
      toTile(decode(interpolate(a, b, k / (STRIP_STEPS - 1))));
      const left = Math.round(k * cell);
      blit(strip, left, 0, Math.round((k + 1) * cell) - left - dpr, strip.height); // dpr: a gap
    }
  }

  // A conditional model decodes z for the label picked here (Sohn et al. 2015).
  function buildLabelPicker() {
    if (!decode.classes) return;
    $("label-box").hidden = false;
    const select = $("label");
    for (let c = 0; c < decode.classes; c++) {
      select.add(new Option(classNames[c] ?? String(c), String(c), false, c === 0));
    }
    select.addEventListener("change", () => {
      decode.setLabel(Number(select.value));
      stripDue = true;
      requestRender(true);
    });
  }

  const interpolate = (a, b, t) => a.map((v, d) => (1 - t) * v + t * b[d]);

  // ------------------------------------------------------------------ controls

  const sliders = [];
  function buildControls() {
    const box = $("sliders");
    for (let d = 0; d < D; d++) {
      const row = document.createElement("label");
      row.className = "slider";
      const name = document.createElement("span");
      name.textContent = `z[${d}]`;
      const input = document.createElement("input");
      input.type = "range";
      input.min = String(range[d][0]);
      input.max = String(range[d][1]);
      input.step = String((range[d][1] - range[d][0]) / 1000);
      input.value = String(z[d]);
      input.setAttribute("aria-label", `latent dimension ${d}`);
      const value = document.createElement("output");
      input.addEventListener("input", () => {
        z[d] = Number(input.value);
        requestRender(true);
      });
      row.append(name, input, value);
      box.append(row);
      sliders.push({ input, value });
    }
    if (D > 2) {
      $("axes").hidden = false;
      for (const [k, id] of [[0, "axis-x"], [1, "axis-y"]]) {
        const select = $(id);
        for (let d = 0; d < D; d++) {
          select.add(new Option(`z[${d}]`, String(d), false, d === axes[k]));
        }
        select.addEventListener("change", () => {
          const d = Number(select.value);
          if (d === axes[1 - k]) {
            axes[1 - k] = axes[k]; // the same dimension twice is no map: swap them
            $(k === 0 ? "axis-y" : "axis-x").value = String(axes[1 - k]);
          }
          axes[k] = d;
          markAxes();
          drawBackdrop();
          requestRender(false);
        });
      }
    }
    markAxes();
    buildLabelPicker();
    const legend = $("legend");
    const counts = new Map();
    if (scatter) for (const l of scatter.labels) counts.set(l, (counts.get(l) || 0) + 1);
    classNames.forEach((name, i) => {
      if (scatter && !counts.get(i)) return;
      const item = document.createElement("li");
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.background = COLOURS[i % COLOURS.length];
      item.append(chip, name);
      legend.append(item);
    });
    const parts = [meta.source, `${meta.model} decoder`, `latent ${D}`, meta.dataset];
    if (meta.epoch != null) parts.push(`epoch ${meta.epoch}`);
    if (meta.testLoss != null) parts.push(`test loss ${meta.testLoss.toFixed(2)}`);
    parts.push(scatter ? `${scatter.n} test images` : "no test images");
    $("info").textContent = parts.join(" · ");
    $("latent-note").textContent = meta.latentNote; // the model's words: what z is
    $("clear").addEventListener("click", () => {
      pins.length = 0;
      requestRender(false);
    });
  }

  // Sliders of the two map axes are bold: the cursor moves them.
  function markAxes() {
    sliders.forEach(({ input }, d) => {
      const onMap = d === axes[0] || (!oneD && d === axes[1]);
      input.parentElement.classList.toggle("on-map", onMap);
    });
  }

  function syncControls() {
    sliders.forEach(({ input, value }, d) => {
      if (document.activeElement !== input) input.value = String(z[d]);
      value.textContent = z[d].toFixed(2);
    });
    const rate = stats.recent.length;
    $("rate").textContent =
      `last decode ${stats.lastMs.toFixed(2)} ms · ${rate} decodes in the last second`;
  }

  // ------------------------------------------------------------------ events

  // Pointer events cover mouse, pen and touch; the canvas has touch-action: none, so a
  // finger dragged over the map moves the point instead of scrolling the page.
  function moveTo(event) {
    const rect = map.getBoundingClientRect();
    const x = (event.clientX - rect.left) * dpr;
    const y = (event.clientY - rect.top) * dpr;
    const clamp = (v, [lo, hi]) => Math.min(Math.max(v, lo), hi);
    z[axes[0]] = clamp(fromPx(x, xRange(), plot.x, plot.w), xRange());
    if (!oneD) z[axes[1]] = clamp(fromPx(plot.y + plot.h - y, yRange(), plot.y, plot.h), yRange());
    requestRender(true);
  }

  map.addEventListener("pointermove", moveTo);
  map.addEventListener("pointerdown", moveTo);
  map.addEventListener("click", (event) => {
    moveTo(event);
    pins.push(Array.from(z));
    if (pins.length > MAX_PINS) pins.shift();
    requestRender(false);
  });
  strip.addEventListener("click", (event) => {
    if (pins.length < 2) return;
    const rect = strip.getBoundingClientRect();
    const at = Math.floor(((event.clientX - rect.left) / rect.width) * STRIP_STEPS);
    const k = Math.min(STRIP_STEPS - 1, at);
    const [a, b] = pins.slice(-2);
    z.set(interpolate(a, b, k / (STRIP_STEPS - 1)));
    requestRender(true);
  });

  // At most one decode per animation frame, however fast pointer events arrive.
  let frameRequested = false;
  let decodeDue = true;
  let stripDue = true;
  let pinCount = -1;
  function requestRender(zChanged) {
    decodeDue = decodeDue || zChanged;
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(render);
  }

  function render() {
    frameRequested = false;
    stats.frames += 1;
    if (decodeDue) drawDecoded();
    decodeDue = false;
    if (stripDue || pins.length !== pinCount) drawStrip();
    stripDue = false;
    pinCount = pins.length;
    drawMap();
    syncControls();
  }

  buildControls();
  new ResizeObserver(() => {
    stripDue = true;
    decodeDue = true;
    resizeMap();
  }).observe($("map-box"));

  // ------------------------------------------------------------------ test hook

  window.vaekit = {
    decode: (point) => Array.from(decode(point)), // the image for one z, (C * H * W)
    state: () => ({
      z: Array.from(z),
      axes: axes.slice(),
      pins: pins.map((p) => p.slice()),
      decodes: stats.decodes, // decodes drawn so far
      frames: stats.frames, // animation frames rendered so far
      lastMs: stats.lastMs,
    }),
    setZ(point) {
      z.set(point);
      requestRender(true);
    },
    // Decodes per second over `n` decodes of points across the map.
    benchmark(n = 200) {
      const point = new Float64Array(D);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        for (let d = 0; d < D; d++) {
          const [lo, hi] = range[d];
          point[d] = lo + (((i * (d + 3)) % n) / n) * (hi - lo);
        }
        decode(point);
      }
      return (n * 1000) / (performance.now() - t0);
    },
    setLabel(label) {
      decode.setLabel(label);
      $("label").value = String(label);
      stripDue = true;
      requestRender(true);
    },
    classes: decode.classes,
    outputShape: decode.outputShape,
  };
})();
