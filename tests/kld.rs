//! KL divergence between two models on the same tokens: zero against itself, clearly positive against
//! a model with other weights.

mod common;

use common::{tiny_llama_gguf, TINY_VOCAB};
use squeeze::eval::kld::kl_divergence;
use squeeze::formats::{DType, MemSource};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};

fn no_progress(_: &str, _: u64, _: u64) {}

fn tiny(gpu: &Gpu, bytes: Vec<u8>) -> LoadedModel {
    let sources = [MemSource { name: "tiny.gguf".into(), bytes }];
    pollster::block_on(load(gpu, &sources, &mut no_progress)).unwrap()
}

fn tokens() -> Vec<u32> {
    (0..160u32).map(|i| (i * 7919 + 3) % TINY_VOCAB as u32).collect()
}

#[test]
fn a_model_against_itself_has_no_divergence() {
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).unwrap();
    let (a, b) = (tiny(&gpu, tiny_llama_gguf(DType::Q8_0, 4)), tiny(&gpu, tiny_llama_gguf(DType::Q8_0, 4)));
    let (mut base, mut same) =
        (Runner::new(&gpu, &a, 32, 32).unwrap(), Runner::new(&gpu, &b, 32, 32).unwrap());
    let d =
        pollster::block_on(kl_divergence(&mut base, &mut same, &tokens(), 32, None, None, &mut no_progress))
            .unwrap();
    assert_eq!((d.chunks, d.tokens), (5, 5 * 15), "llama.cpp's rows: second half of each 32-token chunk");
    // Only the 16-bit storage of the base's log-probabilities separates the two (≤ ~1e-4 nats per entry).
    assert!(d.kld < 1e-4, "KLD {}", d.kld);
    assert_eq!(d.top1, 1.0);
    assert!((d.ppl - d.ppl_base).abs() / d.ppl_base < 1e-3, "{} vs {}", d.ppl, d.ppl_base);
}

#[test]
fn other_weights_diverge_and_disagree() {
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).unwrap();
    let (a, b) = (tiny(&gpu, tiny_llama_gguf(DType::F32, 4)), tiny(&gpu, tiny_llama_gguf(DType::F32, 5)));
    let (mut base, mut other) =
        (Runner::new(&gpu, &a, 32, 32).unwrap(), Runner::new(&gpu, &b, 32, 32).unwrap());
    let d = pollster::block_on(kl_divergence(
        &mut base,
        &mut other,
        &tokens(),
        32,
        Some(2),
        None,
        &mut no_progress,
    ))
    .unwrap();
    assert!(d.kld > 0.01, "random weights of another seed must diverge, KLD {}", d.kld);
    assert!(d.top1 < 0.9, "top-1 agreement {}", d.top1);
    assert!(d.kld_p99 >= d.kld_median && d.dp_rms > 0.0);
}
