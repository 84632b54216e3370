// Downloaded model files kept in the browser's origin-private file system (OPFS), one file per address
// under squeeze-cache/<host>/<path…>, so a second load of the same model reads it from disk. A download is
// written straight to its cache file (nothing is held in memory) and only appears there once complete:
// createWritable commits on close, and an aborted write leaves at most an empty file, which counts as absent.
// Works in the worker (which downloads) and on the page (which shows the usage and clears it).

const ROOT = 'squeeze-cache';

/** Whether this browser offers OPFS. */
export function cacheAvailable() {
  return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function';
}

/** The folder names and the file name an address is kept under. */
function pathOf(url) {
  const u = new URL(url);
  const parts = [u.host, ...u.pathname.split('/').filter(Boolean).map((p) => decodeURIComponent(p))];
  if (u.search) parts[parts.length - 1] += u.search;
  // OPFS names may hold anything but '/' and '\' (the URL parser has already resolved '.' and '..').
  return parts.map((p) => p.replace(/[/\\]/g, encodeURIComponent));
}

async function folder(parts, create) {
  let dir = await navigator.storage.getDirectory();
  for (const name of [ROOT, ...parts]) dir = await dir.getDirectoryHandle(name, { create });
  return dir;
}

/** The cached copy of `url` as a File, or null. */
export async function cachedFile(url) {
  if (!cacheAvailable()) return null;
  const parts = pathOf(url);
  try {
    const dir = await folder(parts.slice(0, -1), false);
    const file = await (await dir.getFileHandle(parts.at(-1))).getFile();
    return file.size > 0 ? file : null;
  } catch (err) {
    if (err.name === 'NotFoundError' || err.name === 'TypeMismatchError') return null;
    throw err;
  }
}

/** Bytes the origin may still store (Infinity when the browser does not say). */
export async function freeBytes() {
  const { quota, usage } = (await navigator.storage?.estimate?.()) ?? {};
  return quota == null ? Infinity : Math.max(0, quota - (usage ?? 0));
}

/**
 * Opens the cache file of `url` for writing: {write(chunk), close() → File, abort()}. Nothing is visible
 * under the address until close() succeeds.
 */
export async function cacheWriter(url) {
  const parts = pathOf(url);
  const dir = await folder(parts.slice(0, -1), true);
  const handle = await dir.getFileHandle(parts.at(-1), { create: true });
  const stream = await handle.createWritable();
  const remove = () => dir.removeEntry(parts.at(-1)).catch(() => {});
  return {
    write: (chunk) => stream.write(chunk),
    async close() {
      await stream.close();
      return handle.getFile();
    },
    async abort() {
      await stream.abort().catch(() => {});
      await remove();
    },
  };
}

/** {files, bytes} held in the cache. */
export async function cacheUsage() {
  if (!cacheAvailable()) return { files: 0, bytes: 0 };
  let root;
  try {
    root = await folder([], false);
  } catch (err) {
    if (err.name === 'NotFoundError') return { files: 0, bytes: 0 };
    throw err;
  }
  const usage = { files: 0, bytes: 0 };
  const walk = async (dir) => {
    for await (const entry of dir.values()) {
      if (entry.kind === 'directory') await walk(entry);
      else {
        const size = (await entry.getFile()).size;
        if (size > 0) (usage.files += 1), (usage.bytes += size);
      }
    }
  };
  await walk(root);
  return usage;
}

/** Removes every cached file. */
export async function clearCache() {
  if (!cacheAvailable()) return;
  const top = await navigator.storage.getDirectory();
  await top.removeEntry(ROOT, { recursive: true }).catch((err) => {
    if (err.name !== 'NotFoundError') throw err;
  });
}
