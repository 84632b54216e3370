//! The forward-pass kernels (matmul in every weight format, norms, RoPE, attention, element-wise
//! passes and column slices, embedding, log-softmax) against their CPU twins on random inputs of
//! awkward shapes.
//! Native runs use lavapipe: `WGPU_BACKEND=vulkan cargo test --release --test forward_kernels`.
//!
//! Tolerances: the twins sum in f64 (exact up to one rounding), the GPU in f32 in another order. A sum
//! of k products in f32 is off by at most about k·u·Σ|terms| (u = 2⁻²⁴, the unit roundoff); the
//! bounds below use ε = 2u = f32::EPSILON, which also covers the twin's final rounding.

mod common;

use common::{assert_close, gpu, random_tensor_bytes, small_gpu, Rng};
use squeeze::cpu;
use squeeze::cpu::rope::RopeMode;
use squeeze::formats::DType;
use squeeze::gpu::{Gpu, GpuTensor};
use squeeze::kernels::{attention, elementwise, embed, logits, matmul, norm, rope};
use std::time::Instant;

const EPS: f32 = f32::EPSILON;

const FORMATS: [DType; 11] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
];

fn random_f32(n: usize, scale: f32, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() * scale).collect()
}

fn upload(gpu: &Gpu, values: &[f32]) -> wgpu::Buffer {
    let buffer =
        gpu.storage_buffer("test input", 4 * values.len() as u64, wgpu::BufferUsages::COPY_DST).unwrap();
    gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(values));
    buffer
}

fn upload_u32(gpu: &Gpu, values: &[u32]) -> wgpu::Buffer {
    let buffer =
        gpu.storage_buffer("test ids", 4 * values.len() as u64, wgpu::BufferUsages::COPY_DST).unwrap();
    gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(values));
    buffer
}

fn output(gpu: &Gpu, n: usize) -> wgpu::Buffer {
    gpu.storage_buffer("test output", 4 * n as u64, wgpu::BufferUsages::empty()).unwrap()
}

/// Submit `enc` and read the first `n` values of `buffer` back.
async fn submit_and_read(gpu: &Gpu, enc: wgpu::CommandEncoder, buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    gpu.queue.submit([enc.finish()]);
    let values = gpu.read_f32(buffer, 0, n as u64).await.unwrap();
    gpu.check().unwrap();
    values
}

// ---------------------------------------------------------------------------------------------
// Matmul

/// Stored bytes of a random (n, k) weight, with finite block scales of about 0.1/8.
fn random_weight(dtype: DType, n: usize, k: usize, rng: &mut Rng) -> Vec<u8> {
    random_tensor_bytes(dtype, (n * k) as u64, 0.1, rng)
}

/// |c| of each element for the formats decoded as a·b + c (Q4_1, Q5_1: q·d + m; Q4_K, Q5_K:
/// (d·sc)·q − dmin·m), zero for the others: the element with its quants zeroed. The GPU may fuse the
/// multiply-add, which changes the element by up to one ulp of |a·b| + |c| ≤ |y| + 2|c|.
fn offsets(dtype: DType, bytes: &[u8], n: usize) -> Vec<f32> {
    let quants = match dtype {
        DType::Q4_1 => 4..20,
        DType::Q5_1 => 4..24,
        DType::Q4_K => 16..144,
        DType::Q5_K => 16..176,
        _ => return vec![0.0; n],
    };
    let mut zeroed = bytes.to_vec();
    for block in zeroed.chunks_mut(dtype.block_bytes() as usize) {
        block[quants.clone()].fill(0);
    }
    cpu::dequant::dequantize(dtype, &zeroed, n).unwrap().iter().map(|c| c.abs()).collect()
}

struct MatmulCase {
    dtype: DType,
    t: usize,
    n: usize,
    k: usize,
    bias: bool,
}

