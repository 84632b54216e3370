// The bundled public-domain plays, served from /texts/ by the page's server, each fetched once per page.

const PLAYS = [
  { file: 'hamlet_gut.txt', label: 'Hamlet (Gutenberg)' },
  { file: 'macbeth_gut.txt', label: 'Macbeth (Gutenberg)' },
  { file: 'tempest_gut.txt', label: 'The Tempest (Gutenberg)' },
];

const fetched = new Map(); // file → text

/** `<option>`s for the plays, `selected` preselected. */
export function playOptions(selected = PLAYS[0].file) {
  return PLAYS.map((p) => `<option value="${p.file}" ${p.file === selected ? 'selected' : ''}>${p.label}</option>`)
    .join('');
}

/** The text of a play if it has been fetched already, else undefined. */
export function cachedPlay(file) {
  return fetched.get(file);
}

/** The text of a play, fetched on first use. */
export async function playText(file) {
  if (!fetched.has(file)) {
    const res = await fetch(`/texts/${file}`).catch(() => null);
    if (!res?.ok) {
      throw new Error(`The sample text ${file} could not be fetched (${res ? `HTTP ${res.status}` :
        'network error'}); run scripts/setup.sh to download the sample texts.`);
    }
    fetched.set(file, await res.text());
  }
  return fetched.get(file);
}
