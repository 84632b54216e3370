// Activation outliers (Explorer view): a text runs through the model and, at the inputs of each block's linear
// layers, the GPU records each channel's max|x| (and mean|x|). A heat map of layer × channel shows the few
// channels that are large in layer after layer — vertical stripes — and a chart follows the largest channels
// through the layers. These systematic outliers are why LLM.int8(), SmoothQuant and AWQ exist.
import * as fmt from '../format.js';
import { axes, COLORS, logTickValues, mountChart, WHOLE_TICKS } from '../charts.js';
import { showProgress } from '../progress.js';

const DEFAULT_TEXT = 'The old lighthouse keeper climbed the stairs every evening at dusk. From the top he could ' +
  'see the harbour, the fishing boats coming home, and the long line of the coast fading into the mist.';
const SITES = {
  attn_in: 'attention input (read by q, k, v)',
  attn_out_in: 'attention output (read by the output projection)',
  ffn_in: 'MLP input (read by gate and up)',
  down_in: 'down projection input (silu(gate)·up)',
};
const LINE_COLORS = ['#dc2626', '#d97706', '#0f766e', '#4f46e5', '#db2777', '#0891b2'];
/** A channel is an outlier of a layer when it is among that layer's top OUTLIER_RANK. */
const OUTLIER_RANK = 8;
const TRACKED = 6;
// Viridis at five stops, interpolated: dark = small, yellow = large.
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const MARGIN = { left: 52, right: 12, top: 8, bottom: 40 };

