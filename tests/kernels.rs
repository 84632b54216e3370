//! GPU kernels against their CPU twins (dequantisation of every block format, weight statistics),
//! hand-computed answers for the CPU block codec, and both on the real SmolLM2 file.
//! Native runs use lavapipe: `WGPU_BACKEND=vulkan cargo test --test kernels`.

mod common;

use common::{gpu, gpu_with, small_gpu, Rng};
use squeeze::cpu;
use squeeze::error::Error;
use squeeze::eval::weight_stats::{cpu_tensor_stats, tensor_stats, WeightStats};
use squeeze::formats::source::FileSource;
use squeeze::formats::{open_model, read_tensor_bytes, DType};
use squeeze::gpu::{Gpu, GpuOptions, GpuTensor};
use squeeze::kernels::stats::Matrix;
use squeeze::kernels::{dequant, stats};

const BLOCK_TYPES: [DType; 8] =
    [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K];

// ---------------------------------------------------------------------------------------------
// Random tensors with the edge cases of each format.

/// Byte offsets of the f16 scale fields in one block (ggml-common.h).
fn f16_fields(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q6_K => &[208],
        _ => &[],
    }
}

/// An f16 scale: zero, subnormal, the largest finite, or an ordinary normal value, either sign (a
/// negative min is the Q4_1/Q5_1 m < 0 and K-quant negative dmin case). Never NaN or infinity.
fn f16_scale(rng: &mut Rng) -> u16 {
    let sign = if rng.next_u64() & 1 == 0 { 0 } else { 0x8000 };
    let mantissa = (rng.next_u64() % 1024) as u16;
    sign | match rng.next_u64() % 6 {
        0 => 0,
        1 => mantissa.max(1),
        2 => 0x7BFF,
        _ => ((1 + rng.next_u64() % 30) as u16) << 10 | mantissa,
    }
}

/// `n` elements of a block type. Each block's quant bytes are random or all 0x00, 0xFF, 0x80, 0x7F:
/// nibbles all 0 / all 15, 5-bit 0 / 31 (qh all 0 / all 1), 6-bit 0 / 63, K-quant scales and mins
/// 0 / 63, Q8_0 and Q6_K scales −128 / 127 / −1.
fn random_blocks(dtype: DType, n: u64, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = vec![0u8; dtype.bytes_for(n).expect("whole blocks") as usize];
    rng.fill(&mut bytes);
    for block in bytes.chunks_mut(dtype.block_bytes() as usize) {
        match rng.next_u64() % 6 {
            1 => block.fill(0x00),
            2 => block.fill(0xFF),
            3 => block.fill(0x80),
            4 => block.fill(0x7F),
            _ => {}
        }
        for &at in f16_fields(dtype) {
            block[at..at + 2].copy_from_slice(&f16_scale(rng).to_le_bytes());
        }
    }
    bytes
}

/// `n` scalars as raw bits: ±0, ±infinity, the smallest and largest subnormals, the largest finite
/// value and 1, then random bit patterns. NaN patterns become infinities (NaN payloads need not
/// survive a GPU, and NaN never equals itself).
fn random_scalars(dtype: DType, n: u64, rng: &mut Rng) -> Vec<u8> {
    let f32_specials =
        [0u32, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 1, 0x807F_FFFF, 0x7F7F_FFFF, 0x3F80_0000];
    let f16_specials = [0u16, 0x8000, 0x7C00, 0xFC00, 1, 0x83FF, 0x7BFF, 0x3C00];
    let bf16_specials = [0u16, 0x8000, 0x7F80, 0xFF80, 1, 0x807F, 0x7F7F, 0x3F80];
    let mut out = Vec::new();
    for i in 0..n as usize {
        let r = rng.next_u64();
        match dtype {
            DType::F32 => {
                let bits = f32_specials.get(i).copied().unwrap_or(r as u32);
                let inf_or_nan = bits & 0x7F80_0000 == 0x7F80_0000;
                out.extend(if inf_or_nan { bits & 0xFF80_0000 } else { bits }.to_le_bytes());
            }
            DType::F16 => {
                let bits = f16_specials.get(i).copied().unwrap_or(r as u16);
                out.extend(if bits & 0x7C00 == 0x7C00 { bits & 0xFC00 } else { bits }.to_le_bytes());
            }
            _ => {
                let bits = bf16_specials.get(i).copied().unwrap_or(r as u16);
                out.extend(if bits & 0x7F80 == 0x7F80 { bits & 0xFF80 } else { bits }.to_le_bytes());
            }
        }
    }
    out
}

