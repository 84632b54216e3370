// Saving a file the page receives in pieces: through the File System Access API where the browser has it, so
// each piece goes straight to disk; otherwise as a Blob download, which holds the pieces until the end.

/**
 * Asks where to save `name` and answers a sink {streamed, write(bytes), close(), abort()}, or null when the user
 * closes the picker. Call it straight from a click handler, before awaiting anything else: the picker needs the
 * user's gesture.
 */
export async function openSaveSink(name, description) {
  if (typeof window.showSaveFilePicker === 'function') {
    const extension = name.slice(name.lastIndexOf('.'));
    let handle;
    try {
      handle = await window.showSaveFilePicker({
        suggestedName: name,
        types: [{ description, accept: { 'application/octet-stream': [extension] } }],
      });
    } catch (err) {
      if (err.name === 'AbortError') return null;
      throw err;
    }
    const writable = await handle.createWritable();
    return {
      streamed: true,
      write: (bytes) => writable.write(bytes),
      close: () => writable.close(),
      abort: () => writable.abort(),
    };
  }
  let parts = [];
  return {
    streamed: false,
    async write(bytes) {
      parts.push(bytes);
    },
    async close() {
      const url = URL.createObjectURL(new Blob(parts, { type: 'application/octet-stream' }));
      parts = []; // the Blob holds the bytes now
      const link = Object.assign(document.createElement('a'), { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      // The download has started from the URL by then; revoking frees the Blob.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    },
    async abort() {
      parts = [];
    },
  };
}
