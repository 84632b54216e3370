// What a compression did, as the Compress view shows it: headline numbers (size, bits per weight, how far
// the model moved), each step's notes, the error per layer as a chart, every rewritten tensor in a table, and
// the download of the compressed model as GGUF or safetensors.
import * as fmt from '../format.js';
import { axes, blockBarsPath, COLORS, logTickValues, mountChart, WHOLE_TICKS } from '../charts.js';
import { activateRows, makeSortable, sortableHeader } from '../table.js';
import { createExportPanel } from './export-panel.js';

const num = (key) => (a, b) => (a[key] ?? -Infinity) - (b[key] ?? -Infinity);
const COLUMNS = [
  { key: 'name', label: 'Tensor', cmp: (a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }) },
  { key: 'method', label: 'Method', cmp: (a, b) => a.method.localeCompare(b.method) },
  { key: 'dtype_after', label: 'Dtype', cmp: (a, b) => a.dtype_after.localeCompare(b.dtype_after) },
  { key: 'bpw', label: 'Bits / weight', num: true, cmp: num('bpw') },
  { key: 'bytes', label: 'Size', num: true, cmp: num('bytes') },
  { key: 'rel_mse', label: 'Weight error', num: true, cmp: num('rel_mse') },
  { key: 'output_err', label: 'Output error', num: true, cmp: num('output_err') },
  { key: 'outliers', label: 'Kept 16-bit', num: true, cmp: num('outliers') },
  { key: 'sparsity', label: 'Zeros', num: true, cmp: num('sparsity') },
  { key: 'seconds', label: 'Time', num: true, cmp: num('seconds') },
];

