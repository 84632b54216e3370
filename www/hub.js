// Models from the Hugging Face hub (or any server with its URL layout, `<hub>/<repo>/resolve/<rev>/<file>`)
// and from plain addresses. parseSource turns what a user typed into a source; hubFiles lists the files a
// repo's model needs (config.json, tokenizer.json, and model.safetensors or the shards its index names).

export const HF_HUB = 'https://huggingface.co';

const REPO_ID = /^([\w.-]+\/[\w.-]+)(?:@([\w.-]+))?(?:\/(.+))?$/;

/**
 * What the user typed → {hub, repo, rev, file} (file null: the repo's safetensors model) or {url, name}.
 * Accepted: "owner/name", "owner/name@rev", "owner/name/file.gguf", "owner/name@rev/sub/file.gguf";
 * hub addresses ".../owner/name", ".../owner/name/tree/rev", ".../owner/name/(resolve|blob)/rev/file" (on
 * `hub` or huggingface.co; any server's /resolve/ address); and any other http(s) address of a model file.
 */
export function parseSource(text, hub = HF_HUB) {
  const s = text.trim();
  if (!s) throw new Error('Type a Hugging Face repo id (owner/name) or the address of a model file.');
  if (!/^https?:\/\//i.test(s)) {
    const m = REPO_ID.exec(s);
    if (!m) {
      throw new Error(`“${s}” is neither a Hugging Face repo id (owner/name, owner/name@revision, ` +
        'owner/name/file.gguf) nor an http(s) address.');
    }
    return { hub, repo: m[1], rev: m[2] ?? 'main', file: m[3] ?? null };
  }
  let url;
  try {
    url = new URL(s);
  } catch {
    throw new Error(`“${s}” is not a valid address.`);
  }
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const onHub = url.origin === new URL(hub).origin || url.origin === HF_HUB;
  const repo = parts.slice(0, 2).join('/');
  if (parts.length >= 5 && (parts[2] === 'resolve' || parts[2] === 'blob')) {
    return { hub: url.origin, repo, rev: parts[3], file: parts.slice(4).join('/') };
  }
  if (onHub && parts.length === 2) return { hub: url.origin, repo, rev: 'main', file: null };
  if (onHub && parts.length === 4 && parts[2] === 'tree') return { hub: url.origin, repo, rev: parts[3], file: null };
  const name = parts.at(-1);
  if (!name) throw new Error(`${s} names no file: give the address of a .gguf or .safetensors file.`);
  return { url: url.href, name };
}

/** The address of one file of a hub repo. */
export function fileUrl({ hub, repo, rev }, file) {
  const path = (p) => p.split('/').map(encodeURIComponent).join('/');
  return `${hub.replace(/\/+$/, '')}/${path(repo)}/resolve/${encodeURIComponent(rev)}/${path(file)}`;
}

/** The source as the page's address spells it (see state.js): 'hf:owner/name@rev/file' or 'url:…'. */
export function sourceParam(source) {
  if (source.url) return `url:${source.url}`;
  const rev = source.rev === 'main' ? '' : `@${source.rev}`;
  return `hf:${source.repo}${rev}${source.file ? `/${source.file}` : ''}`;
}

/** A short name for status lines. */
export function sourceLabel(source) {
  return source.url ? source.name : `${source.repo}${source.file ? `/${source.file}` : ''}`;
}

/**
 * The files a hub source needs, in download order: the one file it names, or a safetensors model's
 * config.json, tokenizer.json (optional: without it the model loads but cannot run) and weights, as
 * [{name, url, blob}]. `fetchSmall(url, name)` fetches a small file as a Blob (null for a 404); the weights
 * are left for the caller to download (no blob yet).
 */
export async function hubFiles(source, fetchSmall) {
  if (source.file) return [{ name: source.file.split('/').at(-1), url: fileUrl(source, source.file) }];
  const files = [];
  const fetchNamed = async (name) => {
    const blob = await fetchSmall(fileUrl(source, name), name);
    if (blob) files.push({ name, url: fileUrl(source, name), blob });
    return blob;
  };
  if (!(await fetchNamed('config.json'))) {
    throw new Error(`${source.repo} has no config.json at revision ${source.rev}: it is not a safetensors model ` +
      'repo. For a GGUF repo, name the file: owner/name/model.Q4_0.gguf.');
  }
  await fetchNamed('tokenizer.json');
  const index = await fetchNamed('model.safetensors.index.json');
  if (!index) {
    files.push({ name: 'model.safetensors', url: fileUrl(source, 'model.safetensors') });
    return files;
  }
  let shards;
  try {
    shards = [...new Set(Object.values(JSON.parse(await index.text()).weight_map ?? {}))];
  } catch (err) {
    throw new Error(`${source.repo}: model.safetensors.index.json is not valid JSON (${err.message}).`);
  }
  if (!shards.length) throw new Error(`${source.repo}: model.safetensors.index.json names no shards.`);
  const odd = shards.find((f) => typeof f !== 'string' || !/^[^/\\]+\.safetensors$/.test(f) || f.startsWith('.'));
  if (odd !== undefined) {
    throw new Error(`${source.repo}: model.safetensors.index.json names a shard “${odd}” that is not a plain ` +
      '.safetensors file name.');
  }
  for (const shard of shards.sort()) files.push({ name: shard, url: fileUrl(source, shard) });
  return files;
}
