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
        let zeros = if rng.next_u64().is_multiple_of(3) { 64..96 } else { 0..0 };
        for j in 0..cols {
            let x: f32 = (0..4).map(|_| rng.uniform()).sum::<f32>() * scale;
            let outlier = rng.next_u64().is_multiple_of(200);
            w.push(if zeros.contains(&j) {
                0.0
            } else if outlier {
                8.0 * x
            } else {
                x
            });
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
    // The 32-wide formats, for scale.
    let mut q4_1 = 0.0;
    for scheme in [Scheme::Q4_0, Scheme::Q4_1, Scheme::Q5_0, Scheme::Q8_0] {
        let e = rel_mse(&quantize_rtn(&format(scheme), &w, rows, cols).unwrap().values, &w);
        eprintln!("{scheme:?}: relative squared error {e:.3e}");
        if scheme == Scheme::Q4_1 {
            q4_1 = e;
        }
    }
    // Measured (seed 1): Q4_K 6.68e-3 searched vs 7.91e-3 min/max (Q4_1, at 5 bits: 7.93e-3), Q6_K
    // 4.86e-4 vs 5.38e-4.
    let [(q4_naive, q4), (q6_naive, q6)] = errors[..] else { unreachable!() };
    assert!(q4 < 0.87 * q4_naive && q4 < 6.8e-3, "Q4_K: {q4:.3e} searched, {q4_naive:.3e} min/max");
    assert!(q4 < 0.9 * q4_1, "Q4_K at 4.5 bits: {q4:.3e}, Q4_1 at 5 bits: {q4_1:.3e}");
    assert!(q6 < 0.92 * q6_naive && q6 < 5.0e-4, "Q6_K: {q6:.3e} searched, {q6_naive:.3e} min/max");
}

/// A Q4_K super-block on its own grid: d = dmin = 1, sub-block j = sc_j·q − m_j with codes spanning
/// 0..15 (so that the min/max fit is exact), scales and mins that use the top bits of the packing.
#[test]
fn q4_k_block_on_its_grid_round_trips_bit_for_bit() {
    let sc = [63u8, 1, 17, 40, 5, 33, 62, 20];
    let m = [0u8, 63, 16, 47, 3, 32, 1, 60];
    let code = |j: usize, i: usize| match i {
        0 => 0,
        1 => 15,
        _ => (i * 7 + j) % 16,
    };
    let x: Vec<f32> =
        (0..256).map(|e| (sc[e / 32] as usize * code(e / 32, e % 32)) as f32 - m[e / 32] as f32).collect();
    for fit in [Fit::MinMax, Fit::Searched] {
        let q = quantize(Scheme::Q4_K, &x, 1, 256, fit).unwrap();
        assert_eq!(q.values, x, "{fit:?}: exact on its own grid");
        let b = &q.bytes;
        assert_eq!(b.len(), 144);
        assert_eq!(b[0..4], [0x00, 0x3C, 0x00, 0x3C], "d = dmin = 1.0 in f16");
        // Scales 0–3 and mins 0–3 in the low 6 bits of bytes 0–7; the top 2 bits of 4–7 above them; the
        // low nibbles of 4–7 in bytes 8–11.
        assert_eq!(b[4..16], [0x3F, 0x81, 0xD1, 0x68, 0x00, 0xBF, 0x10, 0xEF, 0x35, 0x01, 0x1E, 0xC4]);
        // qs[l] of each 64: sub-block 2c in the low nibble, 2c+1 in the high one.
        assert_eq!(b[16..19], [0x00, 0xFF, (14 | 15 << 4) as u8]);
        let (j, l) = (6, 9); // element 64·3 + 9 (low nibble) and 64·3 + 32 + 9 (high nibble)
        assert_eq!(b[16 + 32 * 3 + l], (code(j, l) | code(j + 1, l) << 4) as u8);
    }
}