export function createCompressResult(root, { rpc, showError, openTensor }) {
  root.innerHTML = `
    <div class="result-grid">
      <section class="card">
        <h2>Result</h2>
        <dl class="facts compress-facts"></dl>
        <h3>Steps</h3>
        <ol class="step-notes"></ol>
      </section>
      <section class="card">
        <h2>Error per layer</h2>
        <p class="explain">The mean over each block's rewritten matrices of the relative weight error
          ‖Ŵ − W‖² / ‖W‖² and, for calibrated methods, of the relative output error on the calibration text
          (Σ ΔW·XᵀX·ΔWᵀ / Σ W·XᵀX·Wᵀ). Both are ratios, on a log scale: one step down is 10×
          smaller.</p>
        <p class="no-layers muted" hidden>No block's matrices were rewritten.</p>
        <div class="chart layer-chart"></div>
      </section>
      <section class="card sparsity-card" hidden>
        <h2>Zeros per layer</h2>
        <p class="explain">The share of each block's rewritten weights that are exactly 0 after the recipe
          (weighted by the matrices' sizes). Pruning at a uniform sparsity gives even bars; a quantiser after it
          keeps the zeros when its grid holds 0 exactly.</p>
        <div class="chart sparsity-chart"></div>
      </section>
    </div>
    <section class="card">
      <h2>Rewritten tensors <span class="muted report-count"></span></h2>
      <div class="table-scroll">
        <table class="tensor-table report-table">
          <thead><tr>${sortableHeader(COLUMNS)}</tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <p class="muted hint">Click a row or press Enter on it to compare that tensor with the original in the Weights
        view. Weight error is ‖Ŵ − W‖² / ‖W‖²; output error is the same on the layer's outputs.</p>
    </section>
    <section class="card export-panel"></section>`;

  const q = (sel) => root.querySelector(sel);
  let tensors = [];
  const sorted = makeSortable(q('.report-table'), COLUMNS, { key: 'name', dir: 1 }, renderTable);
  activateRows(q('.report-table tbody'), openTensor);
  const exportPanel = createExportPanel(q('.export-panel'), { rpc, showError });

  function renderFacts(outcome, ms) {
    const r = outcome.report;
    const e = outcome.eval;
    const calibration = r.calib_tokens
      ? ` (calibration on ${fmt.integer(r.calib_tokens)} tokens: ${seconds(r.calib_seconds)})` : '';
    const facts = [
      ['bpw_compressed', 'Bits / weight, rewritten tensors', r.bpw_compressed, r.bpw_compressed.toFixed(3)],
      ['bpw', 'Bits / weight, whole model', r.bpw, r.bpw.toFixed(3)],
      ['size', 'Size', r.size_bytes, `${fmt.bytes(r.size_bytes_original)} → ${fmt.bytes(r.size_bytes)}`],
      ...(e ? [
        ['ppl', 'Perplexity, original → compressed', e.ppl, `${e.ppl_base.toFixed(3)} → ${e.ppl.toFixed(3)}`],
        ['kld', 'KL divergence (nats / token)', e.kld, `${fmt.num(e.kld)} ± ${fmt.num(e.kld_err, 2)}`],
        ['kld_p99', 'KLD, 99th percentile', e.kld_p99, fmt.num(e.kld_p99)],
        ['top1', 'Top-1 agreement', e.top1, `${(100 * e.top1).toFixed(1)}%`],
        ['eval_tokens', 'Tokens compared', e.tokens,
          `${fmt.integer(e.tokens)} in ${e.chunks} chunk${e.chunks === 1 ? '' : 's'}`],
      ] : [['ppl', 'Evaluation', null, 'skipped']]),
      ['tensors', 'Tensors rewritten', r.tensors.length, fmt.integer(r.tensors.length)],
      ...(r.blocks_dropped?.length ? [['blocks_dropped', 'Blocks removed', r.blocks_dropped.join(','),
        r.blocks_dropped.join(', ')]] : []),
      ['seconds', 'Time', outcome.seconds,
        `${seconds(outcome.seconds)} compressing${calibration}, ${fmt.ms(ms)} with the evaluation`],
    ];
    q('.compress-facts').innerHTML = facts.map(([key, label, raw, shown]) =>
      `<div data-key="${key}" data-value="${raw ?? ''}"><dt>${label}</dt><dd>${fmt.esc(shown)}</dd></div>`).join('');
    q('.step-notes').innerHTML = r.steps.map((s) => `<li><strong>${fmt.esc(s.method)}</strong>
      <span class="muted">${fmt.integer(s.tensors)} tensors in ${seconds(s.seconds)}, ${fmt.percent(s.sparsity)} zeros
        ${s.zeros_lost ? `(${fmt.integer(s.zeros_lost)} weights that were zero are not any more)` : ''}</span>
      ${s.notes.length ? `<ul>${s.notes.map((n) => `<li>${fmt.esc(n)}</li>`).join('')}</ul>` : ''}</li>`).join('');
  }

  function drawLayers() {
    const { layers, relMse, outputErr } = perLayer(tensors);
    q('.no-layers').hidden = layers.length > 0;
    q('.layer-chart').hidden = !layers.length;
    if (!layers.length) return;
    const hasOutput = outputErr.some((v) => v != null);
    const line = (label, color) => ({ label, stroke: color, width: 2, points: { show: true, size: 6, fill: color },
      value: (u, v) => fmt.num(v) });
    const series = [
      { label: 'layer', value: (u, v) => (v == null ? '—' : String(v)) },
      line('weight error ‖Ŵ−W‖²/‖W‖²', COLORS.bars),
      ...(hasOutput ? [line('output error', COLORS.line)] : []),
    ];
    mountChart(q('.layer-chart'), `Relative weight error${hasOutput ? ' and output error' : ''} per layer, for ` +
      `${layers.length} layers, log scale`, {
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: axes('layer (block index)', 'relative error (ratio, log scale)', { values: logTickValues((v) =>
        fmt.num(v, 2)) }, WHOLE_TICKS),
      series,
    }, [layers, relMse, ...(hasOutput ? [outputErr] : [])]);
  }

  function drawSparsity() {
    const { layers, sparsity } = perLayer(tensors);
    const any = sparsity.some((v) => v > 0);
    q('.sparsity-card').hidden = !any;
    if (!any) return;
    mountChart(q('.sparsity-chart'), `Share of zero weights per layer for ${layers.length} layers`, {
      scales: { x: { time: false, range: [layers[0] - 0.5, layers.at(-1) + 0.5] }, y: { range: [0, 1] } },
      axes: axes('layer (block index)', 'zeros (share of the weights)', { values: (u, ticks) =>
        ticks.map((v) => `${Math.round(v * 100)}%`) }, WHOLE_TICKS),
      series: [
        { label: 'layer', value: (u, v) => (v == null ? '—' : String(v)) },
        { label: 'zeros', stroke: COLORS.bars, fill: COLORS.bars, paths: blockBarsPath(), points: { show: false },
          value: (u, v) => (v == null ? '—' : fmt.percent(v)) },
      ],
    }, [layers, sparsity]);
    q('.sparsity-chart').dataset.values = sparsity.map((v) => v.toFixed(4)).join(',');
  }

  function renderTable() {
    q('.report-table tbody').innerHTML = sorted(tensors).map((t) => `<tr tabindex="0" data-name="${fmt.esc(t.name)}">
      <td class="mono">${fmt.esc(t.name)}</td><td>${fmt.esc(t.method)}</td>
      <td><code>${fmt.esc(t.dtype_before)}</code> → <code>${fmt.esc(t.dtype_after)}</code>${t.rank == null ? ''
        : ` <span title="stored as two factors A·B of this rank, run as two matmuls">rank ${t.rank}</span>`}</td>
      <td class="num">${t.bpw.toFixed(3)}</td><td class="num">${fmt.bytes(t.bytes)}</td>
      <td class="num">${fmt.num(t.rel_mse, 3)}</td><td class="num">${fmt.num(t.output_err, 3)}</td>
      <td class="num">${fmt.integer(t.outliers)}</td><td class="num">${fmt.percent(t.sparsity)}</td>
      <td class="num">${fmt.ms(t.seconds * 1000)}</td></tr>`).join('');
    q('.report-count').textContent = `(${tensors.length})`;
  }

  return {
    /** Shows `outcome` (from compress), which took `ms` in all. */
    show(outcome, ms) {
      tensors = outcome.report.tensors;
      renderFacts(outcome, ms);
      renderTable();
      drawLayers();
      drawSparsity();
      exportPanel.reset();
    },
  };
}

