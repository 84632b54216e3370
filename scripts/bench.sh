#!/usr/bin/env bash
# npm run bench: speed lives here, not in the tests. Native `squeeze bench` (load, each recipe's compression
# time, prefill/decode tokens/s, GPU memory) on the default model, then the same recipes in headless Chromium
# (bench/page.bench.js). BENCH_RECIPES (a JSON list of recipes) picks the recipes for both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/vulkan-env.sh
MODEL=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
RECIPES=${BENCH_RECIPES:-'[{"steps":[{"method":"rtn","bits":4,"group":128}]},{"steps":[{"method":"nf4"}]},{"steps":[{"method":"smoothquant","alpha":0.8,"bits":8}]},{"steps":[{"method":"gptq","bits":4,"group":128,"damp":0.1}]}]'}
cargo build --release --bin squeeze
echo "== native: the original"
./target/release/squeeze bench "$MODEL"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node -e 'JSON.parse(process.argv[1]).forEach((r, i) => require("fs").writeFileSync(`${process.argv[2]}/${i}.json`, JSON.stringify(r)))' \
  "$RECIPES" "$work"
for recipe in "$work"/*.json; do
  echo; echo "== native: $(cat "$recipe")"
  ./target/release/squeeze bench "$MODEL" --recipe "$recipe" --calib-file .cache/texts/macbeth_gut.txt --calib-tokens 512
done
echo; echo "== in the page (headless Chromium, WebGPU)"
bash scripts/build.sh
BENCH_RECIPES="$RECIPES" npx playwright test --config playwright.bench.config.js
