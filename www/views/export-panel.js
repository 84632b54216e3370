// Download the compressed model as GGUF or safetensors: first the plan — for every tensor, whether its stored bytes
// go out unchanged or are decoded to 16/32-bit floats, and why — then the file, which the worker makes one piece
// at a time (the header, then each tensor) and the page writes as it comes.
import * as fmt from '../format.js';
import { showProgress } from '../progress.js';
import { openSaveSink } from '../save-file.js';

const DESCRIPTIONS = { gguf: 'GGUF model', safetensors: 'safetensors model' };

export function createExportPanel(root, { rpc, showError }) {
  root.innerHTML = `
    <h2>Download</h2>
    <p class="explain">Take the compressed model home. GGUF runs in llama.cpp; safetensors keeps Squeeze's own packed
      formats as bytes, with their layout named in the header (and config.json and the tokenizer inside it). What a format cannot hold
      is decoded to 16-bit floats (32-bit where the original was): the plan below says which, before anything is
      written.</p>
    <div class="toolbar">
      <button type="button" class="export-plan" data-format="gguf"
        title="Show what a GGUF file of the compressed model would hold">Download GGUF…</button>
      <button type="button" class="export-plan" data-format="safetensors"
        title="Show what a safetensors file of the compressed model would hold">Download safetensors…</button>
    </div>
    <div class="export-view" hidden>
      <p class="export-summary"></p>
      <ul class="export-notes muted"></ul>
      <div class="table-scroll">
        <table class="tensor-table export-table">
          <thead><tr><th>Tensor</th><th>Stored as</th><th>What the export does</th><th class="num">Size</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <div class="gen-actions export-actions">
        <button type="button" class="primary export-save">Save file</button>
        <button type="button" class="export-stop" disabled title="Stop after the current tensor">Cancel</button>
      </div>
      <div class="progress export-progress" hidden>
        <div class="progress-label"><span class="phase"></span><span class="amount"></span></div>
        <progress max="1"></progress>
      </div>
    </div>
    <p class="export-status" aria-live="polite"></p>`;

  const q = (sel) => root.querySelector(sel);
  let plan = null;
  let saving = false;
  let stopRequested = false;

  function setStatus(text, state) {
    q('.export-status').textContent = text;
    q('.export-status').dataset.state = state;
  }

  function setSaving(on) {
    saving = on;
    q('.export-save').disabled = on;
    q('.export-stop').disabled = !on;
    root.querySelectorAll('.export-plan').forEach((b) => (b.disabled = on));
    if (!on) q('.export-progress').hidden = true;
  }

  async function showPlan(format) {
    if (saving) return;
    setStatus('', 'idle');
    try {
      plan = await rpc.call('exportPlan', { format });
    } catch (err) {
      plan = null;
      q('.export-view').hidden = true;
      setStatus(err.message, 'error'); // a refusal explains itself here; nothing else went wrong
      return;
    }
    const p = plan;
    Object.assign(root.dataset, { format: p.format, fileName: p.file_name, bytes: String(p.bytes),
      stored: String(p.stored), dequantised: String(p.dequantised) });
    q('.export-summary').innerHTML = `<strong>${fmt.esc(p.file_name)}</strong>: ${fmt.bytes(p.bytes)};
      ${fmt.integer(p.stored)} tensors as stored, ${fmt.integer(p.dequantised)} decoded to floats.`;
    q('.export-notes').innerHTML = p.notes.map((n) => `<li>${fmt.esc(n)}</li>`).join('');
    q('.export-table tbody').innerHTML = p.tensors.map((t) => `<tr data-name="${fmt.esc(t.name)}"
        data-action="${t.action}">
      <td class="mono">${fmt.esc(t.out_name)}${t.out_name === t.name ? '' :
        `<div class="muted">from ${fmt.esc(t.name)}</div>`}</td>
      <td><code>${fmt.esc(t.dtype)}</code>${t.out_dtype === t.dtype ? '' : ` → <code>${fmt.esc(t.out_dtype)}</code>`}</td>
      <td>${t.action === 'stored' ? 'stored bytes' : '<strong>decoded</strong>'}${t.reason ?
        `<div class="muted">${fmt.esc(t.reason)}</div>` : ''}</td>
      <td class="num">${fmt.bytes(t.bytes)}</td></tr>`).join('');
    q('.export-view').hidden = false;
  }

  async function save() {
    if (!plan || saving) return;
    const { format, file_name: name } = plan;
    let sink;
    try {
      sink = await openSaveSink(name, DESCRIPTIONS[format]); // first: the picker needs this click
    } catch (err) {
      setStatus(`Cannot save: ${err.message}`, 'error');
      return;
    }
    if (!sink) {
      setStatus('Not saved: no file was chosen.', 'cancelled');
      return;
    }
    setSaving(true);
    stopRequested = false;
    setStatus('', 'running');
    let done = 0;
    try {
      const { bytes: total } = await rpc.call('exportBegin', { format });
      for (;;) {
        if (stopRequested) throw Object.assign(new Error('cancelled'), { code: 'cancelled' });
        const piece = await rpc.call('exportNext'); // one piece in flight at a time: memory stays one tensor
        if (!piece) break;
        await sink.write(piece);
        done += piece.byteLength;
        showProgress(q('.export-progress'), { label: `Writing ${name}`,
          amount: `${fmt.bytes(done)} / ${fmt.bytes(total)}`, done, total });
      }
      await sink.close();
      root.dataset.savedBytes = String(done);
      setStatus(`Saved ${name} (${fmt.bytes(done)})${sink.streamed ? '' : ': the browser downloads it'}.`, 'done');
    } catch (err) {
      await sink.abort().catch(() => {});
      await rpc.call('exportCancel').catch(() => {});
      if (err.code === 'cancelled') {
        setStatus('Cancelled: nothing was saved.', 'cancelled');
      } else {
        setStatus(err.message, 'error');
        showError(`Export failed: ${err.message}`);
      }
    } finally {
      setSaving(false);
    }
  }

  root.querySelectorAll('.export-plan').forEach((b) => (b.onclick = () => showPlan(b.dataset.format)));
  q('.export-save').onclick = save;
  q('.export-stop').onclick = () => {
    stopRequested = true;
    q('.export-stop').disabled = true;
  };

  return {
    /** A new compression makes the shown plan stale. */
    reset() {
      if (saving) return;
      plan = null;
      q('.export-view').hidden = true;
      setStatus('', 'idle');
    },
  };
}
