// The progress boxes of the page (.progress: a label, an amount and a <progress> bar).

/**
 * Shows `box` with `label` and `amount`; the bar is at done / total, or indeterminate when total is 0.
 * done and total are also kept as data attributes, for tests and for the views' own messages.
 */
export function showProgress(box, { label, amount = '', done = 0, total = 0 }) {
  box.hidden = false;
  box.querySelector('.phase').textContent = label;
  box.querySelector('.amount').textContent = amount;
  const bar = box.querySelector('progress');
  if (total > 0) bar.value = done / total;
  else bar.removeAttribute('value');
  box.dataset.done = String(done);
  box.dataset.total = String(total);
}
