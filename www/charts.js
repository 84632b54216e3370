// Thin helpers over uPlot: consistent axes, and charts that follow their container's width.
import uPlot from 'uplot';

export const COLORS = { bars: '#4f46e5', line: '#0f766e', outlier: '#dc2626', guide: '#9ca3af', after: '#d97706' };

const axis = (label, extra = {}) => ({
  label,
  labelSize: 20,
  labelFont: '600 12px system-ui, sans-serif',
  font: '11px system-ui, sans-serif',
  stroke: '#374151',
  grid: { stroke: '#e5e7eb', width: 1 },
  ticks: { stroke: '#d1d5db', width: 1 },
  ...extra,
});

/** x axis + y axis with titles; `y` and `x` may carry extra axis options (e.g. a size for wide tick labels). */
export function axes(xLabel, yLabel, y = {}, x = {}) {
  return [axis(xLabel, x), axis(yLabel, { size: 60, ...y })];
}

/** x-axis options for counts (chunks, layers): ticks on whole numbers only. */
export const WHOLE_TICKS = {
  incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
  values: (u, ticks) => ticks.map((v) => String(v)),
};

/** Tick labels of a log axis: uPlot leaves the minor ticks null, which stay unlabelled. */
export const logTickValues = (format) => (u, ticks) => ticks.map((v) => (v == null ? null : format(v)));

/** Aligns [x, y] tables with different x values on one x (uPlot.join): missing points are left out. */
export const joinTables = (tables) => uPlot.join(tables);

/**
 * Draws a chart into `el` (described in words by `description`), replacing the one there before, sized to
 * el's width. uPlot cannot change a scale's distribution in place, so toggles such as "log count" rebuild
 * the chart through this too.
 */
export function mountChart(el, description, opts, data, height = 260) {
  el._chart?.destroy();
  // The canvas itself says nothing to assistive technology; the description does.
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', description);
  el._resize?.disconnect();
  const width = Math.max(el.clientWidth, 320);
  const chart = new uPlot({ width, height, ...opts }, data, el);
  const resize = new ResizeObserver(() => {
    if (el.clientWidth > 0 && el.clientWidth !== chart.width) chart.setSize({ width: el.clientWidth, height });
  });
  resize.observe(el);
  el._chart = chart;
  el._resize = resize;
  return chart;
}

export const barsPath = () => uPlot.paths.bars({ size: [1, Infinity], gap: 0, align: 0 });

/** Separate bars centred on whole-number x values (one per layer or block). */
export const blockBarsPath = () => uPlot.paths.bars({ size: [0.7, 40], gap: 1 });
