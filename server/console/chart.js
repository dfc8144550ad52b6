// Line charts on a canvas, drawn here so that the console fetches nothing from elsewhere:
// time and value axes with round ticks, one line per series (a gap where a step has no
// point), a crosshair with the nearest points' values, and sparklines for the tiles.
// What was last drawn is kept on the canvas (canvas.iocdbDrawn) for the browser tests.

import { fmtNum, timeOf } from "./i18n.js";

export const PALETTE = ["#4fd1c5", "#f6ad55", "#63b3ed", "#fc8181", "#b794f4", "#68d391", "#f6e05e",
  "#ed64a6", "#90cdf4", "#fbd38d", "#9ae6b4", "#feb2b2", "#d6bcfa", "#81e6d9", "#faf089", "#a0aec0"];

export const colour = (i) => PALETTE[i % PALETTE.length];

/** Round steps for an axis spanning `span` with about `count` ticks. */
function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400, 172800, 604800, 2592000, 7776000, 31536000].map((s) => s * 1000);

function timeStep(span, count) {
  return TIME_STEPS.find((s) => span / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
}

/** Prepares a canvas for its CSS size at the device's pixel ratio; returns its context. */
function context(canvas, cssHeight) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.parentElement.clientWidth || 300;
  canvas.style.height = cssHeight + "px";
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(cssHeight * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { g, width, height: cssHeight };
}

export class LineChart {
  /** A chart inside `container`, `height` CSS pixels tall. */
  constructor(container, height = 320) {
    this.height = height;
    this.box = document.createElement("div");
    this.box.className = "chart";
    this.canvas = document.createElement("canvas");
    this.tip = document.createElement("div");
    this.tip.className = "tooltip";
    this.tip.hidden = true;
    this.box.append(this.canvas, this.tip);
    container.append(this.box);
    this.series = [];
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => (this.tip.hidden = true));
    this.onResize = () => this.series.length && this.draw(this.series, this.start, this.end);
    window.addEventListener("resize", this.onResize);
  }

  destroy() {
    window.removeEventListener("resize", this.onResize);
  }

  /**
   * Draws `series` ([{name, colour, hidden, points: [[ms, value], …]}]) over [start, end] ms;
   * returns the milliseconds drawing took.
   */
  draw(series, start, end) {
    const began = performance.now();
    this.series = series;
    this.start = start;
    this.end = end;
    const { g, width, height } = context(this.canvas, this.height);
    const shown = series.filter((s) => !s.hidden);
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of shown) {
      for (const [, v] of s.points) {
        if (Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const vStep = niceStep(hi - lo, Math.max(2, Math.floor(height / 50)));
    lo = Math.floor(lo / vStep) * vStep;
    hi = Math.ceil(hi / vStep) * vStep;
    g.font = "12px system-ui, sans-serif";
    let labelWidth = 0;
    for (let v = lo; v <= hi + vStep / 2; v += vStep) labelWidth = Math.max(labelWidth, g.measureText(fmtNum(v)).width);
    const left = labelWidth + 12;
    const right = width - 10;
    const top = 8;
    const bottom = height - 22;
    this.frame = { left, right, top, bottom, lo, hi };
    const x = (t) => left + ((t - start) / Math.max(end - start, 1)) * (right - left);
    const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
    g.clearRect(0, 0, width, height);
    g.strokeStyle = "#2b3b4a";
    g.fillStyle = "#9fb0c0";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let v = lo; v <= hi + vStep / 2; v += vStep) {
      const py = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(left, py); g.lineTo(right, py); g.stroke();
      g.fillText(fmtNum(v), left - 6, py);
    }
    const tStep = timeStep(end - start, Math.max(2, Math.floor((right - left) / 110)));
    const offset = new Date().getTimezoneOffset() * 60000;
    g.textAlign = "center";
    g.textBaseline = "top";
    const withDate = end - start > 86400000;
    for (let t = Math.ceil((start - offset) / tStep) * tStep + offset; t <= end; t += tStep) {
      const px = Math.round(x(t)) + 0.5;
      g.beginPath(); g.moveTo(px, top); g.lineTo(px, bottom); g.stroke();
      g.fillText(timeOf(t, tStep < 60000, withDate), px, bottom + 5);
    }
    let segments = 0;
    g.lineWidth = 1.5;
    for (const s of shown) {
      g.strokeStyle = s.colour;
      g.beginPath();
      let drawing = false;
      let prev = null;
      for (const [t, v] of s.points) {
        // A step without a point (or a non-finite one) breaks the line.
        const gap = prev !== null && s.step && t - prev > s.step * 1.5;
        if (!Number.isFinite(v) || gap) drawing = false;
        if (Number.isFinite(v)) {
          if (drawing) { g.lineTo(x(t), y(v)); segments++; } else g.moveTo(x(t), y(v));
          drawing = true;
        }
        prev = t;
      }
      g.stroke();
      // A lone point still shows.
      if (s.points.length === 1 && Number.isFinite(s.points[0][1])) {
        g.fillStyle = s.colour;
        g.fillRect(x(s.points[0][0]) - 2, y(s.points[0][1]) - 2, 4, 4);
      }
    }
    const ms = performance.now() - began;
    this.canvas.iocdbDrawn = {
      series: shown.map((s) => ({ name: s.name, points: s.points })),
      segments,
      ms,
    };
    return ms;
  }

  hover(e) {
    if (!this.frame || !this.series.length) return;
    const rect = this.canvas.getBoundingClientRect();
    const px = e.clientX - rect.left;
    const { left, right } = this.frame;
    if (px < left || px > right) { this.tip.hidden = true; return; }
    const t = this.start + ((px - left) / (right - left)) * (this.end - this.start);
    const rows = [];
    for (const s of this.series) {
      if (s.hidden || !s.points.length) continue;
      let best = null;
      for (const p of s.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      rows.push({ s, p: best });
    }
    rows.sort((a, b) => b.p[1] - a.p[1]);
    const lines = rows.slice(0, 12).map(({ s, p }) => {
      const d = document.createElement("div");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.display = "inline-block";
      sw.style.background = s.colour;
      d.append(sw, ` ${fmtNum(p[1])}  ${s.name}`);
      return d;
    });
    const head = document.createElement("div");
    head.className = "dim";
    head.textContent = timeOf(rows.length ? rows[0].p[0] : t, true, true);
    this.tip.replaceChildren(head, ...lines);
    this.tip.hidden = false;
    const x = Math.min(px + 12, rect.width - this.tip.offsetWidth - 4);
    this.tip.style.left = Math.max(0, x) + "px";
    this.tip.style.top = "8px";
  }
}

/** A small line of `points` ([[ms, v]]) across `canvas`, for a tile's trend. */
export function sparkline(canvas, points, colourOf = "#4fd1c5") {
  const { g, width, height } = context(canvas, canvas.clientHeight || 40);
  g.clearRect(0, 0, width, height);
  const finite = points.filter((p) => Number.isFinite(p[1]));
  if (finite.length < 2) return;
  const t0 = finite[0][0];
  const t1 = finite[finite.length - 1][0];
  let lo = Math.min(...finite.map((p) => p[1]));
  let hi = Math.max(...finite.map((p) => p[1]));
  if (lo === hi) { lo -= 1; hi += 1; }
  g.strokeStyle = colourOf;
  g.lineWidth = 1.5;
  g.beginPath();
  finite.forEach(([t, v], i) => {
    const x = ((t - t0) / Math.max(t1 - t0, 1)) * (width - 2) + 1;
    const y = height - 2 - ((v - lo) / (hi - lo)) * (height - 4);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  canvas.iocdbDrawn = { points: finite.length };
}
