// Two experiments side by side: their errors per layer on one chart, and what each model writes for the same
// prompt. The worker holds one compressed model at a time, so each is made again from its recipe first.
import * as fmt from '../format.js';
import { axes, COLORS, joinTables, logTickValues, mountChart, WHOLE_TICKS } from '../charts.js';
import { playText } from '../texts.js';

const DEFAULT_PROMPT = 'What is the capital of France?';

export function createExperimentCompare(root, { rpc, showError, onCompressed, onChange }) {
  root.innerHTML = `
    <section class="card compare" hidden>
      <h2>Compare two experiments</h2>
      <div class="compare-names"></div>
      <h3>Relative weight error per layer</h3>
      <p class="explain">The mean over each block's rewritten matrices of ‖Ŵ − W‖² / ‖W‖², for both; lower is
        closer to the original. A log scale: one step down is 10× smaller.</p>
      <p class="no-layers muted" hidden>Neither experiment rewrote a block's matrices.</p>
      <div class="chart compare-chart"></div>
      <h3>The same prompt, both models</h3>
      <p class="explain">Greedy decoding, so the two texts differ only because the weights do. The GPU keeps one
        compressed model at a time: each experiment's recipe is run again before it writes (seconds for data-free
        recipes; calibrated ones calibrate again on the same text).</p>
      <textarea class="compare-prompt" rows="2" spellcheck="false" aria-label="Prompt for both models"
        >${fmt.esc(DEFAULT_PROMPT)}</textarea>
      <div class="gen-actions">
        <label class="check"><input type="checkbox" class="compare-chat" checked /> Chat template</label>
        <label class="inline-field">Max tokens
          <input type="number" class="compare-tokens" value="16" min="1" max="256" step="1" /></label>
        <button type="button" class="primary compare-run">Generate with both</button>
        <button type="button" class="compare-stop" disabled>Stop</button>
        <span class="compare-status help" aria-live="polite"></span>
      </div>
      <div class="compare-outputs">
        <div class="compare-out" data-side="0"><h4></h4><div class="compare-text" data-state="idle"></div>
          <p class="rate help"></p></div>
        <div class="compare-out" data-side="1"><h4></h4><div class="compare-text" data-state="idle"></div>
          <p class="rate help"></p></div>
      </div>
    </section>`;

  const q = (sel) => root.querySelector(sel);
  let pair = [];
  let request = null;
  let stopping = false;

  function drawLayers() {
    const tables = pair.map((x) => {
      const l = x.layers ?? { layer: [], rel_mse: [] };
      return [l.layer, l.rel_mse];
    });
    const any = tables.some(([layers]) => layers.length);
    q('.no-layers').hidden = any;
    q('.compare-chart').hidden = !any;
    if (!any) return;
    const data = joinTables(tables);
    const line = (x, color, dash) => ({ label: x.summary, stroke: color, width: 2, dash, spanGaps: true,
      points: { show: true, size: 6, fill: color }, value: (u, v) => fmt.num(v) });
    mountChart(q('.compare-chart'), `Relative weight error per layer of ${pair[0].summary} and ${pair[1].summary}, ` +
      'log scale', {
      // One block alone would otherwise get uPlot's default 0–100 window.
      scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.5, hi + 0.5] }, y: { distr: 3 } },
      axes: axes('layer (block index)', 'weight error (log scale)',
        { values: logTickValues((v) => fmt.num(v, 2)) }, WHOLE_TICKS),
      series: [{ label: 'layer' }, line(pair[0], COLORS.bars), line(pair[1], COLORS.after, [6, 3])],
    }, data);
  }

  function renderOutputs() {
    pair.forEach((x, i) => {
      const box = q(`.compare-out[data-side="${i}"]`);
      box.querySelector('h4').textContent = `${i ? 'B' : 'A'}: ${x.summary}`;
      const out = box.querySelector('.compare-text');
      if (!request) {
        out.textContent = x.generation?.text ?? '';
        out.dataset.state = x.generation ? 'done' : 'idle';
      }
      box.querySelector('.rate').textContent = x.generation
        ? `“${x.generation.prompt}” · ${x.generation.tokens} tokens · decode ${x.generation.tokens_per_s.toFixed(2)} tok/s`
        : '';
    });
  }

  /** The compress options that make `x`'s model again: its calibration, no evaluation. */
  async function rerunOptions(x) {
    if (!x.calibration) return { ctx: 64, chunks: 1 };
    return { calib_text: await playText(x.calibration.text), calib_tokens: x.calibration.tokens,
      calib_seq: Math.min(256, x.calibration.tokens), ctx: 64, chunks: 1 };
  }

  async function runOne(x, i, prompt, opts) {
    const box = q(`.compare-out[data-side="${i}"]`);
    const out = box.querySelector('.compare-text');
    const status = (text) => (q('.compare-status').textContent = text);
    out.textContent = '';
    out.dataset.state = 'running';
    status(`${i ? 'B' : 'A'}: compressing again…`);
    request = rpc.start('compress', { recipe: JSON.stringify(x.recipe), options: await rerunOptions(x) },
      (phase, done, total) => status(`${i ? 'B' : 'A'}: ${phase} ${done} / ${total}`));
    const outcome = await request.promise;
    onCompressed(outcome, x.id);
    if (stopping) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
    status(`${i ? 'B' : 'A'}: writing…`);
    let text = '';
    request = rpc.start('generate', { prompt, options: { ...opts, compressed: true } }, {
      onText: (piece) => {
        text += piece;
        out.textContent = text;
      },
    });
    const result = await request.promise;
    out.textContent = result.text;
    out.dataset.state = 'done';
    const generation = { prompt, text: result.text, tokens: result.tokens.length,
      tokens_per_s: result.decode_tokens_per_s };
    onChange({ id: x.id, generation, tokens_per_s: result.decode_tokens_per_s });
    if (result.stop === 'cancelled') throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
  }

  async function run() {
    if (request || pair.length !== 2) return;
    const prompt = q('.compare-prompt').value;
    const maxTokens = Number(q('.compare-tokens').value);
    if (!prompt.trim()) return showError('The prompt is empty: type something for both models to continue.');
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 256) {
      return showError('Max tokens must be a whole number from 1 to 256.');
    }
    const opts = { chat: q('.compare-chat').checked, greedy: true, max_tokens: maxTokens };
    stopping = false;
    q('.compare-run').disabled = true;
    q('.compare-stop').disabled = false;
    root.classList.add('busy');
    const [a, b] = pair;
    try {
      await runOne(a, 0, prompt, opts);
      await runOne(b, 1, prompt, opts);
      q('.compare-status').textContent = `Done: the GPU now holds B's compressed model.`;
    } catch (err) {
      for (const out of root.querySelectorAll('.compare-text[data-state="running"]')) out.dataset.state = 'cancelled';
      if (err.code === 'cancelled') q('.compare-status').textContent = 'Stopped.';
      else {
        q('.compare-status').textContent = '';
        showError(`Comparing failed: ${err.message}`);
      }
    } finally {
      request = null;
      q('.compare-run').disabled = false;
      q('.compare-stop').disabled = true;
      root.classList.remove('busy');
    }
  }

  async function stop() {
    if (!request) return;
    stopping = true;
    q('.compare-stop').disabled = true;
    await rpc.stop(request.id).catch((err) => showError(`Could not stop: ${err.message}`));
  }

  q('.compare-run').onclick = run;
  q('.compare-stop').onclick = stop;

  return {
    /** Shows `experiments` when there are exactly two; `model` decides the chat template's default. */
    show(experiments, model) {
      const changed = experiments.map((x) => x.id).join() !== pair.map((x) => x.id).join();
      pair = experiments;
      q('.compare').hidden = pair.length !== 2;
      if (pair.length !== 2) return;
      if (changed && model) {
        q('.compare-chat').checked = /instruct|chat|-it\b/i.test(`${model.summary.name ?? ''} ${model.files.join(' ')}`);
      }
      q('.compare-names').textContent = `A: ${pair[0].summary}   ·   B: ${pair[1].summary}`;
      drawLayers();
      renderOutputs();
    },
  };
}
