// Model view: what was loaded (architecture, sizes per dtype, the GPU it sits on) and every tensor in a
// searchable, sortable table. Choosing a row opens that tensor in the Weights view.
import * as fmt from '../format.js';
import { activateRows, makeSortable, sortableHeader } from '../table.js';

const FACTS = [
  ['architecture', 'Architecture', (v, s) => [...new Set([s.family, v].filter(Boolean))].join(' · ') || '—'],
  ['n_layers', 'Layers', fmt.integer],
  ['d_model', 'Hidden size (d_model)', fmt.integer],
  ['n_heads', 'Attention heads', fmt.integer],
  ['n_kv_heads', 'KV heads', fmt.integer],
  ['head_dim', 'Head dim', fmt.integer],
  ['d_ffn', 'FFN size', fmt.integer],
  ['vocab', 'Vocabulary', fmt.integer],
  ['context', 'Context length', fmt.integer],
  ['rope_base', 'RoPE base', fmt.integer],
  ['norm_eps', 'Norm ε', (v) => fmt.num(v)],
  ['tied_embeddings', 'Tied embeddings', (v) => (v == null ? '—' : v ? 'yes' : 'no')],
  ['params', 'Parameters', fmt.count],
  ['bytes_total', 'Weights size', fmt.bytes],
];

const COLUMNS = [
  { key: 'name', label: 'Name', cmp: (a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }) },
  { key: 'shape', label: 'Shape', cmp: (a, b) => a.shape.length - b.shape.length || a.n_elements - b.n_elements },
  { key: 'dtype', label: 'Dtype', cmp: (a, b) => a.dtype.localeCompare(b.dtype) },
  { key: 'n_elements', label: 'Elements', cmp: (a, b) => a.n_elements - b.n_elements, num: true },
  { key: 'n_bytes', label: 'Size', cmp: (a, b) => a.n_bytes - b.n_bytes, num: true },
];

export function createModelView(root, { openTensor }) {
  root.innerHTML = `
    <div class="empty-note">Load a model to see its architecture and tensors.</div>
    <div class="model-grid" hidden>
      <section class="card">
        <h2 class="model-name"></h2>
        <p class="model-files muted"></p>
        <dl class="facts"></dl>
      </section>
      <section class="card">
        <h2>Storage by dtype</h2>
        <table class="dtype-table">
          <thead><tr><th>Dtype</th><th class="num">Parameters</th><th class="num">Bytes</th>
            <th>Share of bytes</th></tr></thead>
          <tbody></tbody>
        </table>
        <h2>GPU</h2>
        <dl class="facts gpu-facts"></dl>
        <details class="gpu-features"><summary></summary><p class="mono"></p></details>
      </section>
    </div>
    <section class="card tensors" hidden>
      <div class="table-head">
        <h2>Tensors <span class="tensor-count muted"></span></h2>
        <input type="search" class="tensor-search" placeholder="Filter by name or dtype (e.g. attn_q, q4_1)"
          aria-label="Filter tensors" />
      </div>
      <div class="table-scroll">
        <table id="tensor-table" class="tensor-table">
          <thead><tr>${sortableHeader(COLUMNS)}</tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <p class="muted hint">Click a row or press Enter on it to open its weights; ↑/↓ move between rows.</p>
    </section>`;

  const q = (sel) => root.querySelector(sel);
  const tbody = q('#tensor-table tbody');
  let tensors = [];
  let gpu = null;
  const sorted = makeSortable(q('#tensor-table'), COLUMNS, { key: 'name', dir: 1 }, renderTable);

  function renderFacts(model) {
    const s = model.summary;
    q('.model-name').textContent = s.name ?? model.files[0];
    q('.model-files').textContent = `${model.container.toUpperCase()} · ${model.files.join(', ')}`;
    q('.facts').innerHTML = FACTS.map(([key, label, f]) =>
      `<div data-key="${key}"><dt>${label}</dt><dd>${fmt.esc(f(s[key], s))}</dd></div>`).join('') +
      `<div data-key="tensor_count"><dt>Tensors</dt><dd>${fmt.integer(s.tensor_count)}</dd></div>`;
    const dtypes = Object.keys(s.bytes_by_dtype).sort((a, b) => s.bytes_by_dtype[b] - s.bytes_by_dtype[a]);
    q('.dtype-table tbody').innerHTML = dtypes.map((d) => {
      const share = (100 * s.bytes_by_dtype[d]) / s.bytes_total;
      return `<tr><td><code>${fmt.esc(d)}</code></td><td class="num">${fmt.count(s.params_by_dtype?.[d])}</td>
        <td class="num">${fmt.bytes(s.bytes_by_dtype[d])}</td>
        <td><span class="share" style="--share:${share.toFixed(1)}%"></span> ${share.toFixed(1)}%</td></tr>`;
    }).join('');
    renderGpu(model);
  }

  function renderGpu(model) {
    if (!gpu) return;
    const l = gpu.limits;
    const rows = [
      ['Adapter', `${gpu.adapter || 'unnamed'} (${gpu.device_type})`],
      ['Backend', gpu.backend],
      ['Max storage binding', fmt.bytes(l.max_storage_buffer_binding_size)],
      ['Max buffer', fmt.bytes(l.max_buffer_size)],
      ['Invocations / workgroup', fmt.integer(l.max_compute_invocations_per_workgroup)],
      ['Workgroup memory', fmt.bytes(l.max_compute_workgroup_storage_size)],
      ['f16 shaders', gpu.features.some((f) => /f16/i.test(f)) ? 'yes' : 'no (f32 path)'],
    ];
    if (model) {
      rows.push(['Model on GPU', fmt.bytes(model.gpu_bytes)]);
      rows.push(['Parse · upload', `${fmt.ms(model.timings.parse_ms)} · ${fmt.ms(model.timings.upload_ms)}`]);
    }
    q('.gpu-facts').innerHTML = rows.map(([k, v]) => `<div><dt>${k}</dt><dd>${fmt.esc(v)}</dd></div>`).join('');
    q('.gpu-features').hidden = !gpu.features.length;
    q('.gpu-features summary').textContent = `${gpu.features.length} optional features enabled`;
    q('.gpu-features p').textContent = gpu.features.join(', ');
  }

  function renderTable() {
    const needle = q('.tensor-search').value.trim().toLowerCase();
    const rows = sorted(
      tensors.filter((t) => !needle || t.name.toLowerCase().includes(needle) || t.dtype.toLowerCase() === needle));
    tbody.innerHTML = rows.map((t) => `<tr tabindex="0" data-name="${fmt.esc(t.name)}">
      <td class="mono">${fmt.esc(t.name)}</td><td class="mono">${fmt.shape(t.shape)}</td>
      <td><code>${fmt.esc(t.dtype)}</code></td><td class="num">${fmt.integer(t.n_elements)}</td>
      <td class="num">${fmt.bytes(t.n_bytes)}</td></tr>`).join('');
    q('.tensor-count').textContent =
      rows.length === tensors.length ? `(${tensors.length})` : `(${rows.length} of ${tensors.length})`;
  }

  q('.tensor-search').addEventListener('input', renderTable);
  activateRows(tbody, openTensor);

  return {
    setGpu(info) {
      gpu = info;
      renderGpu(null);
    },
    show(model) {
      tensors = model.tensors;
      q('.empty-note').hidden = true;
      q('.model-grid').hidden = false;
      q('.tensors').hidden = false;
      renderFacts(model);
      renderTable();
    },
  };
}
