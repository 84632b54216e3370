// Experiments view: every compression of this model as a row (kept across reloads), the trade-off plot of
// size against damage with its Pareto frontier, export as CSV or JSON, and two experiments side by side.
import * as fmt from '../format.js';
import { evaluationKey, loadExperiments, modelKey, saveExperiments, toCsv } from '../experiments.js';
import { makeSortable, sortableHeader } from '../table.js';
import { drawTradeoff } from './tradeoff-plot.js';
import { createExperimentCompare } from './experiment-compare.js';

const num = (get) => (a, b) => (get(a) ?? -Infinity) - (get(b) ?? -Infinity);
const COLUMNS = [
  { key: 'created', label: 'When', cmp: (a, b) => a.created.localeCompare(b.created) },
  { key: 'summary', label: 'Recipe', cmp: (a, b) => a.summary.localeCompare(b.summary) },
  { key: 'bpw', label: 'Bits / weight', num: true, cmp: num((x) => x.bpw) },
  { key: 'size', label: 'Size', num: true, cmp: num((x) => x.size_bytes) },
  { key: 'ppl', label: 'Perplexity', num: true, cmp: num((x) => x.ppl) },
  { key: 'kld', label: 'KLD', num: true, cmp: num((x) => x.kld) },
  { key: 'top1', label: 'Top-1', num: true, cmp: num((x) => x.top1) },
  { key: 'time', label: 'Time', num: true, cmp: num((x) => x.compress_seconds) },
  { key: 'speed', label: 'Decode tok/s', num: true, cmp: num((x) => x.tokens_per_s) },
];
const PLAYS = { 'hamlet_gut.txt': 'Hamlet', 'macbeth_gut.txt': 'Macbeth', 'tempest_gut.txt': 'The Tempest' };

