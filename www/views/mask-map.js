// The pruning mask of one matrix: each cell is shaded by the share of its weights that are exactly zero
// (white kept, dark pruned). The whole matrix first; drag a rectangle to zoom into it, until one cell is one
// weight and the mask itself shows (2:4 pruning: two dark cells in every four along a row).
import * as fmt from '../format.js';

/** Grid cells at most, per side (the canvas is drawn at CSS width / these). */
const GRID = { rows: 96, cols: 192 };
const HEIGHT = 288;

export function createMaskMap(root, { call, showError }) {
  root.innerHTML = `
    <div class="mask-tools">
      <button type="button" class="mask-reset" disabled>Whole matrix</button>
      <span class="mask-caption muted" aria-live="polite"></span>
    </div>
    <div class="heat-wrap"><canvas class="mask-canvas" role="img" tabindex="0"></canvas></div>
    <p class="explain">Drag over the map to zoom in; at one weight per cell it is the mask itself. Point to read
      a cell's rows, columns and share of zeros.</p>`;
  const q = (sel) => root.querySelector(sel);
  const canvas = q('.mask-canvas');
  let map = null; // the last answer
  let name = null;
  let drag = null;

  async function show(tensor, window = null) {
    name = tensor;
    try {
      const answer = await call('zeroMap', { name, window, gridRows: GRID.rows, gridCols: GRID.cols });
      if (answer.name !== name) return; // a newer tensor was asked for meanwhile
      map = answer;
      draw();
    } catch (err) {
      showError(err.message);
    }
  }

  function draw() {
    const { window: w, grid_rows: gr, grid_cols: gc, zeros } = map;
    const width = Math.max(200, root.clientWidth || 600);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr;
    canvas.height = HEIGHT * dpr;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${HEIGHT}px`;
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const [cw, ch] = [width / gc, HEIGHT / gr];
    for (let i = 0; i < gr; i++) {
      for (let j = 0; j < gc; j++) {
        const shade = Math.round(255 * (1 - zeros[i * gc + j]));
        ctx.fillStyle = `rgb(${shade},${shade},${Math.min(255, shade + 24)})`;
        ctx.fillRect(j * cw, i * ch, Math.ceil(cw), Math.ceil(ch));
      }
    }
    if (cw >= 6 && ch >= 6) { // one weight per cell: grid lines between weights
      ctx.strokeStyle = 'rgba(148,163,184,0.6)';
      ctx.lineWidth = 0.5;
      for (let j = 0; j <= gc; j++) ctx.strokeRect(j * cw, 0, 0, HEIGHT);
      for (let i = 0; i <= gr; i++) ctx.strokeRect(0, i * ch, width, 0);
    }
    const whole = w.rows === map.rows && w.cols === map.cols;
    const per = `${fmt.integer(Math.ceil(w.rows / gr))} × ${fmt.integer(Math.ceil(w.cols / gc))}`;
    const zeros0 = zeros.reduce((a, b) => a + b, 0) / zeros.length;
    q('.mask-caption').textContent = `${whole ? 'whole matrix' : `rows ${w.row0}–${w.row0 + w.rows - 1}, columns ` +
      `${w.col0}–${w.col0 + w.cols - 1}`} · one cell = ${per === '1 × 1' ? 'one weight' : `${per} weights`} · ` +
      `${fmt.percent(zeros0)} zero here, ${fmt.percent(map.zeros_total / (map.rows * map.cols))} in the matrix`;
    q('.mask-reset').disabled = whole;
    root.dataset.window = `${w.row0},${w.col0},${w.rows},${w.cols}`;
    root.dataset.grid = `${gr},${gc}`;
    root.dataset.zeros = String(zeros0);
    canvas.setAttribute('aria-label', `Pruning mask of ${map.name}: ${q('.mask-caption').textContent}`);
  }

  /** The matrix row and column under canvas position (x, y) in CSS pixels. */
  function at(x, y) {
    const { window: w } = map;
    const rect = canvas.getBoundingClientRect();
    const r = Math.min(w.rows - 1, Math.max(0, Math.floor(((y - rect.top) / rect.height) * w.rows)));
    const c = Math.min(w.cols - 1, Math.max(0, Math.floor(((x - rect.left) / rect.width) * w.cols)));
    return [w.row0 + r, w.col0 + c];
  }

  canvas.addEventListener('mousedown', (e) => {
    if (map) drag = at(e.clientX, e.clientY);
  });
  canvas.addEventListener('mouseup', (e) => {
    if (!drag || !map) return;
    const [r1, c1] = at(e.clientX, e.clientY);
    const [r0, c0] = drag;
    drag = null;
    const rows = Math.abs(r1 - r0) + 1;
    const cols = Math.abs(c1 - c0) + 1;
    if (rows * cols < 4) return; // a click, not a drag
    show(name, { row0: Math.min(r0, r1), col0: Math.min(c0, c1), rows, cols });
  });
  canvas.addEventListener('mousemove', (e) => {
    if (!map) return;
    const [r, c] = at(e.clientX, e.clientY);
    const { window: w, grid_rows: gr, grid_cols: gc } = map;
    const i = Math.floor(((r - w.row0) * gr) / w.rows);
    const j = Math.floor(((c - w.col0) * gc) / w.cols);
    canvas.title = `row ${r}, column ${c}: ${fmt.percent(map.zeros[i * gc + j])} of this cell is zero`;
  });
  q('.mask-reset').addEventListener('click', () => show(name));

  return { show };
}
