# Sourced by test.sh and bench.sh: native wgpu runs on whatever Vulkan adapter is present (lavapipe on a
# machine without a GPU). The Vulkan loader complains on every device creation when XDG_RUNTIME_DIR is
# unset; give it a private one.
export WGPU_BACKEND=vulkan
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/squeeze-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
