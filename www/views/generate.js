// Generate view: the loaded model continues a prompt on the GPU, token by token, with the sampling settings a
// user can change (greedy, temperature, top-k, top-p, repetition penalty, seed). The text streams in as it is
// decoded, with the live speed; a summary of the prefill and decode rates follows. Once something has been
// compressed, the compressed model can write instead of the original.
import * as fmt from '../format.js';

const DEFAULT_PROMPT = 'What is the capital of France?';

// [key, label, default, input attributes, help]: the numeric sampling settings, sent under these keys.
const SETTINGS = [
  ['max_tokens', 'Max tokens', 128, 'min="1" max="2048" step="1"',
    'Generation stops after this many new tokens, if the model has not ended its answer before.'],
  ['temperature', 'Temperature', 0.7, 'min="0" max="2" step="0.05"',
    'Divides the logits before sampling: below 1 sharpens the distribution, above 1 flattens it; 0 is greedy.'],
  ['top_k', 'Top-k', 40, 'min="0" max="1000" step="1"',
    'Only the k most likely tokens can be drawn (0 keeps all of them).'],
  ['top_p', 'Top-p', 0.95, 'min="0.01" max="1" step="0.01"',
    'Keeps the smallest set of likely tokens whose probabilities add up to p (nucleus sampling; 1 keeps all).'],
  ['repetition_penalty', 'Repetition penalty', 1.1, 'min="1" max="2" step="0.01"',
    'Above 1, tokens already among the last 64 become less likely, which breaks loops (1 is off).'],
  ['seed', 'Seed', 42, 'min="0" max="4294967295" step="1"',
    'Starts the random draws: the same seed and settings give the same text.'],
];
const SAMPLING_ONLY = new Set(['temperature', 'top_k', 'top_p', 'repetition_penalty', 'seed']);

const STOP_REASONS = {
  end_of_text: 'end of text: the model ended its answer',
  max_tokens: 'max tokens reached',
  context: 'the context window is full',
  cancelled: 'cancelled: stopped by you',
};

const CHATML_PREVIEW = '<|im_start|>user\n… your prompt …<|im_end|>\n<|im_start|>assistant\n';

