#!/usr/bin/env bash
# npm start: set up what is missing, build, and serve the playground on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
PORT="${PORT:-5173}"
echo
echo "Squeeze is at http://127.0.0.1:$PORT/  (Ctrl-C to stop)"
exec npx vite preview --config vite.config.js --host 127.0.0.1 --port "$PORT" --strictPort
