//! Loading whole models onto the GPU: the real SmolLM2 file occupies exactly its packed size, and
//! tensors beyond the device's limits are refused with a message naming the file, tensor and limit.

mod common;

use common::{real_model_path, tiny_llama_gguf};
use squeeze::formats::source::FileSource;
use squeeze::formats::{DType, MemSource};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::load;

fn gpu(options: GpuOptions) -> Gpu {
    pollster::block_on(Gpu::new(options)).expect("a Vulkan adapter (lavapipe in CI)")
}

fn no_progress(_: &str, _: u64, _: u64) {}

#[test]
fn real_model_uploads_packed_with_progress() {
    let gpu = gpu(GpuOptions::default());
    let sources = [FileSource::open(&real_model_path()).unwrap()];
    let mut last = (String::new(), 0, 0);
    let mut progress = |phase: &str, done: u64, total: u64| last = (phase.to_string(), done, total);
    let model = pollster::block_on(load(&gpu, &sources, &mut progress)).unwrap();
    let view = model.view();
    assert_eq!(view.tensors.len(), 272);
    assert_eq!(last, ("upload".to_string(), view.summary.bytes_total, view.summary.bytes_total));
    // Packed blocks stay packed: GPU memory is the file's tensor bytes (each buffer padded to 4 bytes).
    let gpu_bytes = view.gpu_bytes.unwrap();
    assert!(gpu_bytes >= view.summary.bytes_total && gpu_bytes < view.summary.bytes_total + 4 * 272);
    assert!(view.summary.bytes_total < 100_000_000, "Q4_1/Q8_0 model, not f32");
}

#[test]
fn tensor_over_the_buffer_limit_is_refused_by_name() {
    let gpu = gpu(GpuOptions { max_buffer_size: Some(64 * 1024), ..Default::default() });
    let sources = [MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::F32, 1) }];
    let err = pollster::block_on(load(&gpu, &sources, &mut no_progress)).err().unwrap().to_string();
    assert!(err.contains("tiny.gguf") && err.contains("token_embd.weight"), "{err}");
    assert!(err.contains("307200 bytes") && err.contains("65536 bytes"), "{err}");
}

#[test]
fn row_over_the_binding_limit_is_refused_by_name() {
    let gpu = gpu(GpuOptions { max_storage_buffer_binding_size: Some(1024), ..Default::default() });
    let sources = [MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::Q8_0, 2) }];
    let err = pollster::block_on(load(&gpu, &sources, &mut no_progress)).err().unwrap().to_string();
    assert!(err.contains("tiny.gguf: tensor token_embd.weight: one row needs"), "{err}");
    assert!(err.contains("binds at most 1024 bytes"), "{err}");
}
