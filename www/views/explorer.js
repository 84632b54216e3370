// Explorer view: look at the model before compressing it — which blocks are sensitive to compression (a
// scan), and where the activations have outlier channels (recorded on a text).
import { createSensitivityScan } from './sensitivity.js';
import { createActivationOutliers } from './activations.js';

export function createExplorerView(root, { rpc, showError }) {
  root.innerHTML = `
    <div class="empty-note">Load a model to explore it.</div>
    <div class="explorer" hidden>
      <div class="explorer-sensitivity"></div>
      <div class="explorer-activations"></div>
    </div>`;
  const q = (sel) => root.querySelector(sel);
  const scan = createSensitivityScan(q('.explorer-sensitivity'), { rpc, showError });
  const outliers = createActivationOutliers(q('.explorer-activations'), { rpc, showError });

  return {
    setMethods: scan.setMethods,
    setModel() {
      q('.empty-note').hidden = true;
      q('.explorer').hidden = false;
      scan.reset();
      outliers.reset();
    },
    activate() {
      // Charts drawn while the view was hidden had no width: draw them again now that it has one.
      scan.redraw();
      outliers.redraw();
    },
  };
}
