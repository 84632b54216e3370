// A five-step guided tour of what compression does: the weights' histogram → quantising them → the error it
// made → what that costs in perplexity → the size/damage trade-off. Each step opens its view and outlines the
// part it talks about; the card can be closed at any step (Esc too), and once closed the offer is not shown
// again (it stays in the top bar's "Tour" button).

const DONE_KEY = 'squeeze.tour.done';

const STEPS = [
  {
    view: 'weights',
    targets: ['#view-weights .hist-chart', '#view-weights'],
    title: 'The weights',
    text: 'Every matrix is a few hundred thousand numbers, bunched around zero with a few far out. The histogram ' +
      'shows them; quantising means replacing each with one of only 2ᵇ levels spread over this range.',
  },
  {
    view: 'compress',
    targets: ['#view-compress .recipe-form', '#view-compress'],
    title: 'Quantise',
    text: 'A recipe says which method rewrites which matrices: try rtn, 4 bits, target blk\\.0\\. (the first ' +
      'block) and press Run. Each method explains itself, with its formula.',
  },
  {
    view: 'compress',
    targets: ['#view-compress .layer-chart:not([hidden])', '#view-compress .compress-run'],
    title: 'The error',
    text: 'After a run, the error per layer shows how far each rewritten matrix moved: ‖Ŵ − W‖² / ‖W‖². Click a ' +
      'tensor in the table to see its histogram before and after, and the histogram of the error itself.',
  },
  {
    view: 'compress',
    targets: ['#view-compress .compress-facts:not(:empty)', '#view-compress .compress-run'],
    title: 'Perplexity and KL divergence',
    text: 'Small weight errors add up: both models read the same text, and the perplexity of each and the KL ' +
      'divergence between their next-token predictions say how much the model itself changed.',
  },
  {
    view: 'experiments',
    targets: ['#view-experiments .tradeoff', '#view-experiments'],
    title: 'The trade-off',
    text: 'Every run is kept as an experiment. Plot size against damage: the Pareto frontier joins the recipes ' +
      'nothing beats on both. Try 3 bits, larger groups, or GPTQ, and watch where the points land.',
  },
];

/** `showView(name)` switches views; `canShow(name)` says whether a view's tab is enabled. */
export function createTour({ showView, canShow }) {
  const card = document.createElement('div');
  card.className = 'tour-card';
  card.setAttribute('role', 'dialog');
  card.setAttribute('aria-labelledby', 'tour-title');
  card.hidden = true;
  card.innerHTML = `
    <div class="tour-head"><span class="tour-count muted"></span>
      <button type="button" class="tour-close" aria-label="Close the tour">×</button></div>
    <h2 id="tour-title" class="tour-title"></h2>
    <p class="tour-text"></p>
    <div class="tour-actions"><button type="button" class="tour-back">Back</button>
      <button type="button" class="primary tour-next">Next</button></div>`;
  document.body.append(card);
  const q = (sel) => card.querySelector(sel);
  let at = -1;
  let outlined = null;

  function show(i) {
    at = i;
    document.querySelector('#tour-offer')?.setAttribute('hidden', '');
    const step = STEPS[i];
    if (canShow(step.view)) showView(step.view);
    outlined?.classList.remove('tour-target');
    outlined = step.targets.map((s) => document.querySelector(s)).find((el) => el && el.offsetParent !== null);
    outlined?.classList.add('tour-target');
    outlined?.scrollIntoView({ block: 'center', behavior: 'smooth' });
    card.hidden = false;
    card.dataset.step = String(i + 1);
    q('.tour-count').textContent = `Step ${i + 1} of ${STEPS.length}`;
    q('.tour-title').textContent = step.title;
    q('.tour-text').textContent = step.text;
    q('.tour-back').disabled = i === 0;
    q('.tour-next').textContent = i === STEPS.length - 1 ? 'Done' : 'Next';
    q('.tour-next').focus();
  }

  function close() {
    card.hidden = true;
    outlined?.classList.remove('tour-target');
    outlined = null;
    at = -1;
    localStorage.setItem(DONE_KEY, '1');
    const offer = document.querySelector('#tour-offer');
    if (offer) offer.hidden = true;
  }

  q('.tour-back').onclick = () => show(Math.max(0, at - 1));
  q('.tour-next').onclick = () => (at === STEPS.length - 1 ? close() : show(at + 1));
  q('.tour-close').onclick = close;
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !card.hidden) close();
  });

  return {
    start: () => show(0),
    /** Whether to offer the tour on its own (nobody has closed it in this browser yet). */
    wanted: () => !localStorage.getItem(DONE_KEY),
    dismiss: close,
  };
}
