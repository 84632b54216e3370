//! The GPU core: one `Gpu` context (adapter, device, queue, granted limits), compiled kernels cached by
//! (shader, entry point, specialisation), tensors in GPU buffers, and async readback. The same code runs
//! natively (Vulkan, lavapipe in CI) and in the browser (WebGPU).

mod context;
mod kernel;
mod readback;
mod tensor;

pub use context::{fault_message, Gpu, GpuInfo, GpuOptions};
pub use kernel::{Access, Kernel, KernelSpec};
pub use tensor::{row_chunks, GpuTensor, Window};

/// Split `n` workgroups over x and y so neither exceeds the per-dimension limit. Shaders rebuild the
/// linear index as `wid.x + wid.y * num_workgroups.x`.
pub fn grid(n_workgroups: u64, max_per_dim: u32) -> [u32; 3] {
    let max = max_per_dim.max(1) as u64;
    if n_workgroups <= max {
        return [n_workgroups.max(1) as u32, 1, 1];
    }
    let y = n_workgroups.div_ceil(max);
    let x = n_workgroups.div_ceil(y);
    [x as u32, y as u32, 1]
}

#[cfg(test)]
mod tests {
    use super::grid;

    #[test]
    fn grid_covers_every_workgroup_within_limits() {
        for n in [1u64, 7, 65535, 65536, 200_001, 4_000_000_000] {
            let [x, y, _] = grid(n, 65535);
            assert!(x <= 65535 && y <= 65535, "{n}: {x}x{y}");
            assert!(x as u64 * y as u64 >= n, "{n}: {x}x{y} too small");
        }
    }
}
