// The UI side of the worker protocol: every request gets an id; the worker answers with any number of
// {id, kind: 'progress'} messages and then exactly one {id, kind: 'done' | 'error'}.

export function startWorker() {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'squeeze' });
  const pending = new Map();
  let nextId = 1;

  worker.onmessage = ({ data }) => {
    const req = pending.get(data.id);
    if (!req) return;
    if (data.kind === 'progress') {
      req.onProgress?.(data.phase, data.done, data.total);
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

  return {
    /** Sends one request; the worker runs requests one at a time, in order. */
    call(op, args = {}, onProgress = null) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject, onProgress });
        worker.postMessage({ id, op, args });
      });
    },
  };
}
