// The UI side of the worker protocol: every request gets an id; the worker answers with any number of
// {id, kind: 'progress'} (and, for generation, {id, kind: 'text'}; for a download, {id, kind: 'file'})
// messages and then exactly one {id, kind: 'done' | 'error'}. A {op: 'stop', args: {target}} message is the
// one exception to the worker's one-at-a-time queue: it is handled the moment it arrives (see worker.js).
// Messages with kind 'event' belong to no request (the worker replaced a lost GPU device): onEvent gets them.

export function startWorker(onEvent = () => {}) {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'squeeze' });
  const pending = new Map();
  let nextId = 1;

  worker.onmessage = ({ data }) => {
    if (data.kind === 'event') {
      onEvent(data);
      return;
    }
    const req = pending.get(data.id);
    if (!req) return;
    if (data.kind === 'progress') {
      req.onProgress?.(data.phase, data.done, data.total);
      return;
    }
    if (data.kind === 'text') {
      req.onText?.(data.piece, data.tokens, data.ms);
      return;
    }
    if (data.kind === 'file') {
      req.onFile?.(data.file);
      return;
    }
    pending.delete(data.id);
    if (data.kind === 'done') req.resolve(data.result);
    else req.reject(Object.assign(new Error(data.message), { code: data.code }));
  };
  // A worker that fails to start (e.g. its module cannot be fetched) would otherwise leave every call hanging.
  worker.onerror = (event) => {
    event.preventDefault();
    const err = new Error(`The compute worker failed: ${event.message || 'it could not be started'}`);
    for (const req of pending.values()) req.reject(err);
    pending.clear();
  };

  /** Starts one request; returns its id (for stop) and the promise of its result. */
  function start(op, args = {}, handlers = null) {
    const id = nextId++;
    const { onProgress = null, onText = null, onFile = null } =
      typeof handlers === 'function' ? { onProgress: handlers } : handlers ?? {};
    const promise = new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, onProgress, onText, onFile });
      worker.postMessage({ id, op, args });
    });
    return { id, promise };
  }

  return {
    /**
     * Sends one request; the worker runs requests one at a time, in order. The third argument is an
     * onProgress(phase, done, total) function, or {onProgress, onText(piece, tokens, ms), onFile(file)}.
     */
    call(op, args = {}, handlers = null) {
      return start(op, args, handlers).promise;
    },
    start,
    /**
     * Asks request `target` to stop: a running generation ends after its current token (and resolves with
     * stop 'cancelled'), a running perplexity after its current chunk (rejecting with "cancelled"); a request
     * still waiting in the queue rejects with "cancelled" without starting. Not queued itself.
     */
    stop(target) {
      return start('stop', { target }).promise;
    },
  };
}
