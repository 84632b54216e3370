// Owns the wasm module and the GPU device. Requests run strictly one after another (see rpc.js for the
// message shapes), so a tensor_stats call never races a model upload. The exception is 'stop': it must reach
// a generation, perplexity or compression that is running, so it never waits in the queue (wasm awaits GPU
// readbacks between tokens, chunks and layers, which lets this worker's onmessage run while the long request
// is still in progress).
import init, { Squeeze } from './pkg/squeeze.js';
import { hubFiles } from './hub.js';
import { cacheAvailable, cachedFile, cacheWriter, freeBytes } from './file-cache.js';
import { bytes as fmtBytes } from './format.js';

let sq = null;
/** The files of the model on the GPU, so a lost device can be replaced and the model opened again. */
let opened = null;
/** Requests that Stop can end early. */
const CANCELLABLE = new Set(['generate', 'perplexity', 'compress', 'sensitivity', 'activationStats']);
/** The request being worked on ({id, op}), or null. */
let running = null;
/** Ids of requests still in the queue, and those of them asked to stop before they started. */
const waiting = new Set();
const dropped = new Set();

const ops = {
  /** Starts wasm and the GPU device; answers with the adapter description. */
  async init() {
    await init(); // squeeze.js finds squeeze_bg.wasm via new URL(…, import.meta.url), which Vite emits
    try {
      sq = await Squeeze.create();
    } catch (err) {
      throw Object.assign(new Error(messageOf(err)), { code: 'no-webgpu' });
    }
    return sq.gpu_info();
  },

  /** Downloads one model file with progress, then opens it. */
  async loadUrl({ url, name }, progress) {
    const blob = await download(url, name, progress);
    return open([blob], [name], progress);
  },

  /**
   * Loads a model from the hub or an address (`source` from hub.js parseSource): each file comes from the
   * cache when it is there, else is downloaded into it (or into memory when the cache lacks room). Posts
   * {kind: 'file', file: {name, index, count, state, done, total, note}} per file as it goes; state is
   * 'waiting', 'cached', 'downloading' or 'done'.
   */
  async loadSource({ source }, progress, id) {
    const report = (file) => self.postMessage({ id, kind: 'file', file });
    const fromCache = new Set();
    const small = (url, name) => fetchFile(url, name, (state) => state === 'cached' && fromCache.add(url), true);
    const files = source.url ? [{ name: source.name, url: source.url }] : await hubFiles(source, small);
    const count = files.length;
    files.forEach((f, index) => {
      const state = !f.blob ? 'waiting' : fromCache.has(f.url) ? 'cached' : 'done';
      const size = f.blob?.size ?? 0;
      report({ name: f.name, index, count, state, done: size, total: size, note: state === 'cached' ?
        'from the cache' : '' });
    });
    for (const [index, f] of files.entries()) {
      if (f.blob) continue;
      f.blob = await fetchFile(f.url, f.name, (state, done, total, note) => {
        report({ name: f.name, index, count, state, done, total, note });
        if (state === 'downloading') progress('download', done, total);
      });
    }
    return open(files.map((f) => f.blob), files.map((f) => f.name), progress);
  },

  /** Opens local files (one .gguf, or a safetensors model folder). */
  async loadFiles({ files }, progress) {
    return open(files, files.map((f) => f.name), progress);
  },

  /** Destroys the GPU device as a driver reset would, so the recovery can be tried and tested. */
  async loseDevice() {
    ready().lose_device();
  },

  /** The compression methods with their parameters' defaults, and the storage formats. */
  async methods() {
    return ready().methods();
  },

  /** Statistics of one tensor, of the compressed model when `compressed`. */
  async tensorStats({ name, bins, topK, compressed = false }) {
    return ready().tensor_stats(name, bins, topK, compressed);
  },

  /**
   * Applies a recipe (JSON text) to the loaded model and measures the result; progress per layer
   * ('calibration', 'compress') and per chunk ('base log-probs', 'kl-divergence'). The compressed model
   * replaces the previous one only when this succeeds.
   */
  async compress({ recipe, options }, progress) {
    return ready().compress(recipe, options, progress);
  },

  /**
   * Layer sensitivity: each block compressed alone with `step` (a data-free recipe step as JSON text),
   * KL divergence against the loaded model on `options` = {text, ctx, chunks}; progress per chunk and block.
   */
  async sensitivity({ step, options }, progress) {
    return ready().sensitivity(step, options, progress);
  },

  /**
   * Per-channel max|x| and mean|x| at the inputs of every block's linears for `text` (at most `maxTokens`
   * tokens, in sequences of `seqLen`); progress('activations', block, blocks).
   */
  async activationStats({ text, maxTokens, seqLen }, progress) {
    return ready().activation_stats(text, maxTokens, seqLen, progress);
  },

  /** Histogram of Ŵ − W of one compressed tensor, and its weights kept in 16 bit. */
  /** Share of zeros per cell of a grid over a window of a compressed matrix (the pruning mask view). */
  async zeroMap({ name, window, gridRows, gridCols }) {
    return ready().zero_map(name, window, gridRows, gridCols);
  },

  async weightError({ name, bins }) {
    return ready().weight_error(name, bins);
  },

  /** What exporting the compressed model as 'gguf' or 'safetensors' would write, tensor by tensor. */
  async exportPlan({ format }) {
    return ready().export_plan(format);
  },

  /** Starts streaming the export as `format`; answers the plan. */
  async exportBegin({ format }) {
    return ready().export_begin(format);
  },

  /**
   * The next piece of the file (a Uint8Array, transferred to the page, not copied), or null when it is
   * complete. The page asks for one piece at a time, so at most one is in flight.
   */
  async exportNext() {
    return (await ready().export_next()) ?? null;
  },

  /** Drops the export under way. */
  async exportCancel() {
    ready().export_cancel();
  },

  /** Token ids of `text` (a Uint32Array). */
  async tokenize({ text, parseSpecial = false }) {
    return ready().tokenize(text, parseSpecial);
  },

  /** Streams {kind: 'text', piece, tokens, ms} messages while decoding; resolves to the generation summary. */
  async generate({ prompt, options }, progress, id) {
    const onText = (piece, tokens, ms) =>
      self.postMessage({ id, kind: 'text', piece: String(piece), tokens: Number(tokens), ms: Number(ms) });
    return ready().generate(prompt, options ?? {}, onText);
  },

  /** Perplexity of `text`; progress('perplexity', doneChunks, totalChunks) per chunk. */
  async perplexity({ text, ctx, maxChunks = 0, allTokens = false }, progress) {
    return ready().perplexity(text, ctx, maxChunks, allTokens, progress);
  },
};

