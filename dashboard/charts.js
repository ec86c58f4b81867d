// Line charts drawn as SVG by hand: no library, nothing fetched.

import { h } from "./ui.js";

const W = 560;
const H = 180;
const PAD = { left: 64, right: 12, top: 12, bottom: 26 };

/**
 * A line chart of series over shared x labels (ISO times).
 * series: [{name, values: [number|null], cls}]; threshold: {value, label} drawn dashed.
 */
export function lineChart({ title, labels, series, format = (v) => String(v), threshold }) {
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  // A deadline far above the data would flatten it; then it is only named, not drawn.
  const dataMax = Math.max(0, ...values);
  const drawLimit = threshold && (dataMax === 0 || threshold.value <= dataMax * 10);
  const max = niceMax(Math.max(1, dataMax, drawLimit ? threshold.value : 0));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (labels.length < 2 ? 0 : (i / (labels.length - 1)) * plotW);
  const y = (v) => PAD.top + plotH - (v / max) * plotH;

  const grid = [0, 0.5, 1].map((f) =>
    h("g", {},
      h("line", { x1: PAD.left, x2: W - PAD.right, y1: y(max * f), y2: y(max * f), class: "grid" }),
      h("text", { x: PAD.left - 6, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, format(max * f)),
    ),
  );
  const ticks = labels.length
    ? [0, Math.floor((labels.length - 1) / 2), labels.length - 1].map((i) =>
        h("text", { x: x(i), y: H - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === labels.length - 1 ? "end" : "middle" }, clock(labels[i])),
      )
    : [];
  const lines = series.map((s) =>
    h("g", { class: `series ${s.cls}` },
      h("path", { d: pathFor(s.values, x, y), fill: "none" }, h("title", {}, s.name)),
      // Dots, so a minute with data between empty ones still shows.
      s.values.map((v, i) => (v === null || v === undefined || (v === 0 && !s.dotZero)
        ? null
        : h("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5 })))),
  );
  const limit = threshold && !drawLimit
    ? h("text", { x: W - PAD.right, y: PAD.top + 10, class: "axis", "text-anchor": "end" }, `${threshold.label} ${format(threshold.value)}, far above`)
    : threshold
    ? h("g", {},
        h("line", { x1: PAD.left, x2: W - PAD.right, y1: y(threshold.value), y2: y(threshold.value), class: "threshold" }),
        h("text", { x: W - PAD.right, y: y(threshold.value) - 4, class: "axis", "text-anchor": "end" }, threshold.label),
      )
    : null;

  const summary = series
    .map((s) => `${s.name}: latest ${latest(s.values, format)}`)
    .join("; ");
  const svg = h(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${title}. ${summary}` },
    h("title", {}, title),
    grid,
    ticks,
    limit,
    lines,
  );
  const legend = h(
    "ul",
    { class: "legend" },
    series.map((s) => h("li", {}, h("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }), s.name)),
  );
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg, legend);
}

function pathFor(values, x, y) {
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  // A lone point still shows as a dot-sized stroke.
  return d || "M0,0";
}

function niceMax(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return value;
}

function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function latest(values, format) {
  for (let i = values.length - 1; i >= 0; i--) {
    if (values[i] !== null && values[i] !== undefined) return format(values[i]);
  }
  return "none";
}
