// The Compress view's recipe editor: one card per step (method, its parameters, an optional target), and
// the same recipe as editable JSON, kept in step both ways. The recipe object is the single source of the
// form; the JSON text is what a run sends, so wasm checks exactly what the user sees.
import * as fmt from '../format.js';
import { FORMULAS } from '../formulas.js';

// [label, input attributes, help, the words it may be (a select)] of the parameters the methods take; an unlisted
// one shows its key.
const PARAMS = {
  bits: ['Bits', 'min="2" max="8" step="1"', 'Bits per quantised weight, 2 to 8.'],
  group: ['Group size', 'min="-1" step="1"', 'Weights sharing one scale along the input dimension: a positive ' +
    'multiple of 32; 0 = one scale per output channel; −1 = one per tensor.'],
  sym: ['Symmetric', '', 'Levels symmetric around 0, without a zero point.'],
  format: ['Format', '', 'The storage grid the weights are written in.'],
  search: ['Search range', '', "Search each group's clipping range for the smallest error instead of taking its " +
    'min and max.'],
  damp: ['Dampening', 'min="0" max="1" step="any"', 'Added to the Hessian diagonal (as a share of its mean) so ' +
    'that it can be inverted.'],
  block: ['Block', 'min="1" step="1"', 'Columns quantised together before their error is passed on.'],
  act_order: ['Act order', '', 'Quantise the columns with the largest Hessian diagonal first.'],
  grid: ['Grid points', 'min="1" step="1"', 'Candidates tried when searching the scale exponent and the clipping ' +
    'range.'],
  clip: ['Clip search', '', "Search each group's clipping range after scaling."],
  alpha: ['α', 'min="0" max="1" step="any"', 'Migration strength: how much of the activation range moves into the ' +
    'weights.'],
  threshold: ['Threshold', 'min="0" step="any"', "The outlier threshold (see the method's description)."],
  keep: ['Keep share', 'min="0" max="0.5" step="any"', 'Share of the input columns kept in 16 bit.'],
  iters: ['Iterations', 'min="1" step="1"', 'Optimisation rounds per group.'],
  sparsity: ['Sparsity', 'min="0" max="0.99" step="any"', 'Share of the weights set to zero, 0 to below 1 (with a ' +
    'pattern, the pattern decides).'],
  scope: ['Scope', '', 'Where weights are compared: within each output row, or over the whole matrix.',
    ['row', 'matrix']],
  pattern: ['Pattern', 'pattern="(\\d+:\\d+)?"', 'Empty: unstructured. N:M, e.g. 2:4: N of every M consecutive ' +
    'input weights are kept (what sparse tensor cores read).'],
  allot: ['Per block', '', 'uniform: every block pruned at the same share; sensitivity: each block alone is ' +
    'pruned by magnitude first, and the blocks that move the predictions most get fewer zeros (within ± spread), ' +
    'the mean kept.', ['uniform', 'sensitivity']],
  spread: ['Spread', 'min="0" max="0.5" step="any"', 'With allot = sensitivity: the most a block’s sparsity may ' +
    'differ from the mean (OWL’s λ).'],
  count: ['Blocks to drop', 'min="1" step="1"', 'How many transformer blocks to remove.'],
  importance: ['Importance', '', "How a block's importance is measured: block = 1 − cos(input, output) of the " +
    'residual stream; ppl = perplexity of the model without it (one forward pass per block).', ['block', 'ppl']],
};

// Parameters that mean something else in a method's own terms.
const LOW_RANK = {
  keep: ['Keep share', 'min="0" max="1" step="any"', "Share of each matrix's parameters the two factors hold, " +
    'below 1: the rank r is chosen so that r·(in + out) ≈ keep·in·out.'],
  alpha: ['α', 'min="0" max="1" step="any"', 'Exponent of the input scales mean|x|^α (0: plain SVD).'],
};
const WIDTH = {
  ratio: ['Share removed', 'min="0" max="0.99" step="any"', 'Share of the units (KV groups, MLP channels or hidden ' +
    'channels) removed from every block.'],
  importance: ['Importance', '', 'How units are ranked: activation = the size of their outputs on the calibration ' +
    'text (Minitron); flap = how much those outputs fluctuate × the weights reading them, the removed mean folded ' +
    'into a bias; magnitude = weight norms only (no data).', ['activation', 'flap', 'magnitude']],
};
const METHOD_PARAMS = {
  svd: LOW_RANK, asvd: LOW_RANK, prune_heads: WIDTH, prune_neurons: WIDTH, prune_embedding: WIDTH,
};

