#!/usr/bin/env bash
# Builds the wasm module (release) with its JS glue into www/pkg, then the page into dist/.
# Cargo rebuilds incrementally; wasm-bindgen and Vite take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir www/pkg target/wasm32-unknown-unknown/release/squeeze.wasm
npx vite build --config vite.config.js --logLevel warn