fn random_tensor(dtype: DType, n: u64, rng: &mut Rng) -> Vec<u8> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => random_scalars(dtype, n, rng),
        _ => random_blocks(dtype, n, rng),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing GPU with CPU dequantisation.

fn f16_at(b: &[u8], at: usize) -> f64 {
    cpu::dequant::f16(b, at).abs() as f64
}

/// The largest magnitude of the two terms' sum |d·q| + |m| in one block, for the formats whose
/// formula is a multiply-add.
fn largest_terms(dtype: DType, block: &[u8]) -> f64 {
    match dtype {
        DType::Q4_1 => 15.0 * f16_at(block, 0) + f16_at(block, 2),
        DType::Q5_1 => 31.0 * f16_at(block, 0) + f16_at(block, 2),
        DType::Q4_K => 63.0 * 15.0 * f16_at(block, 0) + 63.0 * f16_at(block, 2),
        DType::Q5_K => 63.0 * 31.0 * f16_at(block, 0) + 63.0 * f16_at(block, 2),
        _ => 0.0,
    }
}

/// The spacing of f32 values at magnitude `x`.
fn ulp(x: f64) -> f32 {
    let x = (x * (1.0 + 1e-6)) as f32;
    f32::from_bits(x.to_bits() + 1) - x
}

/// GPU against CPU, element by element. One-product formats (F32, F16, BF16, Q8_0, Q4_0, Q5_0) and
/// Q6_K (two products, evaluated in the same order; there is no add for a driver to fuse) must agree
/// bit for bit. Formulas of the form a·b + c (Q4_1, Q5_1: q·d + m; Q4_K, Q5_K: (d·sc)·q − dmin·m) may
/// be fused into one fma by the driver, which skips the product's rounding: the two results then
/// differ by at most one ulp of |a·b| + |c| (both lie within half an ulp of values at most half an
/// ulp of the product apart), so the tolerance is one ulp of the block's largest |d·q| + |m|.
fn assert_matches_cpu(what: &str, dtype: DType, bytes: &[u8], got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    let fused = matches!(dtype, DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K);
    let (bb, bs) = (dtype.block_bytes() as usize, dtype.block_size() as usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let block = &bytes[i / bs * bb..(i / bs + 1) * bb];
        let ok = if fused {
            (g - w).abs() <= ulp(largest_terms(dtype, block))
        } else {
            g.to_bits() == w.to_bits()
        };
        assert!(
            ok,
            "{what}: element {i}: GPU {g:e} ({:#010x}), CPU {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// Upload, dequantise on the GPU (in chunks where needed) and compare with the CPU codec.
async fn check_dequant(gpu: &Gpu, dtype: DType, shape: &[u64], rng: &mut Rng) -> usize {
    let n: u64 = shape.iter().product();
    let bytes = random_tensor(dtype, n, rng);
    let t = gpu.upload_tensor("t", shape, dtype, &bytes).unwrap();
    let chunks = dequant::chunks(gpu, &t).unwrap().len();
    let got = dequant::dequantize_to_vec(gpu, &t).await.unwrap();
    let want = cpu::dequant::dequantize(dtype, &bytes, n as usize).unwrap();
    assert_matches_cpu(&format!("{dtype} {shape:?}"), dtype, &bytes, &got, &want);
    chunks
}

#[test]
fn gpu_dequant_matches_cpu_for_every_format_and_shape() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(1);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for shape in [&[5u64][..], &[7, 96], &[1, 32], &[3, 97], &[13, 768]] {
                check_dequant(&gpu, dtype, shape, &mut rng).await;
            }
        }
        for dtype in BLOCK_TYPES {
            let shapes: &[&[u64]] = if dtype.block_size() == 256 {
                &[&[1, 256], &[3, 256], &[13, 768], &[2, 3, 512]]
            } else {
                &[&[7, 96], &[1, 32], &[3, 256], &[13, 768], &[2, 3, 64]]
            };
            for &shape in shapes {
                check_dequant(&gpu, dtype, shape, &mut rng).await;
            }
        }
    });
}