export function createRecipeForm(root, { onChange }) {
  root.innerHTML = `
    <ol class="steps"></ol>
    <div class="recipe-actions">
      <button type="button" class="add-step" title="Append a step; steps apply in order">+ add step</button>
      <label class="check sequential" title="GPTQ's convention: each block is calibrated on the outputs of the blocks
already compressed, so later layers correct earlier errors. Off: every block sees the original model's activations.">
        <input type="checkbox" class="sequential-box" checked /> Sequential calibration</label>
    </div>
    <details class="recipe-json">
      <summary>Recipe JSON</summary>
      <p class="explain">The same recipe as plain data, as the command line reads it: edit either side and the other
        follows. It is also in the page's address, so a link reproduces it.</p>
      <textarea class="recipe-text mono" rows="10" spellcheck="false" aria-label="Recipe JSON"></textarea>
      <p class="json-error" aria-live="polite"></p>
    </details>`;

  const q = (sel) => root.querySelector(sel);
  const text = q('.recipe-text');
  let methods = [];
  let formats = [];
  let recipe = { steps: [] };

  const info = (name) => methods.find((m) => m.name === name);
  const steps = () => (Array.isArray(recipe?.steps) ? recipe.steps : []);
  const newStep = (name, target) => ({ method: name, ...info(name).defaults, ...(target ? { target } : {}) });

  function render() {
    const list = steps();
    const drawable = list.every((s) => s && typeof s === 'object' && !Array.isArray(s));
    q('.steps').innerHTML = drawable ? list.map((s, i) => stepHtml(s, i, list.length)).join('') : '';
    q('.sequential-box').checked = recipe?.sequential !== false;
    q('.sequential').hidden = !calibrated();
    if (!drawable || !Array.isArray(recipe?.steps)) {
      showJsonProblem('The form cannot show this recipe: it needs {"steps": [{"method": …}, …]}. Run sends it as ' +
        'it is, and the page says what is wrong.');
    }
  }

  function stepHtml(step, i, count) {
    const m = info(step.method);
    const known = methods.map((x) => `<option value="${x.name}" ${x === m ? 'selected' : ''}>${x.name}` +
      `${x.calibrated ? ' (calibrated)' : ''}</option>`).join('');
    const unknown = m ? '' : `<option selected value="">${fmt.esc(String(step.method ?? ''))} (unknown)</option>`;
    const params = m ? Object.entries(m.defaults).map(([key, value]) => paramHtml(step, key, value)).join('') : '';
    return `<li class="step" data-index="${i}">
      <div class="step-head">
        <label class="field">Step ${i + 1}: method<select class="method">${unknown}${known}</select></label>
        <div class="about"><p>${m ? fmt.esc(m.about) : 'Not a method this build knows: a run is refused with the ' +
          'list of valid ones.'}</p>
          ${m && FORMULAS[m.name] ? `<p class="formula" title="The method's key formula">${fmt.esc(FORMULAS[m.name])}</p>`
          : ''}</div>
        <button type="button" class="remove" aria-label="Remove step ${i + 1}" ${count < 2 ? 'disabled' : ''}>
          Remove</button>
      </div>
      <div class="params">${params}
        <label class="field target" title="A regular expression over tensor names, e.g. ffn_down or blk\\.(0|1)\\.">
          Target (regex)<input type="text" data-key="target" value="${fmt.esc(step.target ?? '')}" spellcheck="false"
            placeholder="every linear layer of every block" /></label>
      </div>
    </li>`;
  }

  function paramHtml(step, key, fallback) {
    const [label, attrs, help, choices] = METHOD_PARAMS[step.method]?.[key] ?? PARAMS[key] ?? [key, 'step="any"', ''];
    const value = step[key] ?? fallback;
    const title = `title="${fmt.esc(help)}"`;
    if (typeof fallback === 'boolean') {
      return `<label class="check param" ${title}><input type="checkbox" data-key="${key}" ${value ? 'checked' : ''} />
        ${label}</label>`;
    }
    if (key === 'format' || choices) {
      const options = key === 'format' ? formats : choices;
      return `<label class="field param" ${title}>${label}<select data-key="${key}">${options.map((f) =>
        `<option ${f === value ? 'selected' : ''}>${f}</option>`).join('')}</select></label>`;
    }
    const type = typeof fallback === 'number' ? 'number' : 'text';
    return `<label class="field param" ${title}>${label}<input type="${type}" data-key="${key}" ${attrs}
      value="${fmt.esc(value)}" placeholder="${fmt.esc(fallback)}" /></label>`;
  }

  /** Writes the recipe into the JSON box after a form edit. */
  function changed() {
    text.value = JSON.stringify(recipe, null, 2);
    showJsonProblem('');
    q('.sequential').hidden = !calibrated();
    onChange();
  }

  function showJsonProblem(message) {
    if (message) q('.recipe-json').open = true; // a recipe from the URL may be broken before anyone looks
    q('.json-error').textContent = message;
    text.setAttribute('aria-invalid', String(Boolean(message)));
  }

  function setParam(step, input) {
    const key = input.dataset.key;
    const raw = input.type === 'checkbox' ? input.checked : input.value;
    if (raw === '') delete step[key]; // the method's default applies (shown as the placeholder)
    else step[key] = input.type === 'number' ? Number(raw) : raw;
  }

  q('.steps').addEventListener('change', (e) => {
    const i = Number(e.target.closest('.step')?.dataset.index);
    if (!e.target.matches('.method') || !info(e.target.value)) return;
    recipe.steps[i] = newStep(e.target.value, recipe.steps[i].target); // a new method starts from its defaults
    render();
    q(`.step[data-index="${i}"] .method`).focus();
    changed();
  });
  q('.steps').addEventListener('input', (e) => {
    const i = Number(e.target.closest('.step')?.dataset.index);
    if (!e.target.dataset.key) return;
    setParam(recipe.steps[i], e.target);
    changed();
  });
  q('.steps').addEventListener('click', (e) => {
    if (!e.target.matches('.remove')) return;
    recipe.steps.splice(Number(e.target.closest('.step').dataset.index), 1);
    render();
    changed();
    q('.add-step').focus();
  });
  q('.add-step').onclick = () => {
    if (!Array.isArray(recipe?.steps)) recipe = { steps: [] };
    recipe.steps.push(newStep(methods[0].name));
    render();
    changed();
    q(`.step[data-index="${recipe.steps.length - 1}"] .method`).focus();
  };
  q('.sequential-box').addEventListener('change', (e) => {
    if (e.target.checked) delete recipe.sequential; // the default
    else recipe.sequential = false;
    changed();
  });
  text.addEventListener('input', () => setText(text.value, false));

  function setText(value, fillBox = true) {
    if (fillBox) text.value = value;
    try {
      recipe = JSON.parse(value);
      showJsonProblem('');
      if (methods.length) render();
    } catch (err) {
      showJsonProblem(`Not valid JSON: ${err.message}`);
    }
    onChange();
  }

  function calibrated() {
    return steps().some((s) => info(s?.method)?.calibrated);
  }

  return {
    /** The methods and formats wasm offers; a recipe set before keeps, else one default step. */
    setMethods(list) {
      ({ methods, formats } = list);
      if (!steps().length && !text.value) {
        recipe = { steps: [newStep(methods[0].name)] };
        text.value = JSON.stringify(recipe, null, 2);
      }
      render();
      onChange();
    },
    setText,
    /** The recipe as the user wrote it (what a run sends). */
    text: () => text.value,
    calibrated,
  };
}
