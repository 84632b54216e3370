#!/usr/bin/env bash
# npm test: set up what is missing (plus Chromium and lavapipe), then the native Rust tests on wgpu/Vulkan,
# then the browser end-to-end tests in headless Chromium with WebGPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

source scripts/vulkan-env.sh
echo; echo "== cargo fmt / clippy"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
echo; echo "== native tests (wgpu over Vulkan)"
cargo test --release -- --test-threads 2

echo; echo "== browser tests (Playwright, headless Chromium, WebGPU)"
bash scripts/build.sh
npx playwright test