/**
 * Unweighted means of the weight and output errors over each block's rewritten tensors; tensors outside the
 * blocks (embedding, head) have no layer. A mean of 0 (nothing changed) cannot sit on a log axis: a gap.
 */
export function perLayer(tensors) {
  const byLayer = new Map();
  for (const t of tensors) {
    if (t.layer == null) continue;
    if (!byLayer.has(t.layer)) byLayer.set(t.layer, []);
    byLayer.get(t.layer).push(t);
  }
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  // A tensor rewritten by several steps has a row per step; its zeros are what the last one left.
  const last = (ts) => [...new Map(ts.map((t) => [t.name, t])).values()];
  const zeros = (ts) => {
    const params = ts.reduce((a, t) => a + t.params, 0);
    return params ? ts.reduce((a, t) => a + t.sparsity * t.params, 0) / params : 0;
  };
  const mean = (ts, key) => {
    const values = ts.map((t) => t[key]).filter((v) => v != null);
    const m = values.reduce((a, b) => a + b, 0) / values.length;
    return values.length && m > 0 ? m : null;
  };
  return {
    layers,
    relMse: layers.map((l) => mean(byLayer.get(l), 'rel_mse')),
    outputErr: layers.map((l) => mean(byLayer.get(l), 'output_err')),
    sparsity: layers.map((l) => zeros(last(byLayer.get(l)))),
  };
}

function seconds(s) {
  return fmt.ms(s * 1000);
}
