// Weights view: one tensor's value distribution (histogram + summary statistics, computed by a GPU kernel)
// and its per-output-channel max|w|, where the channels that would dominate a quantiser's scale stand out.
// For a tensor the last compression rewrote, the compressed values are drawn over the original's, with the
// distribution of the error Ŵ − W and the weights kept in 16 bit.
import * as fmt from '../format.js';
import { axes, barsPath, COLORS, joinTables, logTickValues, mountChart } from '../charts.js';
import { createMaskMap } from './mask-map.js';

/** At most this many kept (row, column) positions are listed; the count is always exact. */
const KEPT_LISTED = 200;

const BINS = [64, 128, 256];
const TOP_K = [8, 16, 32];
const STATS = [
  ['n', 'Elements', fmt.integer],
  ['min', 'Min', fmt.num],
  ['max', 'Max', fmt.num],
  ['mean', 'Mean', fmt.num],
  ['std', 'Std dev', fmt.num],
  ['kurtosis', 'Excess kurtosis', fmt.num],
];

export function createWeightsView(root, { call, showError, onSelect }) {
  root.innerHTML = `
    <div class="empty-note">Load a model, then pick a tensor here or in the Model view's table.</div>
    <div class="weights" hidden>
      <div class="card toolbar">
        <label class="field grow">Tensor
          <input type="search" class="tensor-pick" list="tensor-names" spellcheck="false"
            placeholder="Type to search, e.g. blk.0.attn_q.weight" />
        </label>
        <datalist id="tensor-names"></datalist>
        <button type="button" class="step" data-step="-1" aria-label="Previous tensor" title="Previous">←</button>
        <button type="button" class="step" data-step="1" aria-label="Next tensor" title="Next">→</button>
        <label class="field">Bins
          <select class="bins">${BINS.map((b) => `<option ${b === 128 ? 'selected' : ''}>${b}</option>`).join('')}
          </select>
        </label>
        <label class="field">Top channels
          <select class="topk">${TOP_K.map((k) => `<option>${k}</option>`).join('')}</select>
        </label>
        <label class="check"><input type="checkbox" class="log" /> log count</label>
      </div>
      <div class="tensor-title">
        <h2 class="mono"></h2><span class="tensor-meta muted"></span>
        <span class="compute-state muted" aria-live="polite"></span>
      </div>
      <div class="weights-grid">
        <section class="card">
          <h3>Histogram of weight values</h3>
          <p class="explain">How the values spread. A quantiser spends its levels across the whole range, so long
            tails leave fewer levels for the crowded middle.</p>
          <p class="explain overlay-note" hidden></p>
          <div class="chart hist-chart"></div>
        </section>
        <section class="card stats">
          <h3>Statistics</h3>
          <table class="stats-table"><tbody></tbody></table>
          <p class="explain">Excess kurtosis is 0 for a Gaussian; large values mean heavy tails, i.e. outliers.</p>
          <h3>Quantiles</h3>
          <table class="quantile-table"><tbody></tbody></table>
        </section>
        <section class="card error-card" hidden>
          <h3>Histogram of the error Ŵ − W</h3>
          <p class="explain">Compressed minus original, weight by weight. Rounding to a grid spreads it over
            ± half a level; a method that keeps weights in 16 bit leaves those at 0 (after its own corrections).</p>
          <div class="chart error-chart"></div>
        </section>
        <section class="card kept-card" hidden>
          <h3>Compression</h3>
          <dl class="facts error-facts"></dl>
          <h3>Kept in 16 bit</h3>
          <p class="kept-summary"></p>
          <ol class="kept-list mono"></ol>
        </section>
        <section class="card mask-card wide" hidden>
          <h3>Pruning mask</h3>
          <p class="explain">Where the pruned matrix is zero: each cell is shaded by the share of its weights that
            are exactly 0 (white: all kept, dark: all pruned). Unstructured pruning speckles; N:M pruning is an
            even grey from afar and a regular pattern up close; a removed row or column is a dark line.</p>
          <div class="mask-map"></div>
        </section>
        <section class="card">
          <h3>Largest |w| in each output channel</h3>
          <p class="explain">One point per output channel (row). A channel far above the median stretches a
            per-tensor quantiser's scale and costs every other channel precision; the top ones are marked in red.</p>
          <p class="single-row muted" hidden>This tensor is one row (a vector): there are no channels to compare.</p>
          <div class="chart channel-chart"></div>
        </section>
        <section class="card">
          <h3>Top channels by max |w|</h3>
          <table class="top-table">
            <thead><tr><th class="num">Channel</th><th class="num">max |w|</th>
              <th class="num">× median</th></tr></thead>
            <tbody></tbody>
          </table>
        </section>
      </div>
    </div>`;

  const q = (sel) => root.querySelector(sel);
  let tensors = [];
  let want = null; // the tensor + settings the user asked for last
  let inflight = false;
  let stats = null; // the last result shown
  let generation = 0; // bumped per model, so a late answer about the previous model is never shown
  let compression = null; // {gen, methods: Map(tensor name → method)} of the last compression, or null
  let compressions = 0;

  const maskMap = createMaskMap(q('.mask-map'), { call, showError });
  const settings = () => ({ bins: Number(q('.bins').value), topK: Number(q('.topk').value) });
  const sameRequest = (a, b) => a && b && a.gen === b.gen && a.compression === b.compression &&
    a.name === b.name && a.bins === b.bins && a.topK === b.topK;

  // Only one request at a time; quick successive choices collapse into the latest one.
  async function refresh() {
    if (inflight || !want || sameRequest(want, stats?.request)) return;
    inflight = true;
    const request = want;
    q('.compute-state').textContent = 'computing on the GPU…';
    root.classList.add('busy');
    try {
      const { name, bins, topK } = request;
      const method = compression?.methods.get(name);
      // The worker queues these; asking for all at once saves waiting for each answer in turn.
      const [result, after, error] = await Promise.all([
        call('tensorStats', { name, bins, topK }),
        method && call('tensorStats', { name, bins, topK, compressed: true }),
        method && call('weightError', { name, bins }),
      ]);
      if (sameRequest(request, want)) {
        stats = { ...result, request, after: method ? { method, stats: after, error } : null };
        render();
      }
    } catch (err) {
      showError(err.message);
      // Forget the failed choice (so it is not retried in a loop) and label what is still shown.
      want = stats?.request ?? null;
      q('.compute-state').textContent = '';
      const shown = stats && tensors.find((t) => t.name === stats.name);
      if (shown) showTitle(shown);
    } finally {
      inflight = false;
      root.classList.remove('busy');
    }
    refresh();
  }

  function select(name) {
    const t = tensors.find((x) => x.name === name);
    if (!t) {
      showError(`There is no tensor named “${name}” in this model.`);
      return;
    }
    showTitle(t);
    onSelect(name);
    want = { name, gen: generation, compression: compression?.gen ?? 0, ...settings() };
    refresh();
  }

  function showTitle(t) {
    q('.tensor-pick').value = t.name;
    q('.tensor-pick').setCustomValidity('');
    q('.tensor-title h2').textContent = t.name;
    q('.tensor-meta').textContent = `${fmt.shape(t.shape)} · ${t.dtype} · ${fmt.bytes(t.n_bytes)}`;
  }

  function render() {
    const s = stats;
    q('.compute-state').textContent = `computed in ${fmt.ms(s.ms)}`;
    q('.stats-table').dataset.name = s.name;
    q('.stats-table tbody').innerHTML = STATS.map(([key, label, f]) =>
      `<tr data-stat="${key}" data-value="${s[key]}"><th>${label}</th><td class="num">${f(s[key])}</td></tr>`).join('');
    q('.quantile-table tbody').innerHTML = s.quantiles.map(({ p, value }) =>
      `<tr data-p="${p}" data-value="${value}"><th>${percent(p)}${p === 0.5 ? ' (median)' : ''}</th>
        <td class="num">${fmt.num(value)}</td></tr>`).join('');
    const med = median(s.channel_max_abs);
    q('.top-table tbody').innerHTML = s.top_channels.map(({ channel, max_abs }) =>
      `<tr><td class="num">${channel}</td><td class="num">${fmt.num(max_abs)}</td>
        <td class="num">${med > 0 ? (max_abs / med).toFixed(1) : '—'}</td></tr>`).join('');
    drawHistogram();
    renderComparison();
    drawChannels(med);
  }

  /** The original's histogram, or with a compressed tensor both, as densities (their bins differ). */
  function drawHistogram() {
    const { after } = stats;
    const log = q('.log').checked;
    const [x, y] = histogramPoints(stats.histogram, after ? stats.n : 0);
    const scale = log ? ', log scale' : '';
    const yTitle = after ? `density (share of weights per unit of w${scale})` : `count (elements${scale})`;
    const bars = { label: after ? 'original' : 'count', fill: COLORS.bars, stroke: COLORS.bars, paths: barsPath(),
      points: { show: false }, value: (u, v) => (after ? fmt.num(v) : fmt.integer(v)) };
    const series = [{ label: 'value', value: (u, v) => fmt.num(v) }, bars];
    let data = [x, gaps(y, log)];
    let [lo, hi] = [stats.histogram.lo, stats.histogram.hi];
    if (after) {
      const [xc, yc] = histogramPoints(after.stats.histogram, after.stats.n);
      data = joinTables([data, [xc, gaps(yc, log)]]);
      series.push({ label: `after ${after.method}`, stroke: COLORS.after, width: 2, points: { show: false },
        value: (u, v) => fmt.num(v) });
      [lo, hi] = [Math.min(lo, after.stats.histogram.lo), Math.max(hi, after.stats.histogram.hi)];
    }
    const { counts } = stats.histogram;
    mountChart(q('.hist-chart'), `Histogram of ${stats.name}${after ? `, original and after ${after.method}` : ''}: ` +
      `${counts.length} bins from ${fmt.num(lo)} to ${fmt.num(hi)}, ${yTitle}`, {
      scales: { x: { time: false, range: [lo, hi] }, y: yScale(log) },
      axes: axes('weight value (dequantised)', yTitle, { values: logTickValues(fmt.compact) }),
      series,
      legend: { live: true },
    }, data, 360);
  }

  function renderComparison() {
    const { after } = stats;
    for (const el of root.querySelectorAll('.error-card, .kept-card, .overlay-note')) el.hidden = !after;
    const pruned = after && compression.sparsity.get(stats.name) > 0;
    q('.mask-card').hidden = !pruned;
    if (pruned) maskMap.show(stats.name);
    if (!after) return;
    const e = after.error;
    q('.overlay-note').textContent = `Indigo bars: the original (${e.dtype_before}); amber line: after ` +
      `${after.method} (${e.dtype_after}). Both are densities, each over its own range, so their shapes compare.`;
    const facts = [
      ['dtype', 'Dtype', `${e.dtype_before} → ${e.dtype_after}`],
      ['rel_mse', '‖Ŵ − W‖² / ‖W‖²', fmt.num(e.rel_mse)],
      ['max_abs', 'max |Ŵ − W|', fmt.num(e.max_abs)],
      ['kept_count', 'Kept in 16 bit', fmt.integer(e.kept_count)],
    ];
    q('.error-facts').innerHTML = facts.map(([key, label, shown]) =>
      `<div data-key="${key}"><dt>${label}</dt><dd>${fmt.esc(shown)}</dd></div>`).join('');
    q('.kept-card').dataset.kept = String(e.kept_count);
    q('.kept-summary').textContent = e.kept_count
      ? `${fmt.integer(e.kept_count)} weights (row, column)${e.kept_count > KEPT_LISTED ?
        `, the first ${KEPT_LISTED} listed` : ''}:`
      : `${after.method} keeps no weights in 16 bit in this tensor.`;
    q('.kept-list').innerHTML = e.kept.slice(0, KEPT_LISTED).map(([r, c]) => `<li>(${r}, ${c})</li>`).join('');
    drawError();
  }

  function drawError() {
    const e = stats.after.error;
    const log = q('.log').checked;
    const [x, y] = histogramPoints(e);
    const yTitle = `count (weights${log ? ', log scale' : ''})`;
    mountChart(q('.error-chart'), `Histogram of the error of ${e.name} after ${stats.after.method}: ` +
      `${e.counts.length} bins from ${fmt.num(e.lo)} to ${fmt.num(e.hi)}, ${yTitle}`, {
      scales: { x: { time: false, range: [e.lo, e.hi] }, y: yScale(log) },
      axes: axes('Ŵ − W (compressed − original)', yTitle, { values: logTickValues(fmt.compact) }),
      series: [
        { label: 'error', value: (u, v) => fmt.num(v) },
        { label: 'count', fill: COLORS.after, stroke: COLORS.after, paths: barsPath(), points: { show: false },
          value: (u, v) => fmt.integer(v) },
      ],
    }, [x, gaps(y, log)]);
  }

  function drawChannels(med) {
    const values = Array.from(stats.channel_max_abs);
    const single = values.length < 2;
    q('.single-row').hidden = !single;
    q('.channel-chart').hidden = single;
    if (single) return;
    const top = new Map(stats.top_channels.map((c) => [c.channel, c.max_abs]));
    const x = values.map((_, i) => i);
    const marked = stats.top_channels.map((c) => c.channel).join(', ');
    mountChart(q('.channel-chart'), `max |w| of each of the ${values.length} output channels of ${stats.name}; ` +
      `median ${fmt.num(med)}; largest in channels ${marked}`, {
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, max * 1.08] } },
      axes: axes('output channel (row index)', 'max |w|'),
      series: [
        { label: 'channel', value: (u, v) => (v == null ? '—' : String(v)) },
        { label: 'max |w|', stroke: COLORS.line, width: 1, points: { show: false }, value: (u, v) => fmt.num(v) },
        { label: 'top channels', stroke: COLORS.outlier, width: 0,
          points: { show: true, size: 8, fill: COLORS.outlier, stroke: COLORS.outlier }, value: (u, v) => fmt.num(v) },
        { label: 'median', stroke: COLORS.guide, width: 1, dash: [6, 4], points: { show: false },
          value: (u, v) => fmt.num(v) },
      ],
    }, [x, values, x.map((i) => top.get(i) ?? null), x.map(() => med)]);
  }

  function step(delta) {
    const i = tensors.findIndex((t) => t.name === want?.name);
    const next = tensors[(i + delta + tensors.length) % tensors.length];
    if (next) select(next.name);
  }

  // Enter in the search box takes an exact name, or the only tensor whose name contains the text.
  q('.tensor-pick').addEventListener('change', (e) => {
    const text = e.target.value.trim();
    const matches = tensors.filter((t) => t.name.includes(text));
    const hit = tensors.find((t) => t.name === text) ?? (matches.length === 1 ? matches[0] : null);
    const problem = `${matches.length} tensors match “${text}”: pick one from the list.`;
    e.target.setCustomValidity(hit || !text ? '' : problem);
    e.target.reportValidity();
    if (hit && hit.name !== want?.name) select(hit.name);
  });
  for (const b of root.querySelectorAll('.step')) b.onclick = () => step(Number(b.dataset.step));
  for (const el of [q('.bins'), q('.topk')]) {
    el.addEventListener('change', () => want && select(want.name));
  }
  q('.log').addEventListener('change', () => {
    if (!stats) return;
    drawHistogram();
    if (stats.after) drawError();
  });

  return {
    setModel(model) {
      tensors = model.tensors;
      generation++;
      want = null;
      stats = null;
      compression = null;
      q('#tensor-names').innerHTML = tensors.map((t) => `<option value="${fmt.esc(t.name)}"></option>`).join('');
      q('.empty-note').hidden = true;
      q('.weights').hidden = false;
    },
    select,
    /** The report of the last compression (null: none); the tensor on show is compared if it was rewritten. */
    setCompression(report) {
      compression = report && { gen: ++compressions, methods: new Map(report.tensors.map((t) => [t.name, t.method])),
        sparsity: new Map(report.tensors.map((t) => [t.name, t.sparsity])) };
      if (want) select(want.name);
    },
    /** Called when the view becomes visible: start with a typical weight matrix if nothing is chosen yet. */
    activate() {
      if (!want && tensors.length) select((tensors.find((t) => /attn_q/.test(t.name)) ?? tensors[0]).name);
    },
  };
}

/**
 * Bin centres and heights of a histogram: counts, or given the number of elements, densities (share of the
 * elements per unit of value), which compare across histograms with different bins.
 */
function histogramPoints({ lo, hi, counts }, elements = 0) {
  const width = (hi - lo) / counts.length;
  const x = Array.from(counts, (_, i) => lo + (i + 0.5) * width);
  const y = Array.from(counts, (c) => (elements ? c / (elements * width) : c));
  return [x, y];
}

/** A log axis cannot show 0: empty bins become gaps. */
function gaps(values, log) {
  return log ? values.map((v) => (v <= 0 ? null : v)) : values;
}

function yScale(log) {
  return log ? { distr: 3 } : { range: (u, min, max) => [0, max * 1.05] };
}

function percent(p) {
  return `${+(p * 100).toPrecision(3)}%`;
}

function median(values) {
  if (!values.length) return 0;
  const sorted = Float64Array.from(values).sort();
  return sorted[sorted.length >> 1];
}
