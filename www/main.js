// The UI thread: page frame, loading, views. No wasm and no GPU here — all of that lives in worker.js.
import 'uplot/dist/uPlot.min.css';
import { startWorker } from './rpc.js';
import * as fmt from './format.js';
import { showProgress } from './progress.js';
import { createModelView } from './views/model.js';
import { createWeightsView } from './views/weights.js';
import { createGenerateView } from './views/generate.js';
import { createEvaluateView } from './views/evaluate.js';
import { createCompressView } from './views/compress.js';

const DEFAULT_MODEL = { file: 'SmolLM2-135M-Instruct.Q4_1.gguf', name: 'SmolLM2-135M-Instruct', quant: 'Q4_1' };
// A dropped folder also holds READMEs, licences, generation configs …; the loader wants only these.
const MODEL_FILE = /(\.gguf|\.safetensors|^config\.json|^model\.safetensors\.index\.json|^tokenizer\.json)$/;

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
let rpc = null;
let busy = false;

// The views talk to the worker through this; the worker itself starts in boot(), before any view can ask.
const worker = { call: (...a) => rpc.call(...a), start: (...a) => rpc.start(...a), stop: (id) => rpc.stop(id) };
const views = {
  model: createModelView($('#view-model'), { openTensor: (name) => showTensor(name) }),
  weights: createWeightsView($('#view-weights'), { call: worker.call, showError }),
  generate: createGenerateView($('#view-generate'), { rpc: worker, showError }),
  compress: createCompressView($('#view-compress'), { rpc: worker, showError, openTensor: (name) => showTensor(name),
    recipe: params.get('recipe'), onCompressed: (outcome) => showCompressed(outcome) }),
  evaluate: createEvaluateView($('#view-evaluate'), { rpc: worker, showError }),
};