/**
 * Handled on arrival, outside the queue: stops request `target` if it is running (the wasm side ends it after
 * the current token or chunk), or drops it if it is still waiting. Answers what it did.
 */
function stop({ target }) {
  if (running?.id === target) {
    if (!CANCELLABLE.has(running.op)) return 'not-stoppable';
    sq?.stop();
    return 'stopping';
  }
  if (waiting.has(target)) {
    dropped.add(target);
    return 'dropped';
  }
  return 'finished';
}

function ready() {
  if (!sq) throw new Error('The GPU is not ready yet.');
  return sq;
}

async function open(blobs, names, progress) {
  const model = await ready().open(blobs, names, progress);
  opened = { blobs, names };
  return model;
}

/**
 * After the device was lost (a driver reset, a GPU crash elsewhere, or the test's loseDevice): a new
 * device, the same model opened again from its files (Blobs refer to the file or cache, not a copy), and
 * an event telling the page what happened. Whatever was compressed lived on the old device and is gone.
 */
async function recover(why) {
  sq.free();
  sq = null;
  sq = await Squeeze.create();
  const model = opened ? await sq.open(opened.blobs, opened.names, () => {}) : null;
  self.postMessage({ kind: 'event', event: 'device-lost', why, model });
}

async function download(url, name, progress) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${name}: download failed (HTTP ${res.status} ${res.statusText})`);
  // Content-Length is missing for some CDNs and compressed responses; 0 means "unknown" to the page.
  const total = Number(res.headers.get('Content-Length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let done = 0;
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    chunks.push(value);
    done += value.byteLength;
    progress('download', done, total);
  }
  progress('download', done, done);
  return new Blob(chunks);
}

/**
 * One remote file as a Blob: the cached copy, or downloaded into the cache (into memory when the cache is
 * missing or lacks room). `onState(state, done, total, note)` follows it. With `optional`, a 404 answers null.
 */
async function fetchFile(url, name, onState, optional = false, cache = cacheAvailable()) {
  const cached = await cachedFile(url);
  if (cached) {
    onState?.('cached', cached.size, cached.size, 'from the cache');
    return cached;
  }
  const res = await fetch(url).catch((err) => {
    throw new Error(`${name}: download failed (${err.message}); is the address right, and does the server allow ` +
      'cross-origin requests?');
  });
  if (optional && res.status === 404) return null;
  if (!res.ok) throw new Error(`${name}: download failed (HTTP ${res.status} ${res.statusText}) from ${url}`);
  // Content-Length is missing for some CDNs and compressed responses; 0 means "unknown" to the page.
  const total = Number(res.headers.get('Content-Length')) || 0;
  const free = cache ? await freeBytes() : 0;
  let note = '';
  if (!cacheAvailable()) note = 'not cached: this browser has no origin-private file system';
  else if (!cache) note = 'not cached: the browser ran out of storage';
  else if (total > free) note = `not cached: it needs ${fmtBytes(total)}, the browser allows ${fmtBytes(free)} more`;
  const writer = note ? null : await cacheWriter(url);
  const chunks = [];
  let done = 0;
  onState?.('downloading', 0, total, note);
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      if (writer) await writer.write(value);
      else chunks.push(value);
      done += value.byteLength;
      onState?.('downloading', done, total, note);
    }
  } catch (err) {
    await writer?.abort();
    // Storage ran out part-way: what was written is gone, so download it again into memory.
    if (writer && err.name === 'QuotaExceededError') return fetchFile(url, name, onState, optional, false);
    throw new Error(`${name}: download failed after ${done} bytes: ${err.message}`);
  }
  const blob = writer ? await writer.close() : new Blob(chunks);
  onState?.('done', done, done, note || 'cached');
  return blob;
}

function messageOf(err) {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err);
}

/** Progress messages at most every 50 ms per request (wasm may report per chunk), but always the last one. */
function throttled(id) {
  let last = 0;
  let lastPhase = '';
  return (phase, done, total) => {
    done = Number(done);
    total = Number(total);
    const now = performance.now();
    if (phase === lastPhase && now - last < 50 && done !== total) return;
    last = now;
    lastPhase = phase;
    self.postMessage({ id, kind: 'progress', phase, done, total });
  };
}

let queue = Promise.resolve();
self.onmessage = ({ data: { id, op, args } }) => {
  if (op === 'stop') {
    self.postMessage({ id, kind: 'done', result: stop(args) });
    return;
  }
  waiting.add(id);
  queue = queue.then(async () => {
    waiting.delete(id);
    try {
      if (dropped.delete(id)) throw new Error('cancelled');
      if (!ops[op]) throw new Error(`unknown request '${op}'`);
      running = { id, op };
      const lost = sq?.device_lost();
      if (lost) await recover(lost);
      const result = await ops[op](args, throttled(id), id);
      // Export pieces are handed over rather than copied.
      const transfer = result instanceof Uint8Array ? [result.buffer] : [];
      self.postMessage({ id, kind: 'done', result }, transfer);
    } catch (err) {
      let message = messageOf(err);
      let code = err?.code ?? (message === 'cancelled' ? 'cancelled' : null);
      const lost = sq?.device_lost();
      if (lost) {
        code = 'device-lost';
        message = `${message} — the GPU device was lost; Squeeze opened a new one: run it again.`;
        await recover(lost).catch((e) => (message += ` (The new device failed too: ${messageOf(e)})`));
      }
      self.postMessage({ id, kind: 'error', message, code });
    } finally {
      running = null;
    }
  });
};