/// GPU matmul of a random weight as stored against cpu::dequant + cpu::matmul. Returns how many
/// weight row chunks the GPU needed.
async fn check_matmul(gpu: &Gpu, c: MatmulCase, rng: &mut Rng) -> usize {
    let MatmulCase { dtype, t, n, k, bias } = c;
    let bytes = random_weight(dtype, n, k, rng);
    let w = gpu.upload_tensor("w", &[n as u64, k as u64], dtype, &bytes).unwrap();
    let w_f32 = cpu::dequant::dequantize(dtype, &bytes, n * k).unwrap();
    let x = random_f32(t * k, 1.0, rng);
    let b = bias.then(|| random_f32(n, 0.5, rng));
    let want = cpu::matmul::matmul(&x, t, k, &w_f32, n, b.as_deref());

    let (x_buf, out) = (upload(gpu, &x), output(gpu, t * n));
    let b_buf = b.as_ref().map(|b| upload(gpu, b));
    let mut enc = gpu.encoder();
    matmul::matmul(gpu, &mut enc, &x_buf, &w, b_buf.as_ref(), &out, t as u32).await.unwrap();
    let got = submit_and_read(gpu, enc, &out, t * n).await;

    // Σ_c |x||w| with |w| widened by the fused-decode slack 2|c| (see `offsets`): the f32 sum of k
    // products is within (k + 2)·u of it, the decode within u of each term, the bias add within u·|b|.
    let c_abs = offsets(dtype, &bytes, n * k);
    let magnitude: Vec<f32> = (0..t * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            let s: f64 = (0..k)
                .map(|c| (x[i * k + c].abs() * (w_f32[j * k + c].abs() + 2.0 * c_abs[j * k + c])) as f64)
                .sum();
            s as f32 + b.as_ref().map_or(0.0, |b| b[j].abs())
        })
        .collect();
    let what = format!("{dtype} matmul t={t} n={n} k={k} bias={bias}");
    assert_close(&what, &got, &want, |i| (k as f32 + 2.0) * EPS * magnitude[i] + f32::MIN_POSITIVE);
    let limits = gpu.limits();
    squeeze::gpu::row_chunks(
        "w",
        n as u64,
        w.row_bytes(),
        limits.min_storage_buffer_offset_alignment as u64,
        limits.max_storage_buffer_binding_size,
    )
    .unwrap()
    .len()
}

/// Row lengths: not a multiple of 4 (nor of any tile) for the scalar formats, whole blocks otherwise.
fn lengths(dtype: DType) -> &'static [usize] {
    match dtype.block_size() {
        1 => &[67, 100],
        32 => &[96, 64],
        _ => &[256, 512],
    }
}

#[test]
fn matmul_matches_cpu_for_every_format_and_shape() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(11);
        for dtype in FORMATS {
            let ks = lengths(dtype);
            for (i, t) in [1, 3, 17, 64].into_iter().enumerate() {
                for (j, n) in [1, 5, 97].into_iter().enumerate() {
                    let case = MatmulCase { dtype, t, n, k: ks[(i + j) % 2], bias: (i + j) % 3 == 1 };
                    check_matmul(&gpu, case, &mut rng).await;
                }
            }
            for t in [1, 17] {
                check_matmul(&gpu, MatmulCase { dtype, t, n: 1536, k: ks[0], bias: t == 1 }, &mut rng).await;
            }
        }
    });
}

#[test]
fn matmul_in_weight_and_token_windows() {
    pollster::block_on(async {
        let gpu = small_gpu();
        let mut rng = Rng::new(12);
        for dtype in FORMATS {
            let k = lengths(dtype)[0];
            // (n, k) weights of 48 KiB to 1 MiB: several row chunks, most starting off the 256-byte
            // binding alignment.
            for t in [1, 17] {
                let chunks =
                    check_matmul(&gpu, MatmulCase { dtype, t, n: 1536, k, bias: true }, &mut rng).await;
                assert!(chunks >= 2, "{dtype}: {chunks} weight chunks");
            }
        }
        // out (64, 997) is 249 KiB: each tile of 8 tokens writes its own window of out, starting off the
        // 256-byte alignment.
        check_matmul(&gpu, MatmulCase { dtype: DType::Q8_0, t: 64, n: 997, k: 96, bias: true }, &mut rng)
            .await;
        check_matmul(&gpu, MatmulCase { dtype: DType::F16, t: 64, n: 997, k: 67, bias: false }, &mut rng)
            .await;
    });
}