function showView(name) {
  for (const tab of document.querySelectorAll('.tab[data-view]')) {
    if (tab.dataset.view === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  for (const el of document.querySelectorAll('.view')) el.hidden = el.dataset.view !== name;
  views[name].activate?.();
}

function showTensor(name) {
  views.weights.select(name);
  showView('weights');
}

/** A compression finished: the Weights view compares its tensors, the Generate view can run it. */
function showCompressed(outcome) {
  views.weights.setCompression(outcome.report);
  views.generate.setCompressed(true);
}

function showError(message) {
  const banner = $('#error-banner');
  banner.querySelector('.error-text').textContent = message;
  banner.hidden = false;
}

function clearError() {
  $('#error-banner').hidden = true;
}

function showNoWebGPU(reason) {
  const panel = $('#no-webgpu');
  panel.querySelector('.reason').textContent = reason;
  panel.hidden = false;
  $('#gpu-badge').textContent = 'no WebGPU';
  $('#gpu-badge').classList.add('bad');
  for (const tab of document.querySelectorAll('.tab')) tab.disabled = true;
  for (const view of document.querySelectorAll('.view')) view.hidden = true;
}

const PHASES = { download: 'Downloading', parse: 'Reading headers', upload: 'Uploading to GPU' };

function showLoadProgress(phase, done, total) {
  // Downloads and uploads count bytes (a download may lack a total); parsing only says how far it is.
  const inBytes = phase === 'download' || phase === 'upload';
  const pct = total > 0 ? `${Math.round((100 * done) / total)}%` : '';
  const amount = !inBytes ? pct : total > 0 ? `${fmt.bytes(done)} / ${fmt.bytes(total)} (${pct})` : fmt.bytes(done);
  showProgress($('#progress'), { label: PHASES[phase] ?? phase, amount, done, total });
}

function setBusy(value) {
  busy = value;
  $('#load-default').disabled = value;
  $('#file-input').disabled = value;
  $('#loader').classList.toggle('busy', value);
}

async function load(op, args, what) {
  if (busy) return;
  setBusy(true);
  clearError();
  const status = $('#model-status');
  const before = status.innerHTML;
  status.textContent = `Loading ${what}…`;
  const t0 = performance.now();
  try {
    const model = await rpc.call(op, args, showLoadProgress);
    const loadMs = performance.now() - t0;
    const { parse_ms, upload_ms } = model.timings;
    console.info(`[squeeze] loaded ${model.files.join(', ')} in ${Math.round(loadMs)} ms ` +
      `(parse ${Math.round(parse_ms)} ms, upload ${Math.round(upload_ms)} ms)`);
    status.dataset.loadMs = String(Math.round(loadMs));
    status.innerHTML = `<strong>${fmt.esc(model.summary.name ?? model.files[0])}</strong> loaded in ` +
      `${fmt.ms(loadMs)} · ${fmt.bytes(model.gpu_bytes)} on the GPU`;
    views.model.show(model);
    views.weights.setModel(model);
    views.generate.setModel(model);
    views.compress.setModel(model);
    views.evaluate.setModel(model);
    for (const tab of document.querySelectorAll('.tab[data-needs-model]')) {
      tab.disabled = false;
      tab.removeAttribute('title');
    }
    showView(document.querySelector('.tab[aria-current]').dataset.view);
  } catch (err) {
    status.innerHTML = before; // a failed load leaves the previous model in place
    showError(err.message);
  } finally {
    $('#progress').hidden = true;
    setBusy(false);
  }
}

function loadFiles(files) {
  const chosen = files.length > 1 ? files.filter((f) => MODEL_FILE.test(f.name)) : files;
  if (!chosen.length) {
    showError(`None of ${files.map((f) => f.name).join(', ')} is a model file (.gguf, .safetensors, config.json).`);
    return;
  }
  load('loadFiles', { files: chosen }, chosen.map((f) => f.name).join(', '));
}

async function offerDefaultModel() {
  const url = `/models/${DEFAULT_MODEL.file}`;
  const res = await fetch(url, { method: 'HEAD' }).catch(() => null);
  if (!res?.ok) return false;
  const size = Number(res.headers.get('Content-Length'));
  const button = $('#load-default');
  const details = [DEFAULT_MODEL.quant, size ? fmt.bytes(size) : null].filter(Boolean).join(', ');
  button.textContent = `Load ${DEFAULT_MODEL.name} (${details})`;
  button.hidden = false;
  button.onclick = () => load('loadUrl', { url, name: DEFAULT_MODEL.file }, DEFAULT_MODEL.file);
  return true;
}

// Folders dropped on the page arrive as entries, not files: walk them (one level of nesting is typical).
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const files = [];
  const walk = async (entry) => {
    if (entry.isFile) files.push(await new Promise((ok, fail) => entry.file(ok, fail)));
    else {
      const reader = entry.createReader();
      for (let batch; (batch = await new Promise((ok, fail) => reader.readEntries(ok, fail))).length; ) {
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of entries) await walk(entry);
  return files;
}

function wireLoading() {
  $('#file-input').addEventListener('change', (e) => {
    const files = [...e.target.files];
    e.target.value = ''; // picking the same file again must fire 'change' again
    if (files.length) loadFiles(files);
  });
  const overlay = $('#drop-overlay');
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer?.types.includes('Files');
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || busy) return;
    depth++;
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', () => {
    if (--depth <= 0) (depth = 0), (overlay.hidden = true);
  });
  window.addEventListener('dragover', (e) => hasFiles(e) && e.preventDefault());
  window.addEventListener('drop', async (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    if (!busy) loadFiles(await droppedFiles(e.dataTransfer));
  });
}

async function boot() {
  $('#error-banner .error-close').onclick = clearError;
  for (const tab of document.querySelectorAll('.tab[data-view]')) tab.onclick = () => showView(tab.dataset.view);
  showView('model');

  // Checked here, before any worker starts: without navigator.gpu there is nothing the worker could do.
  if (!navigator.gpu) {
    showNoWebGPU('This browser exposes no navigator.gpu object: WebGPU is missing or switched off.');
    return;
  }
  rpc = startWorker();
  $('#loader').hidden = false;
  setBusy(true);
  wireLoading();
  const hasDefault = offerDefaultModel();
  try {
    const info = await rpc.call('init');
    $('#gpu-badge').textContent = `${info.adapter || 'GPU'} · ${info.backend}`;
    $('#gpu-badge').title = `WebGPU adapter: ${info.adapter} (${info.device_type}), features: ` +
      `${info.features.join(', ') || 'none'}`;
    views.model.setGpu(info);
    views.compress.setMethods(await rpc.call('methods'));
  } catch (err) {
    $('#loader').hidden = true;
    if (err.code === 'no-webgpu') showNoWebGPU(err.message);
    else showError(`Could not start: ${err.message}`);
    return;
  }
  setBusy(false);
  $('#model-status').textContent = 'No model loaded.';
  if ((await hasDefault) && params.get('autoload') !== '0') $('#load-default').click();
}

boot();