#[test]
fn gpu_dequant_in_chunks_with_unaligned_rows() {
    pollster::block_on(async {
        let gpu = small_gpu();
        let mut rng = Rng::new(2);
        // Rows of 768 block-format elements are 216 to 660 bytes and F16 rows of 97 are 194 bytes, so
        // most chunks start mid-word and off the 256-byte binding alignment.
        for dtype in BLOCK_TYPES.into_iter().chain([DType::F32, DType::BF16]) {
            let chunks = check_dequant(&gpu, dtype, &[67, 768], &mut rng).await;
            assert!(chunks >= 3, "{dtype}: {chunks} chunks");
        }
        let chunks = check_dequant(&gpu, DType::F16, &[500, 97], &mut rng).await;
        assert!(chunks >= 3, "F16: {chunks} chunks");
    });
}

#[test]
fn gpu_dequant_refuses_what_it_cannot_do() {
    pollster::block_on(async {
        let gpu = small_gpu();
        let bytes = vec![0u8; DType::Q2_K.bytes_for(256).unwrap() as usize];
        let q2 = gpu.upload_tensor("blk.0.q2", &[1, 256], DType::Q2_K, &bytes).unwrap();
        let e = dequant::dequantize(&gpu, &q2, 0..1).await.unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("Q2_K"), "{e}");

        let big = vec![0u8; 4 * 40 * 1024];
        let t = gpu.upload_tensor("big", &[40, 1024], DType::F32, &big).unwrap();
        let e = dequant::dequantize(&gpu, &t, 0..40).await.unwrap_err();
        assert!(matches!(e, Error::DeviceLimit(_)) && e.to_string().contains("163840 f32 bytes"), "{e}");
        let e = dequant::dequantize(&gpu, &t, 3..41).await.unwrap_err();
        assert!(e.to_string().contains("rows 3..41 of tensor big"), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Hand-computed answers for the CPU codec, so that a twin and a kernel sharing a wrong idea of a
// layout cannot agree with each other unnoticed.

fn decode_one(dtype: DType, block: &[u8]) -> Vec<f32> {
    cpu::dequant::dequantize(dtype, block, dtype.block_size() as usize).unwrap()
}

fn block_with(dtype: DType, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; dtype.block_bytes() as usize];
    for (at, bytes) in fields {
        b[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
    b
}

#[test]
fn cpu_codec_known_answers_scalars() {
    let f32s: Vec<u8> = [1.5f32, -0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let got = cpu::dequant::dequantize(DType::F32, &f32s, 2).unwrap();
    assert_eq!((got[0], got[1].to_bits()), (1.5, 0x8000_0000));

    let f16s: Vec<u8> =
        [0x3C00u16, 0xC000, 0x0001, 0x7C00, 0x7BFF].iter().flat_map(|v| v.to_le_bytes()).collect();
    let got = cpu::dequant::dequantize(DType::F16, &f16s, 5).unwrap();
    assert_eq!(got, [1.0, -2.0, 2f32.powi(-24), f32::INFINITY, 65504.0]);

    let bf16s: Vec<u8> = [0x3F80u16, 0xC0A0, 0x7F80].iter().flat_map(|v| v.to_le_bytes()).collect();
    let got = cpu::dequant::dequantize(DType::BF16, &bf16s, 3).unwrap();
    assert_eq!(got, [1.0, -5.0, f32::INFINITY]);
}

#[test]
fn cpu_codec_known_answers_32_element_blocks() {
    // Q8_0: d = 2; qs[0] = −128, qs[5] = −1, qs[31] = 127.
    let b = block_with(DType::Q8_0, &[(0, &[0x00, 0x40]), (2, &[0x80]), (7, &[0xFF]), (33, &[0x7F])]);
    let mut want = [0f32; 32];
    (want[0], want[5], want[31]) = (-256.0, -2.0, 254.0);
    assert_eq!(decode_one(DType::Q8_0, &b), want);

    // Q4_0: d = 0.5; qs = 0x88 (both nibbles 8 → 0) except qs[0] = 0x1F and qs[15] = 0x80.
    let mut b = block_with(DType::Q4_0, &[(0, &[0x00, 0x38])]);
    b[2..18].fill(0x88);
    (b[2], b[17]) = (0x1F, 0x80);
    let mut want = [0f32; 32];
    (want[0], want[16], want[15], want[31]) = ((15.0 - 8.0) * 0.5, (1.0 - 8.0) * 0.5, -4.0, 0.0);
    assert_eq!(decode_one(DType::Q4_0, &b), want);

    // Q4_1: d = 0.25, m = −1; qs[3] = 0xA2.
    let b = block_with(DType::Q4_1, &[(0, &[0x00, 0x34, 0x00, 0xBC]), (4 + 3, &[0xA2])]);
    let mut want = [-1f32; 32];
    (want[3], want[19]) = (2.0 * 0.25 - 1.0, 10.0 * 0.25 - 1.0);
    assert_eq!(decode_one(DType::Q4_1, &b), want);

    // Q5_0: d = 1; qh bits 0 and 17 (element j's fifth bit is bit j); qs[0] = 0x3F, qs[1] = 0x21.
    let b = block_with(
        DType::Q5_0,
        &[(0, &[0x00, 0x3C]), (2, &0x0002_0001u32.to_le_bytes()), (6, &[0x3F, 0x21])],
    );
    let mut want = [-16f32; 32];
    (want[0], want[16], want[1], want[17]) = (15.0, 3.0 - 16.0, 1.0 - 16.0, 18.0 - 16.0);
    assert_eq!(decode_one(DType::Q5_0, &b), want);

    // Q5_1: d = 0.5, m = 2; qh bit 31; qs[15] = 0xF1.
    let b = block_with(
        DType::Q5_1,
        &[(0, &[0x00, 0x38, 0x00, 0x40]), (4, &0x8000_0000u32.to_le_bytes()), (8 + 15, &[0xF1])],
    );
    let mut want = [2f32; 32];
    (want[15], want[31]) = (0.5 + 2.0, 31.0 * 0.5 + 2.0);
    assert_eq!(decode_one(DType::Q5_1, &b), want);
}

#[test]
fn cpu_codec_known_answer_q4_k() {
    // d = 1, dmin = 0.5. Sub-block 0: scale 1, min 2 (bytes 0 and 4). Sub-block 1: scale 3, min 0.
    // Sub-block 5: scale 37 = 0b10_0101 (low 4 bits in byte 9, top 2 in the spare bits of byte 1),
    // min 25 = 0b01_1001 (low 4 bits in byte 9's high nibble, top 2 in the spare bits of byte 5).
    let scales = [1, 3 | 2 << 6, 0, 0, 2, 1 << 6, 0, 0, 0, 5 | 9 << 4, 0, 0];
    let mut b = block_with(DType::Q4_K, &[(0, &[0x00, 0x3C, 0x00, 0x38]), (4, &scales)]);
    // qs[0] serves elements 0 (low nibble, sub-block 0) and 32 (high, 1); qs[64] elements 128 and 160.
    (b[16], b[16 + 64]) = (0x7A, 0xC0);
    let mut want = [0f32; 256];
    want[..32].fill(-0.5 * 2.0);
    want[0] = 1.0 * 10.0 - 0.5 * 2.0;
    want[32] = 3.0 * 7.0;
    want[160..192].fill(-0.5 * 25.0);
    want[160] = 37.0 * 12.0 - 0.5 * 25.0;
    assert_eq!(decode_one(DType::Q4_K, &b), want);
}

#[test]
fn cpu_codec_known_answer_q5_k() {
    // d = 1, dmin = 1. Sub-block 0: scale 2, min 1; sub-block 3: scale 4, min 3.
    let scales = [2, 0, 0, 4, 1, 0, 0, 3, 0, 0, 0, 0];
    let mut b = block_with(DType::Q5_K, &[(0, &[0x00, 0x3C, 0x00, 0x3C]), (4, &scales)]);
    // Element 0: low nibble of qs[0] = 3, bit 0 of qh[0]. Element 101 (sub-block 3, l = 5): high
    // nibble of qs[32 + 5] = 9, bit 3 of qh[5].
    (b[16], b[16 + 5]) = (0x01, 0x08);
    (b[48], b[48 + 37]) = (0x03, 0x90);
    let mut want = [0f32; 256];
    want[..32].fill(-1.0);
    want[0] = 2.0 * (3.0 + 16.0) - 1.0;
    want[96..128].fill(-3.0);
    want[101] = 4.0 * (9.0 + 16.0) - 3.0;
    assert_eq!(decode_one(DType::Q5_K, &b), want);
}

#[test]
fn cpu_codec_known_answer_q6_k() {
    // d = 0.5 (last two bytes). i8 scales, one per 16 elements: sc[0] = 2, sc[2] = −3, sc[4] = 1,
    // sc[6] = 4, sc[9] = −1, the rest 0.
    let mut b =
        block_with(DType::Q6_K, &[(208, &[0x00, 0x38]), (192, &[2, 0, 0xFD, 0, 1, 0, 4, 0, 0, 0xFF])]);
    // ql[0] = 0x5F: elements 0 (low 15) and 64 (high 5); ql[32] = 0x0A: elements 32 (10) and 96 (0).
    // qh[0] = 0b11_00_10_01 gives those four elements high bits 1, 2, 0, 3 (two bits each).
    // Second half: element 144 = low nibble of ql[64 + 16] = 7 with bits 0–1 of qh[32 + 16] = 2.
    (b[0], b[32], b[128], b[80], b[128 + 48]) = (0x5F, 0x0A, 0xC9, 0x07, 0x02);
    // Everything else has q = 0 − 32, so y = 0.5·sc·(−32) = −16·sc.
    let mut want = [0f32; 256];
    for (range, sc) in [(0..16, 2.0), (32..48, -3.0), (64..80, 1.0), (96..112, 4.0), (144..160, -1.0)] {
        want[range].fill(-16.0 * sc);
    }
    want[0] = 0.5 * 2.0 * (31.0 - 32.0);
    want[32] = 0.5 * -3.0 * (42.0 - 32.0);
    want[64] = 0.5 * 1.0 * (5.0 - 32.0);
    want[96] = 0.5 * 4.0 * (48.0 - 32.0);
    want[144] = -0.5 * (39.0 - 32.0); // d·sc = 0.5·(−1)
    assert_eq!(decode_one(DType::Q6_K, &b), want);
}

#[test]
fn cpu_codec_rejects_bad_input() {
    let e = cpu::dequant::dequantize(DType::Q4_0, &[0; 17], 32).unwrap_err();
    assert!(e.to_string().contains("32 Q4_0 elements take 18 bytes, but 17 bytes were given"), "{e}");
    let e = cpu::dequant::dequantize(DType::Q4_K, &[0; 144], 100).unwrap_err();
    assert!(e.to_string().contains("100 elements are not a whole number of Q4_K blocks"), "{e}");
    let e = cpu::dequant::dequantize(DType::Q8_1, &[0; 36], 32).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("Q8_1"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/// Values in ±1 with a few outliers, and the exact extremes repeated so that values land on the top
/// edge (they must go in the last bin).
fn random_weights(n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
    for i in (0..n).step_by(97) {
        v[i] *= 8.0;
    }
    if n > 4 {
        (v[1], v[n - 2]) = (8.0, 8.0);
    }
    v
}

fn upload_f32(gpu: &Gpu, shape: &[u64], values: &[f32]) -> GpuTensor {
    gpu.upload_tensor("w", shape, DType::F32, bytemuck::cast_slice(values)).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-30
}

#[test]
fn gpu_stats_kernels_match_cpu_twins() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(3);
        for (rows, cols) in [(1usize, 5usize), (7, 96), (13, 768), (300, 33), (2, 4096)] {
            let values = random_weights(rows * cols, &mut rng);
            let t = upload_f32(&gpu, &[rows as u64, cols as u64], &values);
            let m = Matrix { values: &t.buffer, rows: rows as u64, cols: cols as u64 };
            let want = cpu::stats::row_reduce(&values, rows, cols);
            let (lo, hi) = want.iter().fold((f32::MAX, f32::MIN), |(l, h), r| (l.min(r[0]), h.max(r[1])));
            let mean = 0.01f32;
            let want_moments = cpu::stats::row_moments(&values, rows, cols, mean);

            let mut encoder = gpu.encoder();
            let reduced = stats::row_reduce(&gpu, &mut encoder, m).await.unwrap();
            let moments = stats::row_moments(&gpu, &mut encoder, m, mean).await.unwrap();
            let bin_counts = [2048u32, 100, 7, 1];
            let mut counts = Vec::new();
            for bins in bin_counts {
                counts.push(stats::histogram_counts(&gpu, bins).unwrap());
                stats::histogram(&gpu, &mut encoder, m, (lo, hi), counts.last().unwrap(), bins)
                    .await
                    .unwrap();
            }
            gpu.queue.submit([encoder.finish()]);

            let what = format!("{rows}x{cols}");
            let got = stats::read_rows(&gpu, &reduced, rows as u64).await.unwrap();
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g[..3], w[..3], "{what} row {r}: min, max, max|x|");
                // f32 partial sums on the GPU, f64 on the CPU: bounded by the row's Σ|x|.
                let abs_sum: f64 = values[r * cols..(r + 1) * cols].iter().map(|x| x.abs() as f64).sum();
                assert!(
                    ((g[3] - w[3]) as f64).abs() <= 1e-5 * abs_sum,
                    "{what} row {r}: Σx {} vs {}",
                    g[3],
                    w[3]
                );
            }
            let got = stats::read_rows(&gpu, &moments, rows as u64).await.unwrap();
            for (r, (g, w)) in got.iter().zip(&want_moments).enumerate() {
                assert!(close(g[0] as f64, w[0] as f64, 1e-5), "{what} row {r}: m2 {} vs {}", g[0], w[0]);
                assert!(close(g[1] as f64, w[1] as f64, 1e-5), "{what} row {r}: m4 {} vs {}", g[1], w[1]);
            }
            // Both sides compute (x − lo)·scale in f32 with the same scale and nothing to fuse, so
            // every value lands in the same bin, edges included: the counts are equal exactly.
            for (bins, buffer) in bin_counts.into_iter().zip(&counts) {
                let got: Vec<u64> =
                    gpu.read_u32(buffer, 0, bins as u64).await.unwrap().into_iter().map(u64::from).collect();
                assert_eq!(got, cpu::stats::histogram(&values, bins, lo, hi), "{what}: {bins}-bin histogram");
            }
        }
    });
}

/// Two reports of the same values: everything exact except the sums, which are rounded differently.
fn assert_same_report(what: &str, g: &WeightStats, c: &WeightStats) {
    assert_eq!((g.n, g.min, g.max), (c.n, c.min, c.max), "{what}: n, min, max");
    assert!(
        (g.mean - c.mean).abs() <= 1e-6 * (c.std + c.mean.abs()),
        "{what}: mean {} vs {}",
        g.mean,
        c.mean
    );
    assert!(close(g.std, c.std, 1e-5), "{what}: std {} vs {}", g.std, c.std);
    assert!(close(g.kurtosis, c.kurtosis, 1e-4), "{what}: kurtosis {} vs {}", g.kurtosis, c.kurtosis);
    assert_eq!(g.histogram, c.histogram, "{what}: histogram");
    assert_eq!(g.quantiles, c.quantiles, "{what}: quantiles");
    assert_eq!(g.channel_max_abs, c.channel_max_abs, "{what}: channel max|w|");
    assert_eq!(g.top_channels, c.top_channels, "{what}: top channels");
}

#[test]
fn tensor_stats_matches_the_cpu_report() {
    pollster::block_on(async {
        let mut rng = Rng::new(4);
        for (gpu, rows, cols) in [(gpu(), 37usize, 96usize), (small_gpu(), 200, 256)] {
            let values = random_weights(rows * cols, &mut rng);
            let t = upload_f32(&gpu, &[rows as u64, cols as u64], &values);
            let chunks = dequant::chunks(&gpu, &t).unwrap().len();
            // 64 divides 2048 (re-binned on the CPU), 100 does not (a second GPU histogram).
            for bins in [64, 100] {
                let g = tensor_stats(&gpu, &t, bins, 5).await.unwrap();
                let c = cpu_tensor_stats(&values, rows, cols, bins, 5);
                assert_same_report(&format!("{rows}x{cols}, {chunks} chunks, {bins} bins"), &g, &c);
                assert_eq!(
                    (g.name.as_str(), g.dtype.as_str(), g.shape.clone()),
                    ("w", "F32", vec![rows as u64, cols as u64])
                );
                assert_eq!(g.histogram.counts.iter().sum::<u64>(), g.n);
                assert_eq!(g.top_channels.len(), 5);
                assert!(g.top_channels.windows(2).all(|w| w[0].max_abs >= w[1].max_abs));
            }
        }
    });
}

#[test]
fn cpu_report_of_known_values() {
    // 0..8 twice: mean 3.5, variance 5.25, excess kurtosis of a discrete uniform on 8 points −1.2381.
    let values: Vec<f32> = (0..16).map(|i| (i % 8) as f32).collect();
    let s = cpu_tensor_stats(&values, 2, 8, 8, 1);
    assert_eq!((s.n, s.min, s.max, s.mean), (16, 0.0, 7.0, 3.5));
    assert!((s.std - 5.25f64.sqrt()).abs() < 1e-12);
    assert!((s.kurtosis - (-1.238095238095238)).abs() < 1e-9, "{}", s.kurtosis);
    assert_eq!(s.histogram.counts, vec![2; 8]);
    // Half the values are ≤ 3: the median is read as 3, to within one fine bin.
    let median = s.quantiles.iter().find(|q| q.p == 0.5).unwrap().value;
    assert!((median - 3.0).abs() <= 7.0 / 2048.0, "{median}");
    assert_eq!(s.top_channels[0].channel, 0);
}

// ---------------------------------------------------------------------------------------------
// The real model.

#[test]
fn real_model_dequant_and_stats() {
    pollster::block_on(async {
        let path = common::real_model_path();
        let sources = [FileSource::open(&path).unwrap()];
        let header = open_model(&sources).await.unwrap();
        // A 32 MiB binding splits the 113 MB f32 embedding into several chunks.
        let gpu =
            gpu_with(GpuOptions { max_storage_buffer_binding_size: Some(32 << 20), ..Default::default() });
        for (name, dtype) in [("blk.0.attn_q.weight", DType::Q4_1), ("token_embd.weight", DType::Q8_0)] {
            let info = header.tensor(name).unwrap();
            assert_eq!(info.dtype, dtype, "{name}");
            let bytes = read_tensor_bytes(&sources, info).await.unwrap();
            let t = gpu.upload_tensor(name, &info.shape, info.dtype, &bytes).unwrap();
            let chunks = dequant::chunks(&gpu, &t).unwrap().len();

            let start = std::time::Instant::now();
            let got = dequant::dequantize_to_vec(&gpu, &t).await.unwrap();
            let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
            let want = cpu::dequant::dequantize(info.dtype, &bytes, info.n_elements() as usize).unwrap();
            assert_matches_cpu(name, dtype, &bytes, &got, &want);

            let s = tensor_stats(&gpu, &t, 64, 8).await.unwrap();
            assert_eq!(s.n, info.n_elements(), "{name}");
            assert_eq!(s.histogram.counts.iter().sum::<u64>(), s.n, "{name}");
            assert_eq!(s.channel_max_abs.len() as u64, info.rows(), "{name}");
            let (lo, hi) = got.iter().fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            assert_eq!((s.min, s.max), (lo as f64, hi as f64), "{name}");
            eprintln!(
                "{name} {:?} {dtype}: {chunks} chunks, GPU dequant + readback {gpu_ms:.0} ms, tensor_stats {:.0} ms \
                 (mean {:.3e}, std {:.3e}, excess kurtosis {:.2})",
                info.shape, s.ms, s.mean, s.std, s.kurtosis
            );
        }
    });
}