export function createGenerateView(root, { rpc, showError, onGenerated }) {
  root.innerHTML = `
    <div class="empty-note">Load a model to generate text with it.</div>
    <div class="generate" hidden>
      <div class="gen-grid">
        <div class="gen-main">
          <section class="card">
            <h2>Prompt</h2>
            <p class="explain">The model reads the whole prompt in one pass (the <em>prefill</em>), then writes one
              token at a time (the <em>decode</em>), each new token fed back in: all of it runs on your GPU.</p>
            <textarea class="prompt" rows="4" spellcheck="false" aria-label="Prompt"
              title="The text the model continues. Ctrl+Enter (⌘+Enter) generates.">${fmt.esc(DEFAULT_PROMPT)}</textarea>
            <div class="chat-row">
              <label class="check" title="Wrap the prompt in the model's chat template as a user turn, so an instruct
model answers it instead of merely continuing the text.">
                <input type="checkbox" class="chat" checked /> Chat template</label>
              <span class="chat-note help"></span>
              <label class="inline-field" title="Compress the model first (Compress view) to run the compressed one.">
                Model
                <select class="model-choice" disabled>
                  <option value="original">original</option>
                  <option value="compressed">compressed</option>
                </select></label>
            </div>
            <div class="gen-actions">
              <button type="button" class="primary run" title="Generate a continuation (Ctrl+Enter)">Generate</button>
              <button type="button" class="stop" disabled title="Stop after the token being decoded now">Stop</button>
              <span class="help"><kbd>Ctrl</kbd>+<kbd>Enter</kbd> generates</span>
              <span class="live mono" aria-live="off"></span>
            </div>
          </section>
          <section class="card">
            <h2>Output</h2>
            <div class="gen-output" data-state="idle" aria-live="polite" aria-busy="false"></div>
            <p class="gen-placeholder muted">The generated text appears here as it is decoded.</p>
            <dl class="facts gen-summary" hidden></dl>
          </section>
        </div>
        <section class="card gen-settings">
          <h2>Sampling</h2>
          <p class="explain">At every step the model gives each of its vocabulary's tokens a probability; these
            settings decide how the next token is picked from them.</p>
          <label class="check" title="Always take the single most likely token: deterministic, but prone to loops.">
            <input type="checkbox" class="greedy" checked /> Greedy (most likely token)</label>
          <p class="help">Always takes the most likely token; the same prompt always gives the same text.</p>
          ${SETTINGS.map(([key, label, value, attrs, help]) => `
            <label class="field setting" data-key="${key}" title="${fmt.esc(help)}">${label}
              <input type="number" class="${key}" value="${value}" ${attrs} />
              <span class="help">${fmt.esc(help)}</span>
            </label>`).join('')}
        </section>
      </div>
    </div>`;

  const q = (sel) => root.querySelector(sel);
  const output = q('.gen-output');
  let request = null; // {id, promise} of the generation in progress
  let stopping = false;

  function syncControls() {
    const greedy = q('.greedy').checked;
    for (const key of SAMPLING_ONLY) {
      q(`.${key}`).disabled = greedy;
      q(`.setting[data-key="${key}"]`).classList.toggle('off', greedy);
    }
    q('.chat-note').innerHTML = q('.chat').checked
      ? `The prompt is sent as a user turn in the model's ChatML template: <code>${fmt.esc(CHATML_PREVIEW)
        .replace(/\n/g, '↵')}</code>`
      : 'The prompt is sent as raw text: the model continues it as it stands.';
  }

  function options() {
    const value = (key) => Number(q(`.${key}`).value);
    const opts = { chat: q('.chat').checked, greedy: q('.greedy').checked,
      compressed: q('.model-choice').value === 'compressed' };
    for (const [key, label, fallback, attrs] of SETTINGS) {
      if (opts.greedy && SAMPLING_ONLY.has(key)) continue; // greyed out: not used, not checked
      const input = q(`.${key}`);
      const v = value(key);
      const min = Number(/min="([^"]+)"/.exec(attrs)[1]);
      const max = Number(/max="([^"]+)"/.exec(attrs)[1]);
      if (input.value === '' || !Number.isFinite(v) || v < min || v > max) {
        throw new Error(`${label} must be a number from ${min} to ${max}.`);
      }
      opts[key] = Number.isInteger(fallback) ? Math.round(v) : v; // counts and the seed are integers
    }
    opts.repeat_last_n = 64;
    return opts;
  }

  function setRunning(running) {
    q('.run').disabled = running;
    q('.stop').disabled = !running;
    output.setAttribute('aria-busy', String(running));
    root.classList.toggle('busy', running);
  }

  async function run() {
    if (request) return;
    const prompt = q('.prompt').value;
    if (!prompt.trim()) {
      showError('The prompt is empty: type something for the model to continue.');
      return;
    }
    let opts;
    try {
      opts = options();
    } catch (err) {
      showError(err.message);
      return;
    }
    let text = '';
    let shownTokens = 0;
    output.textContent = '';
    output.dataset.state = 'running';
    output.dataset.tokens = '0';
    q('.gen-placeholder').hidden = true;
    q('.gen-summary').hidden = true;
    q('.live').textContent = 'prefill…';
    delete q('.live').dataset.tokensPerS;
    stopping = false;
    setRunning(true);
    const onText = (piece, tokens, ms) => {
      text += piece;
      output.textContent = text;
      output.dataset.tokens = String(tokens);
      output.scrollTop = output.scrollHeight;
      // The first token comes straight from the prefill, so a rate needs at least two.
      if (tokens >= 2 && ms > 0 && tokens !== shownTokens) {
        const rate = (tokens * 1000) / ms;
        q('.live').dataset.tokensPerS = String(rate);
        q('.live').textContent = `${tokens} tokens · ${rate.toFixed(1)} tok/s`;
      } else if (tokens === 1) {
        q('.live').textContent = '1 token';
      }
      shownTokens = tokens;
    };
    request = rpc.start('generate', { prompt, options: opts }, { onText });
    try {
      const result = await request.promise;
      output.textContent = result.text;
      output.dataset.state = result.stop === 'cancelled' ? 'cancelled' : 'done';
      output.dataset.tokens = String(result.tokens.length);
      showSummary(result, opts.compressed ? 'compressed' : 'original');
      onGenerated(result, { prompt, compressed: opts.compressed });
      console.info(`[squeeze] generated ${result.tokens.length} tokens: prefill ${result.prompt_tokens} tokens at ` +
        `${result.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${result.decode_tokens_per_s.toFixed(2)} tok/s ` +
        `(stop: ${result.stop})`);
    } catch (err) {
      if (err.code === 'cancelled') {
        output.dataset.state = 'cancelled';
        q('.live').textContent = 'stopped before it started';
      } else {
        output.dataset.state = 'error';
        q('.live').textContent = '';
        showError(`Generation failed: ${err.message}`);
      }
    } finally {
      request = null;
      setRunning(false);
      if (!output.textContent) q('.gen-placeholder').hidden = false;
    }
  }

  function showSummary(r, model) {
    const rows = [
      ['prompt_tokens', 'Prompt tokens', r.prompt_tokens, fmt.integer(r.prompt_tokens)],
      ['tokens', 'Generated tokens', r.tokens.length, fmt.integer(r.tokens.length)],
      ['prefill_tokens_per_s', 'Prefill', r.prefill_tokens_per_s,
        `${r.prefill_tokens_per_s.toFixed(1)} tok/s (${fmt.ms(r.prefill_ms)})`],
      ['decode_tokens_per_s', 'Decode', r.decode_tokens_per_s,
        `${r.decode_tokens_per_s.toFixed(2)} tok/s (${fmt.ms(r.decode_ms)})`],
      ['stop', 'Stop reason', r.stop, STOP_REASONS[r.stop] ?? r.stop],
      ['model', 'Model', model, model],
    ];
    const dl = q('.gen-summary');
    dl.innerHTML = rows.map(([key, label, raw, shown]) =>
      `<div data-key="${key}" data-value="${fmt.esc(raw)}"><dt>${label}</dt><dd>${fmt.esc(shown)}</dd></div>`).join('');
    dl.hidden = false;
    q('.live').textContent = '';
  }

  async function stop() {
    if (!request || stopping) return;
    stopping = true;
    q('.stop').disabled = true;
    q('.live').textContent += ' · stopping…';
    try {
      await rpc.stop(request.id);
    } catch (err) {
      showError(`Could not stop: ${err.message}`);
    }
  }

  /** Whether a compressed model exists to choose (a new model has none). */
  function setCompressed(available) {
    const pick = q('.model-choice');
    pick.disabled = !available;
    if (!available) pick.value = 'original';
    pick.parentElement.title = available ? 'Which model writes: the loaded original, or the last compressed one.'
      : 'Compress the model first (Compress view) to run the compressed one.';
  }

  q('.run').onclick = run;
  q('.stop').onclick = stop;
  q('.greedy').addEventListener('change', syncControls);
  q('.chat').addEventListener('change', syncControls);
  root.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
  syncControls();

  return {
    setModel(model) {
      // Instruct / chat models expect their template; base models continue raw text.
      const name = `${model.summary.name ?? ''} ${model.files.join(' ')}`;
      q('.chat').checked = /instruct|chat|-it\b/i.test(name);
      syncControls();
      setCompressed(false);
      q('.empty-note').hidden = true;
      q('.generate').hidden = false;
    },
    activate() {
      if (!q('.generate').hidden) q('.prompt').focus();
    },
    setCompressed,
  };
}
