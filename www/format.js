// Number formatting shared by the views. Sizes use decimal units (MB = 10^6 bytes), as model cards do.

export function bytes(n) {
  n = Number(n);
  if (!Number.isFinite(n)) return '—';
  if (n < 1e3) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let i = -1;
  do {
    n /= 1e3;
    i++;
  } while (n >= 1e3 && i < units.length - 1);
  return `${n >= 100 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

/** 134515008 → "134.5M"; small counts stay exact. */
export function count(n) {
  n = Number(n);
  if (!Number.isFinite(n)) return '—';
  if (n < 1e4) return n.toLocaleString('en-US');
  const [div, unit] = n >= 1e9 ? [1e9, 'B'] : n >= 1e6 ? [1e6, 'M'] : [1e3, 'k'];
  return `${(n / div).toFixed(1)}${unit}`;
}

const COMPACT = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** 2500000 → "2.5M": short enough for axis tick labels. */
export function compact(n) {
  return COMPACT.format(n);
}

export function integer(n) {
  return n == null ? '—' : Number(n).toLocaleString('en-US');
}

/** Four significant digits, switching to exponent form for very small or large magnitudes. */
export function num(x, digits = 4) {
  if (x == null) return '—';
  x = Number(x);
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a < 1e-3 || a >= 1e5 ? x.toExponential(digits - 1) : trimZeros(x.toPrecision(digits));
}

function trimZeros(s) {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

/** A share of weights as a percentage, with more digits for tiny non-zero shares (what pruning left at zero). */
export function percent(share) {
  return `${(100 * share).toFixed(share > 0 && share < 0.001 ? 3 : 1)}%`;
}

export function shape(dims) {
  return dims.length ? dims.join(' × ') : 'scalar';
}

export function ms(x) {
  if (x == null) return '—';
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`;
}

/** Escapes text for use inside innerHTML templates. */
export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