export function createActivationOutliers(root, { rpc, showError }) {
  root.innerHTML = `
    <section class="card activations">
      <h2>Activation outliers</h2>
      <p class="explain">The text below runs through the model; at the input of every block's linear layers the GPU
        records each channel's largest |x| over the tokens. A handful of channels are 10–100× larger than the rest,
        in the same place layer after layer (vertical stripes): a per-tensor 8-bit activation grid would spend its
        range on them. LLM.int8() keeps such channels in 16 bit, SmoothQuant moves them into the weights, AWQ
        protects the weights they multiply.</p>
      <textarea class="act-text" rows="3" spellcheck="false" aria-label="Text to run">${fmt.esc(DEFAULT_TEXT)}</textarea>
      <div class="toolbar">
        <label class="field" title="Tokens from the start of the text.">Max tokens
          <input type="number" class="act-tokens" value="64" min="2" max="2048" step="1" /></label>
        <button type="button" class="primary act-run">Record</button>
        <button type="button" class="act-cancel" disabled>Cancel</button>
        <label class="field">Input of<select class="act-site">${Object.entries(SITES).map(([k, v]) =>
          `<option value="${k}" ${k === 'attn_in' ? 'selected' : ''}>${v}</option>`).join('')}</select></label>
        <label class="field">Statistic<select class="act-stat">
          <option value="max_abs">max |x| over the tokens</option>
          <option value="mean_abs">mean |x| over the tokens</option></select></label>
      </div>
      <div class="progress act-progress" hidden>
        <div class="progress-label"><span class="phase"></span><span class="amount"></span></div>
        <progress max="1"></progress>
      </div>
      <p class="act-status help" aria-live="polite"></p>
      <div class="act-result" hidden>
        <h3>Layer × channel heat map</h3>
        <div class="heat-wrap"><canvas class="heat-map" role="img"></canvas></div>
        <div class="heat-legend"><span class="lo"></span><span class="ramp" aria-hidden="true"></span>
          <span class="hi"></span></div>
        <p class="heat-readout help" aria-live="polite">Point at the map to read a value.</p>
        <h3>The largest channels through the layers</h3>
        <div class="chart act-chart"></div>
        <h3>Systematic outlier channels</h3>
        <table class="act-table">
          <thead><tr><th class="num">Channel</th><th class="num">Layers in its top ${OUTLIER_RANK}</th>
            <th class="num">Peak</th><th class="num">Peak layer</th><th class="num">Peak × layer median</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>`;

  const q = (sel) => root.querySelector(sel);
  let request = null;
  let layers = null; // [{layer, sites: [{site, max_abs, mean_abs}]}]

  /** values[layer][channel] of the chosen site and statistic. */
  function matrix() {
    const site = q('.act-site').value;
    const stat = q('.act-stat').value;
    return layers.map((l) => l.sites.find((s) => s.site === site)[stat]);
  }

  function render() {
    if (!layers) return;
    const values = matrix();
    q('.act-result').hidden = false;
    const stats = channelStats(values);
    drawHeatMap(values);
    drawLines(values, stats);
    q('.act-table tbody').innerHTML = stats.slice(0, 10).map((c) => `<tr data-channel="${c.channel}">
      <td class="num">${c.channel}</td><td class="num">${c.layers} of ${values.length}</td>
      <td class="num">${fmt.num(c.peak)}</td><td class="num">${c.peakLayer}</td>
      <td class="num">${c.ratio.toFixed(1)}×</td></tr>`).join('');
    q('.activations').dataset.topChannel = String(stats[0].channel);
  }

  function drawHeatMap(values) {
    const canvas = q('.heat-map');
    const width = Math.max(q('.heat-wrap').clientWidth, 320);
    const rowHeight = Math.max(6, Math.min(14, Math.floor(360 / values.length)));
    const height = MARGIN.top + values.length * rowHeight + MARGIN.bottom;
    const dpr = devicePixelRatio;
    canvas.width = width * dpr;
    canvas.height = height * dpr;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext('2d');
    ctx.scale(dpr, dpr);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    const k = values[0].length;
    const plotW = width - MARGIN.left - MARGIN.right;
    const cols = Math.min(plotW, k);
    const colW = plotW / cols;
    const [lo, hi] = logRange(values);
    // Each pixel column shows the largest of the channels it covers, so no outlier disappears.
    values.forEach((row, l) => {
      for (let c = 0; c < cols; c++) {
        const a = Math.floor((c * k) / cols);
        const b = Math.max(Math.floor(((c + 1) * k) / cols), a + 1);
        let v = 0;
        for (let j = a; j < b; j++) v = Math.max(v, row[j]);
        ctx.fillStyle = colour((Math.log10(Math.max(v, 1e-12)) - lo) / (hi - lo || 1));
        ctx.fillRect(MARGIN.left + c * colW, MARGIN.top + l * rowHeight, Math.ceil(colW), rowHeight);
      }
    });
    ctx.fillStyle = '#374151';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const layerStep = Math.ceil(values.length / Math.floor((values.length * rowHeight) / 16));
    for (let l = 0; l < values.length; l += layerStep) {
      ctx.fillText(String(l), MARGIN.left - 6, MARGIN.top + (l + 0.5) * rowHeight);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const bottom = MARGIN.top + values.length * rowHeight;
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      const channel = Math.min(k - 1, Math.round(f * (k - 1)));
      ctx.fillText(String(channel), MARGIN.left + ((channel + 0.5) / k) * plotW, bottom + 4);
    }
    ctx.font = '600 12px system-ui, sans-serif';
    ctx.fillText(`input channel (0 – ${k - 1})`, MARGIN.left + plotW / 2, bottom + 20);
    ctx.save();
    ctx.translate(12, MARGIN.top + (values.length * rowHeight) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText('layer (block)', 0, -6);
    ctx.restore();
    const stat = q('.act-stat').selectedOptions[0].textContent;
    canvas.setAttribute('aria-label', `Heat map of ${stat} per input channel (${k}) and layer (${values.length}) at ` +
      `the ${SITES[q('.act-site').value]}, colour on a log scale from ${fmt.num(10 ** lo)} to ${fmt.num(10 ** hi)}`);
    q('.heat-legend .lo').textContent = fmt.num(10 ** lo);
    q('.heat-legend .hi').textContent = `${fmt.num(10 ** hi)} (${stat}, log colour scale)`;
    canvas.onmousemove = (e) => {
      const l = Math.floor((e.offsetY - MARGIN.top) / rowHeight);
      const c = Math.floor(((e.offsetX - MARGIN.left) / plotW) * k);
      if (l < 0 || l >= values.length || c < 0 || c >= k) return;
      q('.heat-readout').textContent = `layer ${l}, channel ${c}: ${fmt.num(values[l][c])}`;
    };
  }

  function drawLines(values, stats) {
    const tracked = stats.slice(0, TRACKED);
    const x = values.map((_, l) => l);
    const medians = values.map(median);
    mountChart(q('.act-chart'), `${q('.act-stat').value === 'max_abs' ? 'max' : 'mean'} |x| through the layers of ` +
      `channels ${tracked.map((c) => c.channel).join(', ')} and the median channel, log scale`, {
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: axes('layer (block index)', `${q('.act-stat').value === 'max_abs' ? 'max' : 'mean'} |x| (log scale)`,
        { values: logTickValues((v) => fmt.num(v, 2)) }, WHOLE_TICKS),
      series: [
        { label: 'layer', value: (u, v) => (v == null ? '—' : String(v)) },
        ...tracked.map((c, i) => ({ label: `channel ${c.channel}`, stroke: LINE_COLORS[i], width: 2,
          points: { show: false }, value: (u, v) => fmt.num(v) })),
        { label: 'median channel', stroke: COLORS.guide, width: 2, dash: [6, 4], points: { show: false },
          value: (u, v) => fmt.num(v) },
      ],
    }, [x, ...tracked.map((c) => values.map((row) => positive(row[c.channel]))), medians.map(positive)]);
  }

  async function run() {
    if (request) return;
    const text = q('.act-text').value;
    const maxTokens = Number(q('.act-tokens').value);
    if (!text.trim()) return showError('The text is empty: type or paste something for the model to read.');
    if (!Number.isInteger(maxTokens) || maxTokens < 2 || maxTokens > 2048) {
      return showError('Max tokens must be a whole number from 2 to 2048.');
    }
    q('.act-run').disabled = true;
    q('.act-cancel').disabled = false;
    root.classList.add('busy');
    q('.act-status').textContent = 'Running the text through the model…';
    const t0 = performance.now();
    try {
      request = rpc.start('activationStats', { text, maxTokens, seqLen: Math.min(256, maxTokens) },
        (phase, done, total) => showProgress(q('.act-progress'), { label: `block ${Math.min(done + 1, total)} of ` +
          `${total}`, amount: `${done} / ${total}`, done, total }));
      layers = await request.promise;
      render();
      q('.act-status').textContent = `${layers.length} blocks recorded in ${fmt.ms(performance.now() - t0)}.`;
    } catch (err) {
      if (err.code === 'cancelled') q('.act-status').textContent = 'Cancelled.';
      else {
        q('.act-status').textContent = '';
        showError(`Recording activations failed: ${err.message}`);
      }
    } finally {
      request = null;
      q('.act-run').disabled = false;
      q('.act-cancel').disabled = true;
      q('.act-progress').hidden = true;
      root.classList.remove('busy');
    }
  }

  q('.act-run').onclick = run;
  q('.act-cancel').onclick = async () => {
    if (!request) return;
    q('.act-cancel').disabled = true;
    await rpc.stop(request.id).catch((err) => showError(`Could not cancel: ${err.message}`));
  };
  q('.act-site').addEventListener('change', render);
  q('.act-stat').addEventListener('change', render);

  return {
    reset() {
      layers = null;
      q('.act-result').hidden = true;
      q('.act-status').textContent = '';
    },
    redraw: render,
  };
}

/**
 * Per channel: in how many layers it is among the OUTLIER_RANK largest, its peak value and where, and the peak
 * over that layer's median channel; most systematic first.
 */
function channelStats(values) {
  const k = values[0].length;
  const counts = new Array(k).fill(0);
  for (const row of values) {
    const top = row.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, OUTLIER_RANK);
    for (const [, j] of top) counts[j]++;
  }
  const medians = values.map(median);
  return counts.map((n, channel) => {
    let peakLayer = 0;
    values.forEach((row, l) => {
      if (row[channel] > values[peakLayer][channel]) peakLayer = l;
    });
    const peak = values[peakLayer][channel];
    return { channel, layers: n, peak, peakLayer, ratio: medians[peakLayer] > 0 ? peak / medians[peakLayer] : 0 };
  }).sort((a, b) => b.layers - a.layers || b.peak - a.peak);
}

/** log10 of the 1st percentile and the maximum of all positive values. */
function logRange(values) {
  const all = values.flat().filter((v) => v > 0).sort((a, b) => a - b);
  if (!all.length) return [0, 1];
  return [Math.log10(all[Math.floor(all.length * 0.01)]), Math.log10(all.at(-1))];
}

function colour(t) {
  const f = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(f), RAMP.length - 2);
  const m = f - i;
  const c = RAMP[i].map((v, j) => Math.round(v + m * (RAMP[i + 1][j] - v)));
  return `rgb(${c[0]} ${c[1]} ${c[2]})`;
}

function median(row) {
  const s = Array.from(row).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Zero cannot sit on a log axis: a gap. */
function positive(v) {
  return v > 0 ? v : null;
}