#[test]
fn kernels_refuse_what_they_cannot_do() {
    pollster::block_on(async {
        let gpu = gpu();
        let x = output(&gpu, 20_000);
        let out = output(&gpu, 4);
        let mut enc = gpu.encoder();
        // One token's x (k = 20000 values) does not fit the 64 KiB uniform window.
        let w =
            gpu.upload_tensor("blk.0.ffn_down.weight", &[1, 20_000], DType::F32, &vec![0; 80_000]).unwrap();
        let e = matmul::matmul(&gpu, &mut enc, &x, &w, None, &out, 1).await.unwrap_err();
        assert!(e.to_string().contains("rows of 20000 elements"), "{e}");
        // x (2, 64) needs 128 values; this out holds 4, not 2 × 5.
        let w = gpu.upload_tensor("w", &[5, 64], DType::F32, &[0; 5 * 64 * 4]).unwrap();
        let e = matmul::matmul(&gpu, &mut enc, &x, &w, None, &out, 2).await.unwrap_err();
        assert!(e.to_string().contains("out needs 10 f32 values"), "{e}");
        let e = attention::attention(&gpu, &mut enc, &x, &x, &x, &x, 1, 9, 2, 64, 0, 1.0).await.unwrap_err();
        assert!(e.to_string().contains("9 heads, 2 kv heads"), "{e}");
        let e = attention::attention(&gpu, &mut enc, &x, &x, &x, &x, 1, 4, 4, 30, 0, 1.0).await.unwrap_err();
        assert!(e.to_string().contains("dimension 30"), "{e}");
        let table =
            gpu.upload_tensor("position_embd.weight", &[16, 4], DType::F32, &[0; 16 * 4 * 4]).unwrap();
        let e = elementwise::add_positions(&gpu, &mut enc, &x, &table, 14, 3, 4).await.unwrap_err();
        assert!(e.to_string().contains("positions 14..17 of position_embd.weight"), "{e}");
        let e = elementwise::columns(&gpu, &mut enc, &x, 8, 6..10, &out, 1).await.unwrap_err();
        assert!(e.to_string().contains("columns 6..10 of rows of 8"), "{e}");
        let q2 = gpu.upload_tensor("q2", &[1, 256], DType::Q2_K, &[0; 84]).unwrap();
        let e = embed::embed(&gpu, &mut enc, &q2, &x, &out, 1).await.unwrap_err();
        assert!(e.to_string().contains("Q2_K"), "{e}");
    });
}

/// Times for the SmolLM2-135M shapes (576 → 1536 and 1536 → 576 in Q4_1, the 49152 × 576 Q8_0 head)
/// at 1 and 512 tokens. `cargo test --release --test forward_kernels -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_timings_on_smollm2_shapes() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(13);
        for (dtype, n, k) in [(DType::Q4_1, 1536, 576), (DType::Q4_1, 576, 1536), (DType::Q8_0, 49152, 576)] {
            let bytes = random_weight(dtype, n, k, &mut rng);
            let w = gpu.upload_tensor("w", &[n as u64, k as u64], dtype, &bytes).unwrap();
            for t in [1, 512] {
                let x = upload(&gpu, &random_f32(t * k, 1.0, &mut rng));
                let out = output(&gpu, t * n);
                let mut times = Vec::new();
                for _ in 0..7 {
                    let mut enc = gpu.encoder();
                    matmul::matmul(&gpu, &mut enc, &x, &w, None, &out, t as u32).await.unwrap();
                    gpu.finish().await.unwrap();
                    let start = Instant::now();
                    gpu.queue.submit([enc.finish()]);
                    gpu.finish().await.unwrap();
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
                // The best of 7: lavapipe shares two cores with everything else on the machine.
                let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
                let gflops = 2.0 * (t * n * k) as f64 / best / 1e6;
                println!("{dtype} ({n}, {k}) t={t}: best {best:.2} ms ({gflops:.1} GFLOP/s)");
            }
        }
    });
}

/// Best-of-5 wall time of what `record` puts in one encoder.
async fn best_ms<'a, F, Fut>(gpu: &'a Gpu, mut record: F) -> f64
where
    F: FnMut(wgpu::CommandEncoder) -> Fut,
    Fut: std::future::Future<Output = wgpu::CommandEncoder> + 'a,
{
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let enc = record(gpu.encoder()).await;
        gpu.finish().await.unwrap();
        let start = Instant::now();
        gpu.queue.submit([enc.finish()]);
        gpu.finish().await.unwrap();
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    best
}

