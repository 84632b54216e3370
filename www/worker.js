// Owns the wasm module and the GPU device. Requests run strictly one after another (see rpc.js for the
// message shapes), so a tensor_stats call never races a model upload.
import init, { Squeeze } from './pkg/squeeze.js';

let sq = null;

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

  /** Opens local files (one .gguf, or a safetensors model folder). */
  async loadFiles({ files }, progress) {
    return open(files, files.map((f) => f.name), progress);
  },

  async tensorStats({ name, bins, topK }) {
    return ready().tensor_stats(name, bins, topK);
  },
};

function ready() {
  if (!sq) throw new Error('The GPU is not ready yet.');
  return sq;
}

function open(blobs, names, progress) {
  return ready().open(blobs, names, progress);
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
  queue = queue.then(async () => {
    try {
      if (!ops[op]) throw new Error(`unknown request '${op}'`);
      const result = await ops[op](args, throttled(id));
      self.postMessage({ id, kind: 'done', result });
    } catch (err) {
      self.postMessage({ id, kind: 'error', message: messageOf(err), code: err?.code ?? null });
    }
  });
};