export function createExperimentsView(root, { rpc, showError, onCompressed, onUseRecipe }) {
  root.innerHTML = `
    <div class="empty-note">Load a model and compress it: every run is recorded here.</div>
    <div class="experiments" hidden>
      <section class="card tradeoff">
        <h2>Trade-off</h2>
        <p class="explain">One point per experiment: how small the model became (x) against how far its predictions
          moved from the original's (y). The line is the <strong>Pareto frontier</strong>: the experiments that no other
          beats on both axes at once — everything above it is dominated. The grey mark is the original model. Click a
          point to select its experiment.</p>
        <div class="toolbar">
          <label class="field">x axis<select class="x-axis">
            <option value="bpw">bits per weight</option><option value="size">size (MB)</option></select></label>
          <label class="field">y axis<select class="y-axis">
            <option value="kld">KL divergence</option><option value="ppl">perplexity</option></select></label>
          <label class="check"><input type="checkbox" class="log-y" checked /> log y</label>
          <label class="field grow" title="Only experiments scored on the same text, ctx and chunks compare.">
            Measured on<select class="eval-group"></select></label>
        </div>
        <div class="chart tradeoff-chart"></div>
        <p class="plot-note muted" aria-live="polite"></p>
      </section>
      <section class="card">
        <div class="table-head">
          <h2>Experiments <span class="muted experiment-count"></span></h2>
          <button type="button" class="export-csv">Export CSV</button>
          <button type="button" class="export-json">Export JSON</button>
          <button type="button" class="delete-all">Delete all</button>
        </div>
        <div class="table-scroll">
          <table class="tensor-table experiment-table">
            <thead><tr><th scope="col">Compare</th>${sortableHeader(COLUMNS)}<th scope="col">Actions</th></tr></thead>
            <tbody></tbody>
          </table>
        </div>
        <p class="muted hint">Click a row (or press Enter on it) to select it; tick two experiments to compare them
          below. Kept in this browser for this model; “Use recipe” puts an experiment's recipe back into the Compress
          view. Decode speed appears once you have generated with that experiment's model.</p>
      </section>
      <div class="experiment-compare"></div>
    </div>`;

  const q = (sel) => root.querySelector(sel);
  let key = null;
  let list = [];
  let selected = null;
  let compared = []; // ids, at most two, in the order they were ticked
  let model = null;
  const sorted = makeSortable(q('.experiment-table'), COLUMNS, { key: 'created', dir: 1 }, renderTable);
  const compare = createExperimentCompare(q('.experiment-compare'), {
    rpc, showError, onCompressed, onChange: (x) => update(x.id, x),
  });

  const byId = (id) => list.find((x) => x.id === id);

  function persist() {
    try {
      saveExperiments(key, list);
    } catch (err) {
      showError(err.message);
    }
  }

  function render() {
    q('.experiment-count').textContent = `(${list.length})`;
    for (const b of root.querySelectorAll('.export-csv, .export-json, .delete-all')) b.disabled = !list.length;
    renderGroups();
    renderTable();
    drawPlot();
    compare.show(compared.map(byId).filter(Boolean), model);
  }

  function evaluationLabel(e) {
    return e ? `${PLAYS[e.text] ?? e.text}, ctx ${e.ctx}, ${e.chunks} chunk${e.chunks === 1 ? '' : 's'}` : '';
  }

  /** The evaluation settings the experiments used; the plot shows one at a time (the selected one's). */
  function renderGroups() {
    const pick = q('.eval-group');
    const groups = new Map();
    for (const x of list) if (x.evaluation) groups.set(evaluationKey(x), x.evaluation);
    const current = byId(selected)?.evaluation ? evaluationKey(byId(selected)) : pick.value;
    pick.innerHTML = [...groups].map(([k, e]) => `<option value="${fmt.esc(k)}">${fmt.esc(evaluationLabel(e))} ` +
      `(${list.filter((x) => evaluationKey(x) === k).length})</option>`).join('');
    if (groups.has(current)) pick.value = current;
    else if (groups.size) pick.value = [...groups.keys()].at(-1);
    pick.disabled = groups.size < 2;
  }

  function drawPlot() {
    const group = list.filter((x) => x.evaluation && evaluationKey(x) === q('.eval-group').value);
    const unscored = list.filter((x) => !x.evaluation).length;
    const chart = q('.tradeoff-chart');
    chart.hidden = !group.length;
    const notes = [];
    if (!group.length) notes.push('No experiment was evaluated yet: run a compression with an evaluation text.');
    else {
      const { plotted, frontier } = drawTradeoff(chart, group, {
        xKey: q('.x-axis').value, yKey: q('.y-axis').value, log: q('.log-y').checked, selected, onPick: select,
      });
      chart.dataset.plotted = plotted.join(',');
      chart.dataset.frontier = frontier.join(',');
      const x = byId(selected);
      if (x && plotted.includes(x.id)) {
        notes.push(`Selected: ${x.summary} — ${x.bpw.toFixed(3)} bits/weight, ${fmt.bytes(x.size_bytes)}, ` +
          `KLD ${fmt.num(x.kld)}, perplexity ${fmt.num(x.ppl)}${frontier.includes(x.id) ? ' (on the frontier)' : ''}.`);
      }
    }
    if (unscored) notes.push(`${unscored} experiment${unscored === 1 ? ' was' : 's were'} not evaluated and ` +
      `${unscored === 1 ? 'is' : 'are'} not plotted.`);
    q('.plot-note').textContent = notes.join(' ');
  }

  function renderTable() {
    q('.experiment-table tbody').innerHTML = sorted(list).map((x) => `<tr tabindex="0" data-id="${x.id}"
        aria-selected="${x.id === selected}" class="${x.id === selected ? 'selected' : ''}">
      <td><input type="checkbox" class="compare-pick" aria-label="Compare ${fmt.esc(x.summary)}"
        ${compared.includes(x.id) ? 'checked' : ''} /></td>
      <td class="mono">${fmt.esc(new Date(x.created).toLocaleString('en-GB', { dateStyle: 'short', timeStyle: 'short' }))}
        </td>
      <td class="mono recipe-cell" title="${fmt.esc(JSON.stringify(x.recipe))}">${fmt.esc(x.summary)}
        ${x.evaluation ? '' : '<span class="muted">(not evaluated)</span>'}</td>
      <td class="num" data-key="bpw">${x.bpw.toFixed(3)}</td>
      <td class="num" data-key="size">${fmt.bytes(x.size_bytes)}</td>
      <td class="num" data-key="ppl">${fmt.num(x.ppl)}</td>
      <td class="num" data-key="kld">${fmt.num(x.kld)}</td>
      <td class="num" data-key="top1">${x.top1 == null ? '—' : `${(100 * x.top1).toFixed(1)}%`}</td>
      <td class="num">${fmt.ms(x.compress_seconds * 1000)}</td>
      <td class="num" data-key="speed">${x.tokens_per_s == null ? '—' : x.tokens_per_s.toFixed(2)}</td>
      <td class="row-actions"><button type="button" class="use-recipe">Use recipe</button>
        <button type="button" class="delete" aria-label="Delete ${fmt.esc(x.summary)}">Delete</button></td>
    </tr>`).join('');
  }

  function select(id) {
    selected = id;
    render();
    q(`.experiment-table tr[data-id="${id}"]`)?.scrollIntoView({ block: 'nearest' });
  }

  function toggleCompare(id, on) {
    compared = compared.filter((c) => c !== id);
    if (on) compared.push(id);
    if (compared.length > 2) compared.shift(); // ticking a third replaces the oldest
    render();
  }

  function remove(id) {
    list = list.filter((x) => x.id !== id);
    compared = compared.filter((c) => c !== id);
    if (selected === id) selected = null;
    persist();
    render();
  }

  function update(id, fields) {
    const x = byId(id);
    if (!x) return;
    Object.assign(x, fields);
    persist();
    render();
  }

  function download(name, type, text) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type }));
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  const fileStem = () => `squeeze-experiments-${(model?.summary.name ?? 'model').replace(/[^\w.-]+/g, '_')}`;

  const tbody = q('.experiment-table tbody');
  tbody.addEventListener('click', (e) => {
    const row = e.target.closest('tr');
    if (!row) return;
    const id = row.dataset.id;
    if (e.target.matches('.compare-pick')) toggleCompare(id, e.target.checked);
    else if (e.target.matches('.delete')) remove(id);
    else if (e.target.matches('.use-recipe')) onUseRecipe(JSON.stringify(byId(id).recipe, null, 2));
    else select(id);
  });
  tbody.addEventListener('keydown', (e) => {
    const row = e.target.closest('tr');
    if (!row || e.target !== row) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      select(row.dataset.id);
      q(`.experiment-table tr[data-id="${row.dataset.id}"]`)?.focus();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      (e.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling)?.focus();
    }
  });
  for (const el of [q('.x-axis'), q('.y-axis'), q('.log-y'), q('.eval-group')]) el.addEventListener('change', drawPlot);
  q('.export-csv').onclick = () => download(`${fileStem()}.csv`, 'text/csv', toCsv(list));
  q('.export-json').onclick = () => download(`${fileStem()}.json`, 'application/json',
    JSON.stringify({ model: key, exported: new Date().toISOString(), experiments: list }, null, 2));
  q('.delete-all').onclick = () => {
    if (!confirm(`Delete all ${list.length} experiments of this model? Export them first to keep a copy.`)) return;
    list = [];
    compared = [];
    selected = null;
    persist();
    render();
  };

  return {
    /** Shows the experiments saved for `m`. */
    setModel(m) {
      model = m;
      key = modelKey(m);
      list = loadExperiments(key);
      selected = list.at(-1)?.id ?? null;
      compared = [];
      q('.empty-note').hidden = true;
      q('.experiments').hidden = false;
      render();
    },
    /** Records a new experiment and selects it. */
    add(experiment) {
      list.push(experiment);
      persist();
      select(experiment.id);
    },
    update,
    activate() {
      if (!q('.experiments').hidden) drawPlot(); // a hidden chart had no width to draw into
    },
  };
}
