// The page's shareable state, kept in the address: which model (the default, a URL or a Hugging Face repo),
// the recipe, the view and the tensor on show. Every change replaces the address (no history entries), so a
// copied link reopens the page as it was. Local files cannot travel in a link: their names do, to say so.

const KEYS = ['model', 'hub', 'recipe', 'view', 'tensor', 'autoload'];

/** The state the address holds now: {model, hub, recipe, view, tensor, autoload} (absent keys: null). */
export function readState(search = location.search) {
  const params = new URLSearchParams(search);
  return Object.fromEntries(KEYS.map((k) => [k, params.get(k)]));
}

/** Merges `patch` into the address: a null or empty value removes its key. */
export function setState(patch) {
  const url = new URL(location.href);
  for (const [key, value] of Object.entries(patch)) {
    if (value == null || value === '') url.searchParams.delete(key);
    else url.searchParams.set(key, value);
  }
  if (url.href !== location.href) history.replaceState(null, '', url);
}

/**
 * A model source as the address spells it: 'default', 'url:<address>', 'hf:<repo>[@rev][/file]' or
 * 'local:<names>'. Returns {kind, …} or null for anything else.
 */
export function parseModelParam(value) {
  if (!value) return null;
  if (value === 'default') return { kind: 'default' };
  const at = value.indexOf(':');
  const [kind, rest] = [value.slice(0, at), value.slice(at + 1)];
  if (!rest) return null;
  if (kind === 'url' || kind === 'hf') return { kind, spec: rest };
  if (kind === 'local') return { kind, names: rest.split(',') };
  return null;
}
