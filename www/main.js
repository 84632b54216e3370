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
import { createExperimentsView } from './views/experiments.js';
import { createExplorerView } from './views/explorer.js';
import { perLayer } from './views/compress-result.js';
import { experimentFrom } from './experiments.js';
import { parseModelParam, readState, setState } from './state.js';
import { HF_HUB, parseSource, sourceLabel, sourceParam } from './hub.js';
import { cacheAvailable, cacheUsage, clearCache } from './file-cache.js';
import { createTour } from './tour.js';

const DEFAULT_MODEL = { file: 'SmolLM2-135M-Instruct.Q4_1.gguf', name: 'SmolLM2-135M-Instruct', quant: 'Q4_1' };
// A dropped folder also holds READMEs, licences, generation configs …; the loader wants only these.
const MODEL_FILE = /(\.gguf|\.safetensors|^config\.json|^model\.safetensors\.index\.json|^tokenizer\.json|^tokenizer_config\.json)$/;

const $ = (sel) => document.querySelector(sel);
const initial = readState();
const hub = initial.hub || HF_HUB;
let rpc = null;
let busy = false;
let restoring = true; // until the first model has loaded, the address's view and tensor are still to come
let currentExperiment = null; // the experiment whose compressed model the worker holds

// The views talk to the worker through this; the worker itself starts in boot(), before any view can ask.
const worker = { call: (...a) => rpc.call(...a), start: (...a) => rpc.start(...a), stop: (id) => rpc.stop(id) };
const views = {
  model: createModelView($('#view-model'), { openTensor: (name) => showTensor(name) }),
  weights: createWeightsView($('#view-weights'), { call: worker.call, showError,
    onSelect: (name) => !restoring && setState({ tensor: name }) }),
  generate: createGenerateView($('#view-generate'), { rpc: worker, showError, onGenerated }),
  compress: createCompressView($('#view-compress'), { rpc: worker, showError, openTensor: (name) => showTensor(name),
    recipe: initial.recipe, onRecipe: rememberRecipe, onCompressed: recordCompression }),
  evaluate: createEvaluateView($('#view-evaluate'), { rpc: worker, showError }),
  experiments: createExperimentsView($('#view-experiments'), { rpc: worker, showError,
    onCompressed: (outcome, id) => showCompressed(outcome, id),
    onUseRecipe: (text) => {
      views.compress.setRecipe(text);
      showView('compress');
    } }),
  explorer: createExplorerView($('#view-explorer'), { rpc: worker, showError }),
};
const tour = createTour({ showView, canShow: (name) => !$(`.tab[data-view="${name}"]`).disabled });