/// Times of the other kernels at SmolLM2-135M shapes (d 576, 9 heads, 3 kv heads of 64, vocab 49152).
#[test]
#[ignore]
fn other_kernel_timings_on_smollm2_shapes() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(14);
        let (d, heads, kv, hd, vocab) = (576usize, 9usize, 3usize, 64usize, 49152usize);
        let norm_w = f32_vector(&gpu, &random_f32(d, 1.0, &mut rng));
        let table_bytes = random_weight(DType::Q8_0, vocab, d, &mut rng);
        let table = gpu
            .upload_tensor("token_embd.weight", &[vocab as u64, d as u64], DType::Q8_0, &table_bytes)
            .unwrap();
        for (t, pos0) in [(1usize, 511usize), (512, 0)] {
            let x = upload(&gpu, &random_f32(t * d, 1.0, &mut rng));
            let h = output(&gpu, t * d);
            let q = upload(&gpu, &random_f32(t * heads * hd, 1.0, &mut rng));
            let cache = upload(&gpu, &random_f32((pos0 + t) * kv * hd, 1.0, &mut rng));
            let a = output(&gpu, t * heads * hd);
            let logit_values = upload(&gpu, &random_f32(t * vocab, 10.0, &mut rng));
            let ids = upload_u32(&gpu, &(0..t as u32).map(|i| i * 7 % vocab as u32).collect::<Vec<_>>());
            let nll = output(&gpu, t);
            let (t32, p32) = (t as u32, pos0 as u32);
            let ms = [
                (
                    "embed",
                    best_ms(&gpu, |mut e| async {
                        embed::embed(&gpu, &mut e, &table, &ids, &h, t32).await.unwrap();
                        e
                    })
                    .await,
                ),
                (
                    "rms_norm",
                    best_ms(&gpu, |mut e| async {
                        norm::rms_norm(&gpu, &mut e, &x, &norm_w, &h, t32, d as u32, 1e-5).await.unwrap();
                        e
                    })
                    .await,
                ),
                (
                    "rope",
                    best_ms(&gpu, |mut e| async {
                        rope::rope(
                            &gpu,
                            &mut e,
                            &q,
                            t32,
                            heads as u32,
                            hd as u32,
                            p32,
                            1e4,
                            RopeMode::Normal,
                        )
                        .await
                        .unwrap();
                        e
                    })
                    .await,
                ),
                (
                    "attention",
                    best_ms(&gpu, |mut e| async {
                        attention::attention(
                            &gpu,
                            &mut e,
                            &q,
                            &cache,
                            &cache,
                            &a,
                            t32,
                            heads as u32,
                            kv as u32,
                            hd as u32,
                            p32,
                            0.125,
                        )
                        .await
                        .unwrap();
                        e
                    })
                    .await,
                ),
                (
                    "add",
                    best_ms(&gpu, |mut e| async {
                        elementwise::add_in_place(&gpu, &mut e, &h, &x, (t * d) as u32).await.unwrap();
                        e
                    })
                    .await,
                ),
                (
                    "swiglu",
                    best_ms(&gpu, |mut e| async {
                        elementwise::swiglu(&gpu, &mut e, &x, &x, &h, (t * d) as u32).await.unwrap();
                        e
                    })
                    .await,
                ),
                (
                    "token_nll",
                    best_ms(&gpu, |mut e| async {
                        logits::token_nll(&gpu, &mut e, &logit_values, &ids, &nll, t32, vocab as u32)
                            .await
                            .unwrap();
                        e
                    })
                    .await,
                ),
            ];
            let line: Vec<String> = ms.iter().map(|(name, ms)| format!("{name} {ms:.2} ms")).collect();
            println!("t={t} pos0={pos0}: {}", line.join(", "));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Norms

fn f32_vector(gpu: &Gpu, values: &[f32]) -> GpuTensor {
    gpu.upload_tensor("vector", &[values.len() as u64], DType::F32, bytemuck::cast_slice(values)).unwrap()
}

fn scalar_tensor(gpu: &Gpu, name: &str, dtype: DType, values: &[f32]) -> (GpuTensor, Vec<f32>) {
    let bytes: Vec<u8> = match dtype {
        DType::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        DType::BF16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    let decoded = cpu::dequant::dequantize(dtype, &bytes, values.len()).unwrap();
    (gpu.upload_tensor(name, &[values.len() as u64], dtype, &bytes).unwrap(), decoded)
}

#[test]
fn norms_match_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(21);
        for (rows, cols, dtype) in [
            (1, 576, DType::F32),
            (3, 67, DType::F16),
            (17, 1, DType::BF16),
            (64, 768, DType::F32),
            (5, 129, DType::F16),
        ] {
            let x = random_f32(rows * cols, 2.0, &mut rng);
            let w_values: Vec<f32> = random_f32(cols, 0.5, &mut rng).iter().map(|v| v + 1.0).collect();
            let (w, w_dec) = scalar_tensor(&gpu, "norm.weight", dtype, &w_values);
            let (b, b_dec) = scalar_tensor(&gpu, "norm.bias", dtype, &random_f32(cols, 0.5, &mut rng));
            let eps = 1e-5;
            let x_buf = upload(&gpu, &x);
            let out = output(&gpu, rows * cols);

            let mut enc = gpu.encoder();
            norm::rms_norm(&gpu, &mut enc, &x_buf, &w, &out, rows as u32, cols as u32, eps).await.unwrap();
            let got = submit_and_read(&gpu, enc, &out, rows * cols).await;
            let want = cpu::norm::rms_norm(&x, rows, cols, &w_dec, eps);
            // mean(x²) is a sum of cols positive terms (relative error ≤ cols·u); 1/sqrt halves it and
            // adds an ulp or two, the two products another two.
            assert_close(&format!("rms_norm {rows}x{cols} {dtype}"), &got, &want, |i| {
                (cols as f32 + 8.0) * EPS * want[i].abs() + f32::MIN_POSITIVE
            });

            let mut enc = gpu.encoder();
            norm::layer_norm(&gpu, &mut enc, &x_buf, &w, &b, &out, rows as u32, cols as u32, eps)
                .await
                .unwrap();
            let got = submit_and_read(&gpu, enc, &out, rows * cols).await;
            let want = cpu::norm::layer_norm(&x, rows, cols, &w_dec, &b_dec, eps);
            // The mean is off by δ ≤ cols·u·mean|x|, which shifts every x − mean by δ: an absolute
            // error of δ·|w|/σ. The variance's relative error (as for rms_norm) scales |y − b|; the
            // bias add rounds once more.
            let row_stats: Vec<(f32, f32)> = x
                .chunks(cols)
                .map(|row| {
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
                    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
                    let mean_abs = row.iter().map(|v| v.abs() as f64).sum::<f64>() / cols as f64;
                    (mean_abs as f32, (var + eps as f64).sqrt() as f32)
                })
                .collect();
            assert_close(&format!("layer_norm {rows}x{cols} {dtype}"), &got, &want, |i| {
                let ((mean_abs, sigma), c) = (row_stats[i / cols], i % cols);
                let shift = cols as f32 * mean_abs * w_dec[c].abs() / sigma;
                let scaled = (cols as f32 / 2.0 + 8.0) * (want[i] - b_dec[c]).abs();
                EPS * (shift + scaled + b_dec[c].abs() + want[i].abs()) + f32::MIN_POSITIVE
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// RoPE

#[test]
fn rope_matches_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(31);
        for (t, heads, head_dim, pos0, mode) in [
            (1, 9, 64, 0, RopeMode::Normal),
            (3, 3, 64, 37, RopeMode::Neox),
            (17, 4, 32, 0, RopeMode::Neox),
            (64, 1, 32, 37, RopeMode::Normal),
            (5, 2, 128, 8000, RopeMode::Neox),
            (2, 2, 64, 5000, RopeMode::Normal),
        ] {
            let n = t * heads * head_dim;
            let x = random_f32(n, 1.0, &mut rng);
            let mut want = x.clone();
            cpu::rope::rope(&mut want, t, heads, head_dim, pos0, 10000.0, mode);
            let buf = upload(&gpu, &x);
            let mut enc = gpu.encoder();
            rope::rope(
                &gpu,
                &mut enc,
                &buf,
                t as u32,
                heads as u32,
                head_dim as u32,
                pos0 as u32,
                10000.0,
                mode,
            )
            .await
            .unwrap();
            let got = submit_and_read(&gpu, enc, &buf, n).await;
            // Both sides take the same f32 angle (the same products); the GPU reduces it to [−π, π]
            // exactly up to ~u·π, then its cos and sin are accurate to about 1e-6 on lavapipe and
            // SwiftShader (Vulkan itself promises only 2⁻¹¹ there). A wrong pairing, angle or mode
            // errs by O(|x|).
            let partner = |i: usize| {
                let (base, p) = (i / head_dim * head_dim, i % head_dim);
                let j = match mode {
                    RopeMode::Normal => p ^ 1,
                    RopeMode::Neox => (p + head_dim / 2) % head_dim,
                };
                x[base + j].abs()
            };
            assert_close(
                &format!("rope t={t} heads={heads} d={head_dim} pos0={pos0} {mode:?}"),
                &got,
                &want,
                |i| 4e-6 * (x[i].abs() + partner(i)) + f32::MIN_POSITIVE,
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Attention

struct AttentionCase {
    t: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    pos0: usize,
}

async fn check_attention(gpu: &Gpu, c: AttentionCase, rng: &mut Rng) {
    let AttentionCase { t, heads, kv_heads, head_dim: d, pos0 } = c;
    // The cache holds a few rows past the last position, which must be ignored.
    let max_seq = pos0 + t + 3;
    let q = random_f32(t * heads * d, 1.0, rng);
    let k = random_f32(max_seq * kv_heads * d, 1.0, rng);
    let v = random_f32(max_seq * kv_heads * d, 1.0, rng);
    let scale = 1.0 / (d as f32).sqrt();
    let want = cpu::attention::attention(&q, &k, &v, t, heads, kv_heads, d, pos0, scale);
    let (q_buf, k_buf, v_buf, out) =
        (upload(gpu, &q), upload(gpu, &k), upload(gpu, &v), output(gpu, q.len()));
    let mut enc = gpu.encoder();
    let (t32, h32, kv32, d32, p32) = (t as u32, heads as u32, kv_heads as u32, d as u32, pos0 as u32);
    attention::attention(gpu, &mut enc, &q_buf, &k_buf, &v_buf, &out, t32, h32, kv32, d32, p32, scale)
        .await
        .unwrap();
    let got = submit_and_read(gpu, enc, &out, q.len()).await;

    // Each score is a d-term f32 dot product, off by ≤ d·u·Σ|q||k|·scale = δ; softmax weights then move
    // by a factor within e^{±2δ}, and by the exp's own error (Vulkan: ≤ 3 + 2|x| ulp, |x| ≲ 20 here,
    // so 64 ulp). The output, a convex combination of the values, moves by that relative amount of
    // max|v|, plus the rounding of a kv_len-term sum.
    let tolerance = |i: usize| {
        let (token, head, c) = (i / (heads * d), i / d % heads, i % d);
        let kv_len = pos0 + token + 1;
        let kv_head = head / (heads / kv_heads);
        let qh = &q[(token * heads + head) * d..][..d];
        let row = |j: usize| (j * kv_heads + kv_head) * d;
        let delta = (0..kv_len)
            .map(|j| qh.iter().zip(&k[row(j)..][..d]).map(|(a, b)| (a * b).abs()).sum::<f32>())
            .fold(0.0, f32::max)
            * scale
            * d as f32
            * EPS;
        let v_max = (0..kv_len).map(|j| v[row(j) + c].abs()).fold(0.0, f32::max);
        (4.0 * delta + (128.0 + kv_len as f32) * EPS) * v_max + f32::MIN_POSITIVE
    };
    assert_close(
        &format!("attention t={t} heads={heads}/{kv_heads} d={d} pos0={pos0}"),
        &got,
        &want,
        tolerance,
    );
}

#[test]
fn attention_matches_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(41);
        let cases = [
            // kv length 1: the first token alone.
            (1, 9, 3, 64, 0),
            (3, 4, 4, 32, 0),
            (17, 8, 1, 64, 37),
            (64, 9, 3, 64, 0),
            (64, 4, 4, 32, 37),
            // kv lengths 301 to 317, several tiles with a partial last one.
            (17, 9, 3, 64, 300),
            (1, 8, 1, 32, 310),
            // 8192 positions.
            (2, 4, 1, 64, 8190),
        ];
        for (t, heads, kv_heads, head_dim, pos0) in cases {
            check_attention(&gpu, AttentionCase { t, heads, kv_heads, head_dim, pos0 }, &mut rng).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Element-wise passes

#[test]
fn elementwise_passes_match_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(51);
        for n in [1, 5, 1000, 70_001] {
            let a = random_f32(n, 4.0, &mut rng);
            let b = random_f32(n, 4.0, &mut rng);

            let a_buf = upload(&gpu, &a);
            let b_buf = upload(&gpu, &b);
            let mut enc = gpu.encoder();
            elementwise::add_in_place(&gpu, &mut enc, &a_buf, &b_buf, n as u32).await.unwrap();
            let got = submit_and_read(&gpu, enc, &a_buf, n).await;
            let mut want = a.clone();
            cpu::elementwise::add_in_place(&mut want, &b);
            // One f32 addition on both sides: identical.
            assert_close(&format!("add n={n}"), &got, &want, |_| f32::MIN_POSITIVE);

            let out = output(&gpu, n);
            let mut enc = gpu.encoder();
            elementwise::swiglu(&gpu, &mut enc, &upload(&gpu, &a), &b_buf, &out, n as u32).await.unwrap();
            let got = submit_and_read(&gpu, enc, &out, n).await;
            let want = cpu::elementwise::swiglu(&a, &b);
            // exp(−g) is within 3 + 2|g| ulp (Vulkan's bound); the add, divide and product add a few.
            assert_close(&format!("swiglu n={n}"), &got, &want, |i| {
                (8.0 + 2.0 * a[i].abs()) * EPS * want[i].abs() + f32::MIN_POSITIVE
            });

            let x_buf = upload(&gpu, &a);
            let mut enc = gpu.encoder();
            elementwise::gelu(&gpu, &mut enc, &x_buf, n as u32).await.unwrap();
            let got = submit_and_read(&gpu, enc, &x_buf, n).await;
            let mut want = a.clone();
            cpu::elementwise::gelu(&mut want);
            // Drivers build tanh from exp: its absolute error is a few ulp of 1 (the largest |tanh|),
            // which 0.5·|x| scales; the polynomial inside adds a few ulp relative.
            assert_close(&format!("gelu n={n}"), &got, &want, |i| {
                8.0 * EPS * (0.5 * a[i].abs() + want[i].abs()) + f32::MIN_POSITIVE
            });
        }
    });
}

#[test]
fn columns_match_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(52);
        // (tokens, stride, columns): GPT-2's q, k and v thirds, odd widths, a whole row.
        for (t, stride, cols) in
            [(1, 768, 0..256), (5, 768, 256..512), (17, 768, 512..768), (3, 13, 4..9), (2, 7, 0..7)]
        {
            let x = random_f32(t * stride, 4.0, &mut rng);
            let out = output(&gpu, t * cols.len());
            let mut enc = gpu.encoder();
            let cols32 = cols.start as u32..cols.end as u32;
            elementwise::columns(&gpu, &mut enc, &upload(&gpu, &x), stride as u32, cols32, &out, t as u32)
                .await
                .unwrap();
            let got = submit_and_read(&gpu, enc, &out, t * cols.len()).await;
            let want = cpu::elementwise::columns(&x, t, stride, cols.clone());
            // A copy: identical.
            assert_eq!(got, want, "columns {cols:?} of {t} rows of {stride}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Embedding and learned positions

/// GPU rows against cpu::dequant rows: equal up to the fused multiply-add of the a·b + c formats.
fn decoded_tolerance(dtype: DType, bytes: &[u8], values: &[f32]) -> Vec<f32> {
    let c = offsets(dtype, bytes, values.len());
    values.iter().zip(c).map(|(v, c)| EPS * (v.abs() + 2.0 * c) + f32::MIN_POSITIVE).collect()
}

async fn check_embed(gpu: &Gpu, dtype: DType, vocab: usize, d: usize, rng: &mut Rng) {
    let bytes = random_weight(dtype, vocab, d, rng);
    let table = gpu.upload_tensor("token_embd.weight", &[vocab as u64, d as u64], dtype, &bytes).unwrap();
    let table_f32 = cpu::dequant::dequantize(dtype, &bytes, vocab * d).unwrap();
    let tol = decoded_tolerance(dtype, &bytes, &table_f32);
    for t in [1, 3, 17] {
        let ids: Vec<u32> = (0..t).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
        let out = output(gpu, t * d);
        let mut enc = gpu.encoder();
        embed::embed(gpu, &mut enc, &table, &upload_u32(gpu, &ids), &out, t as u32).await.unwrap();
        let got = submit_and_read(gpu, enc, &out, t * d).await;
        let want = cpu::embed::embed(&table_f32, d, &ids);
        assert_close(&format!("embed {dtype} ({vocab}, {d}) t={t}"), &got, &want, |i| {
            tol[ids[i / d] as usize * d + i % d]
        });
    }

    let (t, pos0) = (5, vocab - 7);
    let x = random_f32(t * d, 1.0, rng);
    let x_buf = upload(gpu, &x);
    let mut enc = gpu.encoder();
    elementwise::add_positions(gpu, &mut enc, &x_buf, &table, pos0 as u32, t as u32, d as u32).await.unwrap();
    let got = submit_and_read(gpu, enc, &x_buf, t * d).await;
    let mut want = x.clone();
    cpu::elementwise::add_positions(&mut want, &table_f32, pos0, t, d);
    // The decoded row's tolerance, plus one rounding of the sum.
    assert_close(&format!("add_positions {dtype} ({vocab}, {d})"), &got, &want, |i| {
        tol[(pos0 + i / d) * d + i % d] + EPS * want[i].abs()
    });
}

#[test]
fn embed_and_positions_match_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(61);
        for dtype in FORMATS {
            check_embed(&gpu, dtype, 300, lengths(dtype)[0], &mut rng).await;
        }
    });
}

#[test]
fn embed_and_positions_in_table_windows() {
    pollster::block_on(async {
        // Tables of 80 KiB to 310 KiB through 64 KiB bindings.
        let gpu = small_gpu();
        let mut rng = Rng::new(62);
        for dtype in [DType::F32, DType::F16, DType::Q8_0, DType::Q4_1, DType::Q6_K] {
            check_embed(&gpu, dtype, 1200, lengths(dtype)[0], &mut rng).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Log-softmax

#[test]
fn token_nll_and_log_softmax_match_cpu() {
    pollster::block_on(async {
        for (gpu, cases) in [(gpu(), &[(1, 5), (3, 300), (17, 49152)][..]), (small_gpu(), &[(9, 5000)][..])] {
            let mut rng = Rng::new(71);
            for &(t, vocab) in cases {
                let x = random_f32(t * vocab, 10.0, &mut rng);
                let targets: Vec<u32> = (0..t).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
                let x_buf = upload(&gpu, &x);
                let nll = output(&gpu, t);
                let mut enc = gpu.encoder();
                let (t32, v32) = (t as u32, vocab as u32);
                logits::token_nll(&gpu, &mut enc, &x_buf, &upload_u32(&gpu, &targets), &nll, t32, v32)
                    .await
                    .unwrap();
                let got = submit_and_read(&gpu, enc, &nll, t).await;
                let want = cpu::logits::token_nll(&x, t, vocab, &targets);
                // log Σ exp: the running sums of vocab/64 terms and the merge tree are relative errors
                // of ~(vocab/64 + 8)·u, each exp(x − m) is within 3 + 2|x − m| ulp (|x − m| ≤ 20), and
                // log turns the sum's relative error into an absolute one; the final subtraction rounds
                // relative to |lse| + |x_target| ≤ 30.
                let lse_error = (vocab as f32 / 64.0 + 64.0) * EPS;
                assert_close(&format!("token_nll t={t} vocab={vocab}"), &got, &want, |_| {
                    lse_error + 60.0 * EPS
                });

                let out = output(&gpu, t * vocab);
                let mut enc = gpu.encoder();
                logits::log_softmax_rows(&gpu, &mut enc, &x_buf, &out, t32, v32).await.unwrap();
                let got = submit_and_read(&gpu, enc, &out, t * vocab).await;
                let want = cpu::logits::log_softmax_rows(&x, t, vocab);
                assert_close(&format!("log_softmax_rows t={t} vocab={vocab}"), &got, &want, |_| {
                    lse_error + 60.0 * EPS
                });
            }
        }
    });
}