/// A Q6_K super-block on its own grid: d = 1, i8 scales from −128 to 127, codes spanning −32..31.
#[test]
fn q6_k_block_on_its_grid_round_trips_bit_for_bit() {
    let sc = [-128i8, 5, -7, 127, 1, -1, 64, -64, 100, 3, -128, 2, 9, -50, 77, 30];
    let code = |j: usize, i: usize| match i {
        0 => -32,
        1 => 31,
        _ => ((i * 5 + j) % 64) as i32 - 32,
    };
    let x: Vec<f32> = (0..256).map(|e| (sc[e / 16] as i32 * code(e / 16, e % 16)) as f32).collect();
    for fit in [Fit::MinMax, Fit::Searched] {
        let q = quantize(Scheme::Q6_K, &x, 1, 256, fit).unwrap();
        assert_eq!(q.values, x, "{fit:?}: exact on its own grid");
        let b = &q.bytes;
        assert_eq!(b.len(), 210);
        assert_eq!(b[208..210], [0x00, 0x3C], "d = 1.0 in f16, last");
        assert_eq!(b[192..208], sc.map(|s| s as u8), "the scales in sub-block order");
        // Element l and l + 64 share ql[l] (low, high nibble); elements l, l+32, l+64, l+96 share qh[l].
        let stored = |e: usize| (code(e / 16, e % 16) + 32) as u8;
        for l in [0, 1, 2, 17, 31] {
            assert_eq!(b[l], stored(l) & 15 | (stored(l + 64) & 15) << 4, "ql[{l}]");
            assert_eq!(b[32 + l], stored(l + 32) & 15 | (stored(l + 96) & 15) << 4, "ql[{}]", 32 + l);
            let high = |e: usize| stored(e) >> 4;
            let qh = high(l) | high(l + 32) << 2 | high(l + 64) << 4 | high(l + 96) << 6;
            assert_eq!(b[128 + l], qh, "qh[{l}]");
            assert_eq!(b[64 + l] & 15, stored(128 + l) & 15, "ql[{}], second half", 64 + l);
        }
    }
}

/// Q5_0 as llama.cpp's `quantize_row_q5_0_ref`: d = (signed absmax)/−16, q = ⌊x/d + 16.5⌋ in 0..31.
#[test]
fn q5_0_block_is_llama_cpps() {
    let x: Vec<f32> = (0..32).map(|i| 0.5 * (i as f32 - 16.0)).collect();
    let q = quantize_rtn(&format(Scheme::Q5_0), &x, 1, 32).unwrap();
    assert_eq!(q.dtype, DType::Q5_0);
    assert_eq!(q.values, x);
    let b = &q.bytes;
    assert_eq!(b[0..2], [0x00, 0x38], "d = −8/−16 = 0.5");
    assert_eq!(b[2..6], [0x00, 0x00, 0xFF, 0xFF], "codes 16..31 have the fifth bit");
    let nibbles: Vec<u8> = (0..16).map(|j| j | j << 4).collect();
    assert_eq!(b[6..22], nibbles[..]);
    assert_eq!(dequantize(DType::Q5_0, b, 32).unwrap(), x);
}

#[test]
fn rows_not_a_multiple_of_256_fall_back_as_in_llama_cpp() {
    for (scheme, fallback, bits) in [(Scheme::Q4_K, DType::Q5_0, 5.5), (Scheme::Q6_K, DType::Q8_0, 8.5)] {
        let f = format(scheme);
        // SmolLM2: 576-wide rows (attention, gate, up) fall back; ffn_down's 1536-wide rows do not.
        assert_eq!(f.dtype(576).unwrap(), fallback);
        assert_eq!(f.dtype(1536).unwrap(), if scheme == Scheme::Q4_K { DType::Q4_K } else { DType::Q6_K });
        assert_eq!(fallback.bits_per_weight(), bits);
        let w = weights(3, 576, &mut Rng::new(2));
        let q = quantize_rtn(&f, &w, 3, 576).unwrap();
        let direct = quantize_rtn(&f.for_row(576), &w, 3, 576).unwrap();
        assert_eq!((q.dtype, &q.bytes), (fallback, &direct.bytes));
        let e = f.dtype(100).unwrap_err().to_string();
        assert!(e.contains("rows of 100"), "{e}");
    }
}

#[test]
fn k_quants_are_refused_where_one_grid_per_block_is_chosen() {
    let e = Recipe::parse(r#"{"steps":[{"method":"gptq","format":"q4_k"}]}"#).unwrap_err().to_string();
    assert!(e.contains("gptq.format \"q4_k\": K-quant super-blocks") && e.contains("only rtn fits"), "{e}");
    let e = Recipe::parse(r#"{"steps":[{"method":"awq","format":"q6_k"}]}"#).unwrap_err().to_string();
    assert!(e.contains("use q4_0, q4_1, q5_0 or q8_0"), "{e}");
    let step = &Recipe::parse(r#"{"steps":[{"method":"rtn","format":"q4_k"}]}"#).unwrap().steps[0];
    assert_eq!(step.format().unwrap().scheme, Scheme::Q4_K);
    let e = format(Scheme::Q4_K).grid_dtype(512).unwrap_err().to_string();
    assert!(e.contains("fitted whole by round-to-nearest"), "{e}");
    let e = quantize(Scheme::Q4_K, &[0.0; 576], 1, 576, Fit::Searched).err().unwrap().to_string();
    assert!(e.contains("rows of 576 need llama.cpp's fallback"), "{e}");
    let e = quantize(Scheme::Q6_K, &[0.0; 256], 2, 256, Fit::Searched).err().unwrap().to_string();
    assert!(e.contains("(2, 256) matrix has 512 weights, not 256"), "{e}");
}