function showView(name) {
  for (const tab of document.querySelectorAll('.tab[data-view]')) {
    if (tab.dataset.view === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  for (const el of document.querySelectorAll('.view')) el.hidden = el.dataset.view !== name;
  views[name].activate?.();
  if (!restoring) setState({ view: name === 'model' ? null : name });
}

function showTensor(name) {
  views.weights.select(name);
  showView('weights');
}

/** The recipe being edited goes into the address (compact), so a link reproduces it. */
function rememberRecipe(text) {
  try {
    setState({ recipe: JSON.stringify(JSON.parse(text)) });
  } catch {
    // Half-typed JSON: the address keeps the last valid recipe.
  }
}

/** A compression from the Compress view finished: it becomes an experiment, and the current compressed model. */
function recordCompression(outcome, info) {
  const { layers, relMse, outputErr } = perLayer(outcome.report.tensors);
  const experiment = experimentFrom(outcome, { ...info, layers: { layer: layers, rel_mse: relMse,
    output_err: outputErr } });
  views.experiments.add(experiment);
  showCompressed(outcome, experiment.id);
}

/** The worker now holds experiment `id`'s model: the Weights view compares its tensors, Generate can run it. */
function showCompressed(outcome, id) {
  currentExperiment = id;
  views.weights.setCompression(outcome.report);
  views.generate.setCompressed(true);
}

/**
 * The worker replaced a lost GPU device and opened the model again: the compressed model lived on the old
 * device and is gone (its experiment row stays); say so, and what to do.
 */
function onWorkerEvent({ event, why, model }) {
  if (event !== 'device-lost') return;
  currentExperiment = null;
  views.weights.setCompression(null);
  views.generate.setCompressed(false);
  views.compress.setModel();
  console.warn(`[squeeze] ${why}; a new device was opened`);
  const said = why.replace(/^./, (c) => c.toUpperCase()).replace(/\.?$/, '.');
  showError(`${said} Squeeze opened a new one` +
    `${model ? ` and loaded ${model.files.join(', ')} again` : ''}; a compressed model is gone — compress it ` +
    'again (the experiments are kept).');
}

/** A generation with the compressed model gives its experiment a decode speed. */
function onGenerated(result, { prompt, compressed }) {
  if (!compressed || !currentExperiment) return;
  views.experiments.update(currentExperiment, { tokens_per_s: result.decode_tokens_per_s,
    generation: { prompt, text: result.text, tokens: result.tokens.length, tokens_per_s: result.decode_tokens_per_s } });
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
  for (const el of ['#load-default', '#file-input', '#hub-load', '#clear-cache']) $(el).disabled = value;
  $('#loader').classList.toggle('busy', value);
}

const FILE_STATES = { waiting: 'waiting', cached: 'from the cache', downloading: 'downloading', done: 'done' };

/** One row per file of a hub or URL download, with its own bar. */
function showFileProgress(file) {
  const list = $('#file-progress');
  list.hidden = false;
  let row = list.querySelector(`li[data-index="${file.index}"]`);
  if (!row) {
    row = document.createElement('li');
    row.dataset.index = String(file.index);
    row.innerHTML = '<span class="file-name mono"></span><span class="file-state"></span><progress max="1"></progress>';
    list.append(row);
  }
  row.dataset.name = file.name;
  row.dataset.state = file.state;
  row.dataset.done = String(file.done);
  row.dataset.total = String(file.total);
  row.querySelector('.file-name').textContent = `${file.index + 1}/${file.count} ${file.name}`;
  const amount = file.total > 0 ? `${fmt.bytes(file.done)} / ${fmt.bytes(file.total)}` : fmt.bytes(file.done);
  row.querySelector('.file-state').textContent = `${FILE_STATES[file.state] ?? file.state}` +
    `${file.state === 'waiting' ? '' : ` · ${amount}`}${file.note ? ` · ${file.note}` : ''}`;
  const bar = row.querySelector('progress');
  if (file.state === 'downloading' && !file.total) bar.removeAttribute('value');
  else bar.value = file.state === 'waiting' ? 0 : file.total > 0 ? file.done / file.total : 1;
}

async function load(op, args, what, modelParam, hubParam = null) {
  if (busy) return;
  setBusy(true);
  clearError();
  const status = $('#model-status');
  const before = status.innerHTML;
  status.textContent = `Loading ${what}…`;
  $('#file-progress').innerHTML = '';
  $('#file-progress').hidden = true;
  const t0 = performance.now();
  try {
    const model = await rpc.call(op, args, { onProgress: showLoadProgress, onFile: showFileProgress });
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
    views.experiments.setModel(model);
    views.explorer.setModel(model);
    currentExperiment = null;
    for (const tab of document.querySelectorAll('.tab[data-needs-model]')) {
      tab.disabled = false;
      tab.removeAttribute('title');
    }
    setState({ model: modelParam, hub: hubParam === HF_HUB ? null : hubParam });
    restoreViewOnce();
    if (tour.wanted()) $('#tour-offer').hidden = false;
  } catch (err) {
    status.innerHTML = before; // a failed load leaves the previous model in place
    showError(err.message);
  } finally {
    $('#progress').hidden = true;
    setBusy(false);
    showCacheUsage();
  }
}

/** After the first load: the view (and tensor) the address asked for; after later loads, the view on show. */
function restoreViewOnce() {
  const current = document.querySelector('.tab[aria-current]').dataset.view;
  if (!restoring) return showView(current);
  const wanted = views[initial.view] ? initial.view : current;
  if (initial.tensor) views.weights.select(initial.tensor);
  showView(wanted);
  restoring = false;
  setState({ view: wanted === 'model' ? null : wanted, tensor: initial.tensor });
}

function loadSource(text) {
  let source;
  try {
    source = parseSource(text, hub);
  } catch (err) {
    showError(err.message);
    return;
  }
  load('loadSource', { source }, sourceLabel(source), sourceParam(source), source.hub);
}

async function showCacheUsage() {
  const line = $('#cache-line');
  if (!cacheAvailable()) {
    line.hidden = true;
    return;
  }
  try {
    const { files, bytes } = await cacheUsage();
    const { quota } = (await navigator.storage.estimate?.()) ?? {};
    line.hidden = false;
    line.dataset.files = String(files);
    line.dataset.bytes = String(bytes);
    $('#cache-usage').textContent = `Download cache: ${files} file${files === 1 ? '' : 's'}, ${fmt.bytes(bytes)}` +
      `${quota ? ` (this site may store up to ${fmt.bytes(quota)})` : ''}`;
    $('#clear-cache').disabled = busy || !files;
  } catch (err) {
    line.hidden = true;
    console.warn(`[squeeze] the download cache could not be read: ${err.message}`);
  }
}

function loadFiles(files) {
  const chosen = files.length > 1 ? files.filter((f) => MODEL_FILE.test(f.name)) : files;
  if (!chosen.length) {
    showError(`None of ${files.map((f) => f.name).join(', ')} is a model file (.gguf, .safetensors, config.json).`);
    return;
  }
  const names = chosen.map((f) => f.name);
  load('loadFiles', { files: chosen }, names.join(', '), `local:${names.join(',')}`);
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
  button.onclick = () => load('loadUrl', { url, name: DEFAULT_MODEL.file }, DEFAULT_MODEL.file, 'default');
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
  $('#hub-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!busy) loadSource($('#hub-source').value);
  });
  $('#clear-cache').onclick = async () => {
    $('#clear-cache').disabled = true;
    try {
      await clearCache();
    } catch (err) {
      showError(`The download cache could not be cleared: ${err.message}`);
    }
    showCacheUsage();
  };
  $('#tour-start').onclick = () => tour.start();
  $('#tour-offer .tour-go').onclick = () => tour.start();
  $('#tour-offer .tour-no').onclick = () => tour.dismiss();
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
  rpc = startWorker(onWorkerEvent);
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
    const methods = await rpc.call('methods');
    views.compress.setMethods(methods);
    views.explorer.setMethods(methods);
  } catch (err) {
    $('#loader').hidden = true;
    if (err.code === 'no-webgpu') showNoWebGPU(err.message);
    else showError(`Could not start: ${err.message}`);
    return;
  }
  setBusy(false);
  $('#model-status').textContent = 'No model loaded.';
  showCacheUsage();
  restoreModel(await hasDefault);
}

/** Loads the model the address names (the default one when it names none), unless autoload=0. */
function restoreModel(hasDefault) {
  const source = parseModelParam(initial.model) ?? { kind: 'default' };
  if (source.kind === 'url' || source.kind === 'hf') $('#hub-source').value = source.spec;
  if (initial.autoload === '0') return;
  if (source.kind === 'default' && hasDefault) $('#load-default').click();
  else if (source.kind === 'url' || source.kind === 'hf') loadSource(source.spec);
  else if (source.kind === 'local') {
    $('#model-status').textContent = `This link was made with local files (${source.names.join(', ')}), which ` +
      'cannot travel in a link: open them with the button above, or drop them on the page, to continue.';
  }
}

boot();
