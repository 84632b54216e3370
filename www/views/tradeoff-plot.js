// The trade-off plot of the Experiments view: one point per experiment (x: bits per weight or size, y: KL
// divergence or perplexity), the Pareto frontier through the ones nothing beats on both axes, the original
// model as the reference, and the selected experiment ringed. A click on a point selects its experiment.
import * as fmt from '../format.js';
import { axes, COLORS, logTickValues, mountChart } from '../charts.js';
import { paretoFrontier } from '../experiments.js';

export const X_AXES = {
  bpw: { label: 'bits per weight, whole model (stored bits ÷ parameters)', of: (x) => x.bpw,
    original: (x) => x.bpw_original, format: (v) => v.toFixed(2) },
  size: { label: 'model size (MB, 10⁶ bytes)', of: (x) => x.size_bytes / 1e6,
    original: (x) => x.size_bytes_original / 1e6, format: (v) => v.toFixed(1) },
};
export const Y_AXES = {
  kld: { label: 'KL divergence (nats / token)', of: (x) => x.kld, original: () => 0 },
  ppl: { label: 'perplexity', of: (x) => x.ppl, original: (x) => x.ppl_base },
};

/** Click tolerance around a point, in CSS pixels. */
const HIT = 12;

/** Circles of radius r CSS pixels at a series' (x, y) points; uPlot's own point drawing assumes mode 1. */
const scatter = (r) => (u, si) => {
  const [xs, ys] = u.data[si];
  const path = new Path2D();
  const rad = r * devicePixelRatio;
  xs.forEach((x, i) => {
    if (ys[i] == null) return;
    const [cx, cy] = [u.valToPos(x, 'x', true), u.valToPos(ys[i], 'y', true)];
    path.moveTo(cx + rad, cy);
    path.arc(cx, cy, rad, 0, 2 * Math.PI);
  });
  return { stroke: path, fill: path };
};

/** Straight segments through a series' points in order. */
const polyline = (u, si) => {
  const [xs, ys] = u.data[si];
  const path = new Path2D();
  xs.forEach((x, i) => {
    const [cx, cy] = [u.valToPos(x, 'x', true), u.valToPos(ys[i], 'y', true)];
    if (i === 0) path.moveTo(cx, cy);
    else path.lineTo(cx, cy);
  });
  return { stroke: path };
};

/**
 * Draws `experiments` (all measured the same way) into `el`; `selected` is an id or null; onPick(id) on a
 * click near a point. Returns {plotted: ids in data order, frontier: ids on the frontier}.
 */
export function drawTradeoff(el, experiments, { xKey, yKey, log, selected, onPick }) {
  const X = X_AXES[xKey];
  const Y = Y_AXES[yKey];
  const shown = experiments.filter((x) => Number.isFinite(Y.of(x)) && (!log || Y.of(x) > 0));
  const points = shown.map((x) => ({ x: X.of(x), y: Y.of(x), id: x.id }));
  const front = paretoFrontier(points).map((i) => points[i]);
  const ref = shown[0] ?? experiments[0];
  const original = { x: X.original(ref), y: Y.original(ref) };
  const ys = points.map((p) => p.y).concat(original.y > 0 || !log ? [original.y] : []);
  const xs = points.map((p) => p.x).concat([original.x]);
  const [xLo, xHi] = [Math.min(...xs), Math.max(...xs)];
  const xPad = (xHi - xLo) * 0.08 || xHi * 0.02; // one x value: a small window around it
  const [yLo, yHi] = [Math.min(...ys), Math.max(...ys)];
  const yRange = log ? [yLo / 1.6, yHi * 1.6] : [Math.min(0, yLo), yHi * 1.1 || 1];
  // KLD 0 has no place on a log axis: the original is then a vertical line at its size.
  const originalData = original.y > 0 || !log ? [[original.x], [original.y]] : [[original.x, original.x], yRange];
  const pick = points.find((p) => p.id === selected);
  const series = [
    {},
    { label: 'experiments', stroke: COLORS.bars, fill: COLORS.bars, width: 1, paths: scatter(5),
      points: { show: false } },
    { label: 'Pareto frontier', stroke: COLORS.line, width: 2, paths: polyline, points: { show: false } },
    { label: `original (${X.format(original.x)}${original.y > 0 ? `, ${fmt.num(original.y)}` : ', KLD 0'})`,
      stroke: COLORS.guide, fill: '#ffffff', width: 2, dash: originalData[0].length > 1 ? [6, 4] : undefined,
      paths: originalData[0].length > 1 ? polyline : scatter(6), points: { show: false } },
    { label: 'selected', stroke: COLORS.outlier, width: 2, paths: scatter(9), points: { show: false } },
  ];
  const data = [
    null,
    [points.map((p) => p.x), points.map((p) => p.y)],
    [front.map((p) => p.x), front.map((p) => p.y)],
    originalData,
    pick ? [[pick.x], [pick.y]] : [[], []],
  ];
  const yLabel = `${Y.label}${log ? ', log scale' : ''}`;
  const chart = mountChart(el, `Trade-off: ${Y.label} against ${X.label} for ${points.length} experiments; ` +
    `${front.length} on the Pareto frontier; the original at ${X.format(original.x)}`, {
    mode: 2,
    scales: { x: { time: false, range: [xLo - xPad, xHi + xPad] }, y: { distr: log ? 3 : 1, range: yRange } },
    axes: axes(X.label, yLabel, { values: logTickValues((v) => fmt.num(v, 2)), size: 64 }),
    series,
    legend: { show: true, live: false },
    cursor: { show: false },
  }, data, 340);
  chart.over.onclick = (e) => {
    const best = nearest(chart, points, e.offsetX, e.offsetY);
    if (best) onPick(best.id);
  };
  chart.over.style.cursor = points.length ? 'pointer' : 'default';
  return { plotted: points.map((p) => p.id), frontier: front.map((p) => p.id) };
}

/** The point within HIT CSS pixels of (left, top) in the plot area, nearest first. */
function nearest(u, points, left, top) {
  let best = null;
  let bestD = HIT;
  for (const p of points) {
    const d = Math.hypot(u.valToPos(p.x, 'x') - left, u.valToPos(p.y, 'y') - top);
    if (d <= bestD) (best = p), (bestD = d);
  }
  return best;
}
