//! The real SmolLM2-135M-Instruct Q4_1 model against llama.cpp on the same file: perplexity in
//! llama.cpp's convention, and greedy generation. Reference figures were produced with llama.cpp from
//! the llama_cpp_python 0.3.36 sdist (vendor/llama.cpp, CPU build, 2 threads):
//!   llama-perplexity -m SmolLM2-135M-Instruct.Q4_1.gguf -f hamlet_gut.txt -c 512 --chunks 4
//!     → [1]19.6174,[2]22.7689,[3]29.8426,[4]37.0933  Final estimate: PPL = 37.0933 +/- 3.87374
//!   llama-simple -m smollm2-f32.gguf -n 32 "<prompt>"   (greedy; the F32 file is the Q4_1 one
//!     dequantised by llama-quantize), then llama-tokenize of its output for the ids below.

mod common;

use common::real_model_path;
use squeeze::eval::perplexity::{perplexity, Convention};
use squeeze::formats::source::FileSource;
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::runner::Runner;
use squeeze::model::sampler::argmax;
use squeeze::model::{load, tokenizer, LoadedModel};

const LLAMA_CPP_PPL_4_CHUNKS: f64 = 37.0933;
/// llama.cpp on the same weights dequantised to F32, where it also computes in f32:
///   [1]19.5121,[2]22.6362,[3]29.6942,[4]36.9419  PPL = 36.9419 +/- 3.85310
const LLAMA_CPP_F32_PPL_4_CHUNKS: f64 = 36.9419;
const LLAMA_CPP_RUNNING_PPL: [f64; 4] = [19.6174, 22.7689, 29.8426, 37.0933];

fn setup() -> (Gpu, LoadedModel) {
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).expect("a Vulkan adapter (lavapipe in CI)");
    let sources = [FileSource::open(&real_model_path()).unwrap()];
    let model = pollster::block_on(load(&gpu, &sources, &mut |_: &str, _: u64, _: u64| {})).unwrap();
    (gpu, model)
}

fn hamlet() -> String {
    let path = real_model_path().parent().unwrap().parent().unwrap().join("texts/hamlet_gut.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `bash scripts/setup.sh`", path.display()))
}

#[test]
fn perplexity_matches_llama_cpp_within_one_percent() {
    let (gpu, model) = setup();
    let tok = tokenizer(&model.header).unwrap();
    let tokens = tok.encode(&hamlet(), tok.adds_bos(), false);
    let mut runner = Runner::new(&gpu, &model, 512, 512).unwrap();
    let mut quiet = |_: &str, _: u64, _: u64| {};
    let p = pollster::block_on(perplexity(
        &mut runner,
        &tokens,
        512,
        Some(4),
        None,
        Convention::LlamaCpp,
        &mut quiet,
    ))
    .unwrap();
    eprintln!(
        "squeeze PPL = {:.4} +/- {:.5} (llama.cpp {LLAMA_CPP_PPL_4_CHUNKS}); running {:?}",
        p.ppl, p.ppl_err, p.per_chunk
    );
    assert_eq!((p.chunks, p.tokens), (4, 4 * 255), "4 chunks, 255 scored tokens each");
    let rel = (p.ppl - LLAMA_CPP_PPL_4_CHUNKS).abs() / LLAMA_CPP_PPL_4_CHUNKS;
    assert!(rel < 0.01, "PPL {:.4} is {:.2}% from llama.cpp's {LLAMA_CPP_PPL_4_CHUNKS}", p.ppl, rel * 100.0);
    // Without llama.cpp's 8-bit activation rounding the two engines compute the same thing in f32.
    let rel_f32 = (p.ppl - LLAMA_CPP_F32_PPL_4_CHUNKS).abs() / LLAMA_CPP_F32_PPL_4_CHUNKS;
    assert!(rel_f32 < 0.001, "PPL {:.4} vs llama.cpp on F32 weights {LLAMA_CPP_F32_PPL_4_CHUNKS}", p.ppl);
    for (ours, theirs) in p.per_chunk.iter().zip(LLAMA_CPP_RUNNING_PPL) {
        assert!((ours - theirs).abs() / theirs < 0.015, "running PPL {ours:.4} vs llama.cpp {theirs}");
    }
}

/// Greedy decoding, token by token, must reproduce `expected` exactly.
fn greedy(model: &LoadedModel, gpu: &Gpu, prompt: &str, n: usize) -> Vec<u32> {
    let tok = tokenizer(&model.header).unwrap();
    let ids = tok.encode(prompt, tok.adds_bos(), true);
    let mut runner = Runner::new(gpu, model, ids.len() + n + 1, 64).unwrap();
    let mut logits = pollster::block_on(runner.next_logits(&ids)).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let next = argmax(&logits);
        out.push(next);
        logits = pollster::block_on(runner.next_logits(&[next])).unwrap();
    }
    out
}

/// llama.cpp's CPU backend rounds activations to 8 bits before a Q4_1 or Q8_0 dot product, which moves
/// logits by up to ~0.2 here and changes greedy picks ("The capital of France is Paris.\n\nThe" →
/// " United" in llama.cpp, " answer" here). With the same weights dequantised to F32
/// (`llama-quantize --allow-requantize … F32`: the values Squeeze's kernels decode) llama.cpp computes
/// in f32 like Squeeze, and its greedy output is the reference.
#[test]
fn greedy_generation_equals_llama_cpp_on_the_same_weights() {
    let (gpu, model) = setup();
    // " there was a wise old wizard named Thorold. He lived in a tower surrounded by a beautiful garden
    // filled with all sorts of magical creatures.\n\nTh"
    let village = [
        665, 436, 253, 9357, 1573, 267, 19341, 3365, 17644, 793, 30, 909, 4161, 281, 253, 11637, 10000, 411,
        253, 3953, 4480, 4412, 351, 511, 11695, 282, 9077, 6734, 30, 198, 198, 1082,
    ];
    assert_eq!(greedy(&model, &gpu, "Once upon a time, in a small village by the sea,", 32), village);
    // " Paris.\n\nThe answer is: 2018-01-22 12:12:53." (then llama.cpp stops at end of text)
    let france = [
        7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34, 32, 33, 40, 29, 32, 33, 29, 34, 34, 216, 33, 34, 42,
        33, 34, 42, 37, 35, 30,
    ];
    assert_eq!(greedy(&model, &gpu, "The capital of France is", france.len()), france);
}
