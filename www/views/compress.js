// Compress view: build a recipe (steps of methods with their parameters), run it on the loaded model on the
// GPU with calibration and evaluation texts, and see what it did. The original model is kept: the result
// sits beside it, for the Weights view to compare and the Generate view to run.
import { showProgress } from '../progress.js';
import { playOptions, playText } from '../texts.js';
import { createRecipeForm } from './recipe-form.js';
import { createCompressResult } from './compress-result.js';

const NO_EVAL = 'none';
const CTXS = [64, 128, 256, 512];
// What each phase wasm reports is doing, from (done, total); the unit it counts, if any.
const PHASES = {
  calibration: { what: () => 'calibration: capturing the layers’ inputs', unit: '' },
  compress: { what: (d, t) => (d < t ? `compress: layer ${d + 1} of ${t}` : 'compress: done'), unit: 'layers' },
  'base log-probs': { what: (d, t) => `base log-probs: the original on chunk ${Math.min(d + 1, t)} of ${t}`,
    unit: 'chunks' },
  'kl-divergence': { what: (d, t) => `kl-divergence: the compressed model on chunk ${Math.min(d + 1, t)} of ${t}`,
    unit: 'chunks' },
};

export function createCompressView(root, { rpc, showError, openTensor, recipe, onRecipe, onCompressed }) {
  root.innerHTML = `
    <div class="empty-note">Load a model to compress it.</div>
    <div class="compress" hidden>
      <div class="compress-grid">
        <section class="card">
          <h2>Recipe</h2>
          <p class="explain">A recipe is a list of steps applied in order; each step rewrites the matrices its target
            matches (by default every linear layer of every block) with one method. The original model stays as it is:
            the compressed one is kept beside it, to compare in the Weights view and to run in the Generate view.</p>
          <div class="recipe-form"></div>
        </section>
        <section class="card compress-run">
          <div class="calibration" hidden>
            <h2>Calibration</h2>
            <p class="explain">Calibrated methods first run this text through the model, to learn which inputs matter
              (activation statistics and the Hessian XᵀX of each layer's inputs).</p>
            <div class="toolbar">
              <label class="field" title="The text whose activations the calibrated methods fit.">Text
                <select class="calib-play">${playOptions('macbeth_gut.txt')}</select></label>
              <label class="field" title="How many tokens from the start of the text to calibrate on.">Tokens
                <input type="number" class="calib-tokens" value="512" min="16" max="65536" step="1" /></label>
            </div>
          </div>
          <h2>Evaluation</h2>
          <p class="explain">Then both models read the same text: the perplexity of each, and how far the compressed
            model's next-token distributions moved from the original's (KL divergence, top-1 agreement).</p>
          <div class="toolbar">
            <label class="field" title="The text both models are scored on.">Text
              <select class="eval-play">${playOptions('hamlet_gut.txt')}
                <option value="${NO_EVAL}">None (skip)</option></select></label>
            <label class="field" title="Tokens per chunk; each chunk is scored from an empty cache.">ctx
              <select class="eval-ctx">${CTXS.map((c) => `<option ${c === 128 ? 'selected' : ''}>${c}</option>`)
                .join('')}</select></label>
            <label class="field" title="Chunks from the start of the text to compare.">Chunks
              <input type="number" class="eval-chunks" value="2" min="1" max="1000" step="1" /></label>
          </div>
          <div class="gen-actions">
            <button type="button" class="primary run" title="Compress the loaded model with this recipe">Run</button>
            <button type="button" class="cancel" disabled title="Stop after the current layer or chunk">Cancel</button>
          </div>
          <div class="progress compress-progress" hidden>
            <div class="progress-label"><span class="phase"></span><span class="amount"></span></div>
            <progress max="1"></progress>
          </div>
          <p class="compress-status" aria-live="polite"></p>
        </section>
      </div>
      <div class="compress-result" hidden></div>
    </div>`;

  const q = (sel) => root.querySelector(sel);
  const form = createRecipeForm(q('.recipe-form'), {
    onChange: () => {
      q('.calibration').hidden = !form.calibrated();
      onRecipe(form.text());
    },
  });
  const result = createCompressResult(q('.compress-result'), { rpc, showError, openTensor });
  if (recipe) form.setText(recipe);
  let request = null;
  let cancelEarly = false; // Cancel pressed while the texts were still being fetched

  function wholeNumber(sel, label) {
    const el = q(sel);
    const v = Number(el.value);
    const [min, max] = [Number(el.min), Number(el.max)];
    if (el.value === '' || !Number.isInteger(v) || v < min || v > max) {
      throw new Error(`${label} must be a whole number from ${min} to ${max}.`);
    }
    return v;
  }

  /** The run's settings as an experiment records them: {evaluation, calibration} (each null when unused). */
  function settings() {
    const evaluation = q('.eval-play').value === NO_EVAL ? null : { text: q('.eval-play').value,
      ctx: Number(q('.eval-ctx').value), chunks: wholeNumber('.eval-chunks', 'Evaluation chunks') };
    const calibration = form.calibrated()
      ? { text: q('.calib-play').value, tokens: wholeNumber('.calib-tokens', 'Calibration tokens') } : null;
    return { evaluation, calibration };
  }

  /** Checks the settings, then fetches the texts the run needs. */
  async function options({ evaluation, calibration }) {
    const opts = { ctx: Number(q('.eval-ctx').value), chunks: wholeNumber('.eval-chunks', 'Evaluation chunks') };
    if (calibration) {
      opts.calib_tokens = calibration.tokens;
      opts.calib_seq = Math.min(256, opts.calib_tokens); // a short budget still makes one whole sequence
      opts.calib_text = await playText(calibration.text);
    }
    if (evaluation) opts.eval_text = await playText(evaluation.text);
    return opts;
  }

  function setRunning(running) {
    q('.run').disabled = running;
    q('.cancel').disabled = !running;
    root.classList.toggle('busy', running);
    if (!running) q('.compress-progress').hidden = true;
  }

  function setStatus(text, state) {
    q('.compress-status').textContent = text;
    q('.compress-status').dataset.state = state;
  }

  function onProgress(phase, done, total) {
    const p = PHASES[phase] ?? { what: () => phase, unit: '' };
    const box = q('.compress-progress');
    showProgress(box, { label: p.what(done, total), amount: p.unit && `${done} / ${total} ${p.unit}`, done, total });
    box.dataset.phase = phase;
  }

  async function run() {
    if (request) return;
    const text = form.text();
    setRunning(true);
    setStatus('Fetching the texts…', 'running');
    cancelEarly = false;
    const t0 = performance.now();
    try {
      const used = settings();
      const opts = await options(used);
      if (cancelEarly) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
      setStatus('Compressing on the GPU…', 'running');
      request = rpc.start('compress', { recipe: text, options: opts }, onProgress);
      const outcome = await request.promise;
      const ms = performance.now() - t0;
      showOutcome(outcome, ms);
      setStatus('', 'done');
      onCompressed(outcome, { recipe: text, ms, ...used });
    } catch (err) {
      if (err.code === 'cancelled') {
        setStatus('Cancelled: the previous result, if any, is still the compressed model.', 'cancelled');
      } else {
        setStatus(err.message, 'error');
        showError(`Compression failed: ${err.message}`);
      }
    } finally {
      request = null;
      setRunning(false);
    }
  }

  function showOutcome(outcome, ms) {
    const box = q('.compress-result');
    box.hidden = false;
    box.dataset.bpwCompressed = String(outcome.report.bpw_compressed);
    result.show(outcome, ms);
    const e = outcome.eval;
    console.info(`[squeeze] compressed ${outcome.report.tensors.length} tensors to ` +
      `${outcome.report.bpw_compressed.toFixed(3)} bits/weight in ${outcome.seconds.toFixed(1)} s` +
      (e ? `: PPL ${e.ppl_base.toFixed(3)} → ${e.ppl.toFixed(3)}, KLD ${e.kld.toFixed(4)}, top-1 ` +
        `${(100 * e.top1).toFixed(1)}%` : '') + ` (${Math.round(ms)} ms in all)`);
  }

  async function cancel() {
    q('.cancel').disabled = true;
    if (!request) {
      cancelEarly = true;
      return;
    }
    setStatus('Cancelling after the current layer or chunk…', 'running');
    try {
      await rpc.stop(request.id);
    } catch (err) {
      showError(`Could not cancel: ${err.message}`);
    }
  }

  q('.run').onclick = run;
  q('.cancel').onclick = cancel;

  return {
    setMethods: form.setMethods,
    /** Puts `text` (a recipe's JSON) into the form. */
    setRecipe: form.setText,
    /** A new model drops the previous compressed one (wasm does too). */
    setModel() {
      q('.empty-note').hidden = true;
      q('.compress').hidden = false;
      q('.compress-result').hidden = true;
    },
  };
}
