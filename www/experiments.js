// Experiments: every compression run becomes one record (its recipe, what it cost, what it did to the model),
// kept in localStorage under the identity of the model it ran on, so a reload or a later visit with the same
// model finds them again. Plain functions over plain data: the Experiments view draws them, exports them as
// CSV or JSON, and picks the Pareto frontier of a trade-off.

const PREFIX = 'squeeze.experiments.v1:';

/** Identifies a model across reloads: its name, files, parameter count and stored bytes. */
export function modelKey(model) {
  const s = model.summary;
  return [s.name ?? '', model.files.join('+'), s.params ?? '', s.bytes_total ?? ''].join('|');
}

/** The experiments saved for `key`, oldest first ([] when none or unreadable). */
export function loadExperiments(key, storage = localStorage) {
  try {
    const list = JSON.parse(storage.getItem(PREFIX + key) ?? '[]');
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/** Saves `list` for `key`; throws a readable error when the browser's storage is full. */
export function saveExperiments(key, list, storage = localStorage) {
  try {
    if (list.length) storage.setItem(PREFIX + key, JSON.stringify(list));
    else storage.removeItem(PREFIX + key);
  } catch (err) {
    throw new Error(`The experiments could not be saved (${err.message}): delete some, or export them first.`);
  }
}

const STEP_PARAMS = [
  ['bits', (v) => `${v}-bit`],
  ['group', (v) => (v > 0 ? `g${v}` : v === 0 ? 'per channel' : 'per tensor')],
  ['format', (v) => (v === 'int' ? '' : v)],
  ['sym', (v) => (v ? 'sym' : '')],
  ['act_order', (v) => (v ? 'act-order' : '')],
  ['target_bpw', (v) => (v > 0 ? `→ ${v} bpw` : '')],
  // Pruning: an N:M pattern decides the share, so it is named instead of the sparsity.
  ['sparsity', (v, s) => (s.pattern ? '' : `${+(100 * v).toFixed(1)}%`)],
  ['pattern', (v) => v],
  ['allot', (v) => (v === 'sensitivity' ? 'by sensitivity' : '')],
  ['ratio', (v) => `${+(100 * v).toFixed(1)}%`],
  ['count', (v) => `${v} blocks`],
  ['importance', (v) => `by ${v}`],
];

/** "rtn 4-bit g128 on blk\.0\." (steps joined by " + "): a recipe in a few words. */
export function describeRecipe(recipe) {
  const steps = Array.isArray(recipe?.steps) ? recipe.steps : [];
  return steps.map((s) => {
    const words = [s.method, ...STEP_PARAMS.filter(([k]) => s[k] != null).map(([k, f]) => f(s[k], s))];
    if (s.target) words.push(`on ${s.target}`);
    return words.filter(Boolean).join(' ');
  }).join(' + ') || '(empty recipe)';
}

/**
 * The record of one compression: `outcome` from the worker, the recipe text that ran, the evaluation and
 * calibration settings ({text, ctx, chunks} / {text, tokens}, or null), its per-layer errors and the time.
 */
export function experimentFrom(outcome, { recipe, evaluation, calibration, layers, ms }) {
  const r = outcome.report;
  const e = outcome.eval;
  const parsed = JSON.parse(recipe);
  return {
    id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`,
    created: new Date().toISOString(),
    recipe: parsed,
    summary: describeRecipe(parsed),
    bpw: r.bpw,
    bpw_rewritten: r.bpw_compressed,
    bpw_original: (8 * r.size_bytes_original) / r.params,
    size_bytes: r.size_bytes,
    size_bytes_original: r.size_bytes_original,
    tensors: r.tensors.length,
    ppl: e?.ppl ?? null,
    ppl_base: e?.ppl_base ?? null,
    kld: e?.kld ?? null,
    top1: e?.top1 ?? null,
    compress_seconds: outcome.seconds,
    total_seconds: ms / 1000,
    evaluation: e ? evaluation : null,
    calibration,
    layers,
    tokens_per_s: null,
    generation: null,
  };
}

/** Experiments measured the same way can share a plot: the evaluation text, ctx and chunks. */
export function evaluationKey(x) {
  return x.evaluation ? `${x.evaluation.text}|${x.evaluation.ctx}|${x.evaluation.chunks}` : '';
}

/**
 * Indices of the points on the Pareto frontier when both x and y are to be small, in order of x: a point is
 * on it when no other point is at least as good in both and better in one.
 */
export function paretoFrontier(points) {
  const order = points.map((p, i) => i).filter((i) => Number.isFinite(points[i].x) && Number.isFinite(points[i].y))
    .sort((a, b) => points[a].x - points[b].x || points[a].y - points[b].y);
  const front = [];
  let best = Infinity;
  for (const i of order) {
    if (points[i].y < best) {
      front.push(i);
      best = points[i].y;
    }
  }
  return front;
}

const CSV_COLUMNS = [
  ['id', (x) => x.id],
  ['created', (x) => x.created],
  ['recipe_summary', (x) => x.summary],
  ['recipe_json', (x) => JSON.stringify(x.recipe)],
  ['bits_per_weight', (x) => x.bpw],
  ['bits_per_weight_rewritten', (x) => x.bpw_rewritten],
  ['size_mb', (x) => x.size_bytes / 1e6],
  ['size_mb_original', (x) => x.size_bytes_original / 1e6],
  ['perplexity', (x) => x.ppl],
  ['perplexity_original', (x) => x.ppl_base],
  ['kld', (x) => x.kld],
  ['top1', (x) => x.top1],
  ['compress_seconds', (x) => x.compress_seconds],
  ['tokens_per_s', (x) => x.tokens_per_s],
  ['eval_text', (x) => x.evaluation?.text],
  ['eval_ctx', (x) => x.evaluation?.ctx],
  ['eval_chunks', (x) => x.evaluation?.chunks],
  ['calib_text', (x) => x.calibration?.text],
  ['calib_tokens', (x) => x.calibration?.tokens],
];

/** RFC 4180 CSV: a header row, then one row per experiment; empty cells for what was not measured. */
export function toCsv(list) {
  const cell = (v) => {
    if (v == null || (typeof v === 'number' && !Number.isFinite(v))) return '';
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const rows = [CSV_COLUMNS.map(([name]) => name), ...list.map((x) => CSV_COLUMNS.map(([, get]) => get(x)))];
  return rows.map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}
