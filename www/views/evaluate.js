// Evaluate view: perplexity of the loaded model on a text (a bundled public-domain play, or the user's own),
// computed chunk by chunk on the GPU, with the running estimate after each chunk drawn as a line.
import * as fmt from '../format.js';
import { axes, COLORS, mountChart, WHOLE_TICKS } from '../charts.js';
import { showProgress } from '../progress.js';
import { cachedPlay, playOptions, playText } from '../texts.js';
const PASTE = 'paste';
const CTXS = [64, 128, 256, 512, 1024];
const CONVENTIONS = {
  llama_cpp: 'llama.cpp: score the second half of each chunk',
  all_tokens: 'research: score every token',
};

export function createEvaluateView(root, { rpc, showError }) {
  root.innerHTML = `
    <div class="empty-note">Load a model to measure its perplexity.</div>
    <div class="evaluate" hidden>
      <section class="card">
        <h2>Perplexity</h2>
        <p class="explain">Perplexity is <i>e</i> raised to the average negative log-probability the model gives
          each next token of a text, so a perplexity of 20 means the model is on average as unsure as a pick among 20
          equally likely tokens: lower is better, and it is the usual measure of how much compression hurt a model.
          The text is cut into chunks of <em>ctx</em> tokens, each scored from scratch: llama.cpp's convention counts
          only the second half of each chunk, so every scored token sees at least ctx/2 tokens of context and the
          number matches <code>llama-perplexity</code>, while the research convention counts every token, including
          the first ones that see almost no context, which gives a higher perplexity.</p>
        <div class="toolbar eval-toolbar">
          <label class="field" title="The text to score: a bundled public-domain play, or your own text.">Text
            <select class="source">
              ${playOptions()}
              <option value="${PASTE}">Paste your own…</option>
            </select>
          </label>
          <label class="field" title="Tokens per chunk: each chunk is scored on its own, from an empty cache.">ctx
            <select class="ctx">${CTXS.map((c) => `<option ${c === 512 ? 'selected' : ''}>${c}</option>`).join('')}
            </select>
          </label>
          <label class="field" title="Score at most this many chunks from the start of the text (0: all of them).">Max chunks
            <input type="number" class="max-chunks" value="16" min="0" max="100000" step="1" />
          </label>
          <label class="field" title="Which tokens of each chunk count towards the perplexity.">Convention
            <select class="convention">
              ${Object.entries(CONVENTIONS).map(([v, label]) => `<option value="${v}">${label}</option>`).join('')}
            </select>
          </label>
          <button type="button" class="primary run" title="Compute the perplexity on the GPU">Run</button>
          <button type="button" class="cancel" disabled title="Stop after the chunk being scored now">Cancel</button>
        </div>
        <label class="field paste-field" hidden>Your text (it needs at least 2 × ctx tokens)
          <textarea class="paste" rows="6" spellcheck="false"
            placeholder="Paste a few thousand words of any text here."></textarea>
        </label>
        <p class="source-info help"></p>
        <div class="progress eval-progress" hidden>
          <div class="progress-label"><span class="phase"></span><span class="amount"></span></div>
          <progress max="1"></progress>
        </div>
        <p class="eval-status" aria-live="polite"></p>
      </section>
      <div class="eval-grid">
        <section class="card eval-result" hidden>
          <h2>Result</h2>
          <p class="ppl-line"><span class="ppl-value"></span> <span class="ppl-err muted"></span></p>
          <dl class="facts eval-facts"></dl>
        </section>
        <section class="card eval-chart-card" hidden>
          <h2>Running perplexity</h2>
          <p class="explain">The estimate after each chunk, over all tokens scored so far. It settles as more text
            is scored; a curve still moving means more chunks would change the number.</p>
          <div class="chart ppl-chart"></div>
        </section>
      </div>
    </div>`;

  const q = (sel) => root.querySelector(sel);
  let request = null;
  let cancelEarly = false; // Cancel pressed while the text was still being fetched
  let progress = { done: 0, total: 0 };

  function syncSource() {
    const paste = q('.source').value === PASTE;
    q('.paste-field').hidden = !paste;
    describeSource();
  }

  function describeSource() {
    const file = q('.source').value;
    const text = file === PASTE ? q('.paste').value : cachedPlay(file);
    q('.source-info').textContent = file === PASTE
      ? `${fmt.integer(text.length)} characters`
      : text != null ? `${fmt.integer(text.length)} characters, public domain (Project Gutenberg)`
        : 'A public-domain play from Project Gutenberg, fetched from this server.';
  }

  async function sourceText() {
    const file = q('.source').value;
    if (file === PASTE) return q('.paste').value;
    const text = await playText(file).catch((err) => {
      throw new Error(`${err.message} You can also paste your own text.`);
    });
    describeSource();
    return text;
  }

  function setRunning(running) {
    q('.run').disabled = running;
    q('.cancel').disabled = !running;
    for (const el of root.querySelectorAll('.eval-toolbar select, .eval-toolbar input, .paste')) {
      el.disabled = running;
    }
    root.classList.toggle('busy', running);
  }

  function showChunks(done, total) {
    progress = { done, total };
    showProgress(q('.eval-progress'), { label: done < total ? `Scoring chunk ${done + 1} of ${total}` : 'Done',
      amount: `${done} / ${total} chunks`, done, total });
  }

  async function run() {
    if (request) return;
    const ctx = Number(q('.ctx').value);
    const maxChunks = Number(q('.max-chunks').value);
    if (q('.max-chunks').value === '' || !Number.isInteger(maxChunks) || maxChunks < 0) {
      showError('Max chunks must be a whole number, 0 or more (0 scores every chunk).');
      return;
    }
    const allTokens = q('.convention').value === 'all_tokens';
    setRunning(true);
    q('.eval-status').textContent = 'Fetching the text…';
    q('.eval-status').dataset.state = 'running';
    progress = { done: 0, total: 0 };
    cancelEarly = false;
    const t0 = performance.now();
    try {
      const text = await sourceText();
      if (cancelEarly) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
      if (!text.trim()) throw new Error('The text is empty: paste some text to score.');
      q('.eval-status').textContent = 'Tokenizing and scoring on the GPU…';
      request = rpc.start('perplexity', { text, ctx, maxChunks, allTokens },
        (phase, done, total) => showChunks(done, total));
      const result = await request.promise;
      const ms = performance.now() - t0;
      showResult(result, ms);
      q('.eval-status').textContent = '';
      q('.eval-status').dataset.state = 'done';
      console.info(`[squeeze] perplexity ${result.ppl.toFixed(3)} ± ${result.ppl_err.toFixed(3)} at ctx ` +
        `${result.ctx}, ${result.chunks} chunks, ${result.tokens} tokens scored (${result.convention}) in ` +
        `${Math.round(ms)} ms`);
    } catch (err) {
      if (err.code === 'cancelled') {
        q('.eval-status').textContent = `Cancelled after ${progress.done} of ${progress.total || '?'} chunks.`;
        q('.eval-status').dataset.state = 'cancelled';
      } else {
        q('.eval-status').textContent = err.message;
        q('.eval-status').dataset.state = 'error';
        showError(`Perplexity failed: ${err.message}`);
      }
    } finally {
      request = null;
      q('.eval-progress').hidden = true;
      setRunning(false);
    }
  }

  function showResult(r, ms) {
    q('.eval-result').hidden = false;
    q('.eval-chart-card').hidden = false;
    const box = q('.eval-result');
    box.dataset.ppl = String(r.ppl);
    box.dataset.pplErr = String(r.ppl_err);
    box.dataset.ms = String(Math.round(ms));
    q('.ppl-value').textContent = `PPL ${r.ppl.toFixed(3)}`;
    q('.ppl-err').textContent = `± ${r.ppl_err.toFixed(3)}`;
    const facts = [
      ['tokens', 'Tokens scored', fmt.integer(r.tokens)],
      ['chunks', 'Chunks', fmt.integer(r.chunks)],
      ['ctx', 'Context (ctx)', fmt.integer(r.ctx)],
      ['convention', 'Convention', r.convention === 'all_tokens' ? 'research (every token)' : 'llama.cpp'],
      ['time', 'Time', fmt.ms(ms)],
      ['rate', 'Throughput', `${((r.chunks * r.ctx * 1000) / ms).toFixed(0)} tokens/s`],
    ];
    q('.eval-facts').innerHTML = facts.map(([key, label, shown]) =>
      `<div data-key="${key}"><dt>${label}</dt><dd>${fmt.esc(shown)}</dd></div>`).join('');
    drawChart(r);
  }

  function drawChart(r) {
    const y = Array.from(r.per_chunk);
    const x = y.map((_, i) => i + 1);
    const last = y[y.length - 1];
    mountChart(q('.ppl-chart'), `Running perplexity after each of ${y.length} chunks of ${r.ctx} tokens, ` +
      `ending at ${fmt.num(last)}`, {
      scales: {
        x: { time: false, range: (u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]) },
        y: { range: (u, min, max) => [Math.max(0, min - (max - min) * 0.2 - 0.5), max + (max - min) * 0.2 + 0.5] },
      },
      axes: axes('chunk', 'perplexity (so far)', { values: (u, ticks) => ticks.map((v) => fmt.num(v, 3)) },
        WHOLE_TICKS),
      series: [
        { label: 'chunk', value: (u, v) => (v == null ? '—' : String(v)) },
        { label: 'perplexity', stroke: COLORS.line, width: 2, points: { show: true, size: 7, fill: COLORS.line },
          value: (u, v) => fmt.num(v) },
      ],
    }, [x, y]);
  }

  async function cancel() {
    q('.cancel').disabled = true;
    if (!request) {
      cancelEarly = true;
      return;
    }
    q('.eval-status').textContent = 'Cancelling after the current chunk…';
    try {
      await rpc.stop(request.id);
    } catch (err) {
      showError(`Could not cancel: ${err.message}`);
    }
  }

  q('.source').addEventListener('change', syncSource);
  q('.paste').addEventListener('input', describeSource);
  q('.run').onclick = run;
  q('.cancel').onclick = cancel;
  syncSource();

  return {
    setModel() {
      q('.empty-note').hidden = true;
      q('.evaluate').hidden = false;
    },
  };
}
