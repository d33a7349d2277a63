// chart.js: line charts drawn as SVG in the page, with no outside asset:
// the Overview's decision rate, deny rate and latency per replica. Values
// reach the chart as numbers and labels as text nodes, never as markup.

const NS = "http://www.w3.org/2000/svg";
const W = 1000;
const H = 190;
const PAD = { left: 70, right: 12, top: 12, bottom: 24 };

// Replica colours, told apart by people with the common colour-vision
// deficiencies (Okabe and Ito's palette), in the order replicas are listed.
export const palette = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442"];

function svg(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax is the least of 1, 2 or 5 times a power of ten at or above v.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v * (1 - 1e-9)) return m * p;
  return 10 * p;
}

// lineChart draws lines into the <svg> node: each line is
// {replica, series, color, dashed, points: [[ms, value or null], ...]}; a
// null value breaks the line (an interval without data). The x axis runs
// from..to (milliseconds), the y axis from 0 to a round maximum, labelled
// with format. Each path carries data-replica, data-series and
// data-points (how many values it draws).
export function lineChart(node, { lines, from, to, format }) {
  node.replaceChildren();
  node.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const values = lines.flatMap((l) => l.points.map((p) => p[1]).filter((v) => v !== null));
  const top = niceMax(Math.max(0, ...values));
  const x = (t) => PAD.left + ((t - from) / (to - from)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);

  for (const v of [0, top / 2, top]) {
    node.append(
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, format(v)),
    );
  }
  const fiveMinutes = 5 * 60 * 1000;
  for (let t = Math.ceil(from / fiveMinutes) * fiveMinutes; t <= to; t += fiveMinutes) {
    const label = new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    node.append(svg("text", { x: x(t), y: H - 6, "text-anchor": "middle", class: "tick" }, label));
  }

  for (const l of lines) {
    let d = "";
    let n = 0;
    let pen = "M";
    for (const [t, v] of l.points) {
      if (v === null) {
        pen = "M";
        continue;
      }
      d += `${pen}${x(t).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = "L";
      n++;
    }
    const attrs = { d: d.trim() || "M0 0", fill: "none", stroke: l.color, "stroke-width": 2, "data-replica": l.replica, "data-series": l.series, "data-points": n };
    if (l.dashed) attrs["stroke-dasharray"] = "5 4";
    node.append(svg("path", attrs));
    // A lone value has no segment to draw: mark it with a dot.
    if (n === 1) {
      const [t, v] = l.points.find((p) => p[1] !== null);
      node.append(svg("circle", { cx: x(t), cy: y(v), r: 3, fill: l.color }));
    }
  }
}
