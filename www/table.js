// Sortable tables: each header cell is a button that sorts by its column (again: the other way round),
// with aria-sort kept in step so screen readers announce the order.

/** Header cells for `columns` ({key, label, num}). */
export function sortableHeader(columns) {
  return columns.map((c) => `<th scope="col" class="${c.num ? 'num' : ''}" data-key="${c.key}">
    <button type="button" class="sort">${c.label}</button></th>`).join('');
}

/**
 * Wires the header of `table` (made by sortableHeader) to re-sort: a click calls render(). Returns
 * sorted(rows), a sorted copy of rows by the current column ({key, cmp(a, b)} of `columns`).
 */
export function makeSortable(table, columns, initial, render) {
  let sort = initial;
  table.tHead.addEventListener('click', (e) => {
    const key = e.target.closest('th')?.dataset.key;
    if (!key) return;
    sort = { key, dir: sort.key === key ? -sort.dir : 1 };
    render();
  });
  return function sorted(rows) {
    for (const th of table.tHead.querySelectorAll('th[data-key]')) {
      th.setAttribute('aria-sort', th.dataset.key !== sort.key ? 'none' : sort.dir > 0 ? 'ascending' : 'descending');
    }
    const col = columns.find((c) => c.key === sort.key);
    return [...rows].sort((a, b) => sort.dir * col.cmp(a, b));
  };
}

/**
 * Rows of `tbody` (each <tr tabindex="0" data-name>) open with a click, Enter or Space; ↑/↓ move between
 * them, so the table works from the keyboard.
 */
export function activateRows(tbody, open) {
  tbody.addEventListener('click', (e) => {
    const row = e.target.closest('tr');
    if (row) open(row.dataset.name);
  });
  tbody.addEventListener('keydown', (e) => {
    const row = e.target.closest('tr');
    if (!row) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open(row.dataset.name);
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      (e.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling)?.focus();
    }
  });
}
