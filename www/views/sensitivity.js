// Layer sensitivity scan (Explorer view): each block compressed alone with one data-free step, and the KL
// divergence of the whole model from the original measured after each; the blocks that move the model most
// are the ones to give more bits.
import * as fmt from '../format.js';
import { axes, blockBarsPath, COLORS, logTickValues, mountChart, WHOLE_TICKS } from '../charts.js';
import { showProgress } from '../progress.js';
import { playOptions, playText } from '../texts.js';

const CTXS = [32, 64, 128, 256];
const TOP = 5;
const PHASES = {
  'base log-probs': (d, t) => `the original on chunk ${Math.min(d + 1, t)} of ${t}`,
  sensitivity: (d, t) => (d < t ? `block ${d + 1} of ${t}: compressed alone, then scored` : 'done'),
};

export function createSensitivityScan(root, { rpc, showError }) {
  root.innerHTML = `
    <section class="card sensitivity">
      <h2>Layer sensitivity</h2>
      <p class="explain">Which blocks can take fewer bits? Each block is compressed <em>alone</em> with the step below
        while the rest stay original, and the whole model's next-token distributions are compared with the
        original's (KL divergence, nats per token). Tall bars are blocks that hurt the model most when squeezed.</p>
      <div class="toolbar">
        <label class="field">Method<select class="sens-method"></select></label>
        <label class="field sens-bits-field" title="Bits per quantised weight.">Bits
          <input type="number" class="sens-bits" value="4" min="2" max="8" step="1" /></label>
        <label class="field sens-group-field" title="Weights sharing one scale (0: per output channel).">Group
          <input type="number" class="sens-group" value="128" min="0" step="32" /></label>
        <label class="field grow" title="A regular expression over tensor names: which blocks' linears to scan.">
          Blocks (regex)<input type="text" class="sens-target" spellcheck="false" placeholder="every block" /></label>
      </div>
      <div class="toolbar">
        <label class="field">Text<select class="sens-text">${playOptions('hamlet_gut.txt')}</select></label>
        <label class="field">ctx<select class="sens-ctx">${CTXS.map((c) =>
          `<option ${c === 64 ? 'selected' : ''}>${c}</option>`).join('')}</select></label>
        <label class="field">Chunks<input type="number" class="sens-chunks" value="1" min="1" max="64" step="1" />
          </label>
        <button type="button" class="primary sens-run">Scan</button>
        <button type="button" class="sens-cancel" disabled>Cancel</button>
        <label class="check"><input type="checkbox" class="sens-log" checked /> log scale</label>
      </div>
      <div class="progress sens-progress" hidden>
        <div class="progress-label"><span class="phase"></span><span class="amount"></span></div>
        <progress max="1"></progress>
      </div>
      <p class="sens-status help" aria-live="polite"></p>
      <div class="chart sens-chart" hidden></div>
      <p class="sens-top"></p>
    </section>`;

  const q = (sel) => root.querySelector(sel);
  let methods = [];
  let request = null;
  let result = null; // {layers: [{layer, kld, top1, bpw, seconds}], step}

  /** Shows the method's bits and group, at its defaults. */
  function syncParams() {
    const m = methods.find((x) => x.name === q('.sens-method').value);
    for (const key of ['bits', 'group']) {
      const has = Boolean(m && key in m.defaults);
      q(`.sens-${key}-field`).hidden = !has;
      if (has) q(`.sens-${key}`).value = m.defaults[key];
    }
  }

  function step() {
    const m = methods.find((x) => x.name === q('.sens-method').value);
    const s = { method: m.name };
    for (const key of ['bits', 'group']) {
      if (!(key in m.defaults)) continue;
      const v = Number(q(`.sens-${key}`).value);
      if (!Number.isInteger(v)) throw new Error(`The scan's ${key} must be a whole number.`);
      s[key] = v;
    }
    const target = q('.sens-target').value.trim();
    if (target) s.target = target;
    return s;
  }

  function draw() {
    if (!result) return;
    const { layers } = result;
    const log = q('.sens-log').checked;
    const chart = q('.sens-chart');
    chart.hidden = false;
    chart.dataset.blocks = String(layers.length);
    const yTitle = `KLD (nats / token${log ? ', log scale' : ''})`;
    mountChart(chart, `KL divergence from the original with one block compressed by ${result.label}, for ` +
      `${layers.length} blocks${log ? ', log scale' : ''}`, {
      scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.6, hi + 0.6] },
        // On a log axis bars rise from the bottom of the scale: start well below the smallest.
        y: log ? { distr: 3, range: (u, lo, hi) => [lo / 4, hi * 1.5] } : { range: (u, lo, hi) => [0, hi * 1.1] } },
      axes: axes('block (layer index)', yTitle, { values: logTickValues((v) => fmt.num(v, 2)) }, WHOLE_TICKS),
      series: [
        { label: 'block', value: (u, v) => (v == null ? '—' : String(v)) },
        { label: 'KLD', fill: COLORS.bars, stroke: COLORS.bars, paths: blockBarsPath(), points: { show: false },
          value: (u, v) => fmt.num(v) },
      ],
    }, [layers.map((l) => l.layer), layers.map((l) => (log && l.kld <= 0 ? null : l.kld))]);
    const top = [...layers].sort((a, b) => b.kld - a.kld).slice(0, TOP);
    q('.sens-top').innerHTML = `Most sensitive: ${top.map((l) => `block <strong>${l.layer}</strong> ` +
      `(KLD ${fmt.num(l.kld)}, top-1 ${(100 * l.top1).toFixed(1)}%)`).join(', ')}. Least: block ` +
      `${[...layers].sort((a, b) => a.kld - b.kld)[0].layer}.`;
  }

  async function run() {
    if (request) return;
    let s;
    let chunks;
    try {
      s = step();
      chunks = Number(q('.sens-chunks').value);
      if (!Number.isInteger(chunks) || chunks < 1 || chunks > 64) throw new Error('Chunks must be from 1 to 64.');
    } catch (err) {
      return showError(err.message);
    }
    q('.sens-run').disabled = true;
    q('.sens-cancel').disabled = false;
    root.classList.add('busy');
    q('.sens-status').textContent = 'Fetching the text…';
    const t0 = performance.now();
    try {
      const text = await playText(q('.sens-text').value);
      q('.sens-status').textContent = 'Scanning on the GPU…';
      request = rpc.start('sensitivity', { step: JSON.stringify(s),
        options: { text, ctx: Number(q('.sens-ctx').value), chunks } }, (phase, done, total) => {
        const box = q('.sens-progress');
        showProgress(box, { label: `${phase}: ${(PHASES[phase] ?? (() => ''))(done, total)}`,
          amount: `${done} / ${total}`, done, total });
        box.dataset.phase = phase;
      });
      const layers = await request.promise;
      result = { layers, label: `${s.method}${s.bits ? ` ${s.bits}-bit` : ''}` };
      draw();
      q('.sens-status').textContent = `${layers.length} blocks scanned in ${fmt.ms(performance.now() - t0)}.`;
      console.info(`[squeeze] sensitivity scan of ${layers.length} blocks with ${JSON.stringify(s)}: KLD ` +
        layers.map((l) => `${l.layer}:${l.kld.toFixed(4)}`).join(' '));
    } catch (err) {
      if (err.code === 'cancelled') q('.sens-status').textContent = 'Cancelled.';
      else {
        q('.sens-status').textContent = '';
        showError(`Sensitivity scan failed: ${err.message}`);
      }
    } finally {
      request = null;
      q('.sens-run').disabled = false;
      q('.sens-cancel').disabled = true;
      q('.sens-progress').hidden = true;
      root.classList.remove('busy');
    }
  }

  q('.sens-run').onclick = run;
  q('.sens-cancel').onclick = async () => {
    if (!request) return;
    q('.sens-cancel').disabled = true;
    q('.sens-status').textContent = 'Cancelling after the current block or chunk…';
    await rpc.stop(request.id).catch((err) => showError(`Could not cancel: ${err.message}`));
  };
  q('.sens-method').addEventListener('change', syncParams);
  q('.sens-log').addEventListener('change', draw);

  return {
    /** The data-free methods can be scanned (calibrated ones need the blocks before them). */
    setMethods(list) {
      methods = list.methods.filter((m) => !m.calibrated);
      q('.sens-method').innerHTML = methods.map((m) => `<option ${m.name === 'rtn' ? 'selected' : ''}>${m.name}` +
        '</option>').join('');
      syncParams();
    },
    /** A new model: the old scan no longer applies. */
    reset() {
      result = null;
      q('.sens-chart').hidden = true;
      q('.sens-top').textContent = '';
      q('.sens-status').textContent = '';
    },
    redraw: draw,
  };
}
