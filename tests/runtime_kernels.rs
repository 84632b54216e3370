//! The run-time kernels of compressed linears against their CPU twins: per-token activation
//! quantisation (W8A8, LLM.int8() with its outlier feature columns) and the sparse 16-bit corrections of
//! SpQR / OWQ, on random inputs of awkward shapes and on answers worked out by hand.
//! Native runs use lavapipe: `WGPU_BACKEND=vulkan cargo test --release --test runtime_kernels`.

mod common;

use common::{gpu, random_tensor_bytes, Rng};
use squeeze::cpu;
use squeeze::formats::DType;
use squeeze::gpu::Gpu;
use squeeze::kernels::actquant::{outlier_columns, quantize_activations};
use squeeze::kernels::matmul;
use squeeze::kernels::sparse::{add_sparse, SparseRows};
use std::time::Instant;

const EPS: f32 = f32::EPSILON;
/// LLM.int8()'s outlier threshold.
const THRESHOLD: f32 = 6.0;

fn random_f32(n: usize, scale: f32, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() * scale).collect()
}

fn upload(gpu: &Gpu, values: &[f32]) -> wgpu::Buffer {
    let buffer =
        gpu.storage_buffer("test input", 4 * values.len() as u64, wgpu::BufferUsages::COPY_DST).unwrap();
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
// Activation quantisation

/// GPU quantisation of x (t, k) and, with a threshold, its outlier flags.
async fn gpu_quantize(
    gpu: &Gpu,
    x: &[f32],
    t: usize,
    k: usize,
    bits: u32,
    threshold: Option<f32>,
) -> (Vec<f32>, Option<Vec<usize>>) {
    let (x_buf, out) = (upload(gpu, x), output(gpu, t * k));
    let mut enc = gpu.encoder();
    quantize_activations(gpu, &mut enc, &x_buf, &out, t as u32, k as u32, bits, threshold).await.unwrap();
    let flags = match threshold {
        Some(th) => Some(outlier_columns(gpu, &mut enc, &x_buf, t as u32, k as u32, th).await.unwrap()),
        None => None,
    };
    let quantised = submit_and_read(gpu, enc, &out, t * k).await;
    let columns = match flags {
        Some(f) => {
            let f = gpu.read_u32(&f, 0, k as u64).await.unwrap();
            Some((0..k).filter(|&c| f[c] != 0).collect())
        }
        None => None,
    };
    (quantised, columns)
}

/// Activations of about the size LLM.int8() sees in its inliers (|x| < 3), with outlier features
/// planted in one token only: a column at 6.0 exactly (an outlier: |x| ≥ threshold), others beyond
/// it, one just below (5.99, not an outlier), one in the last token (past the GPU's first span of 64
/// tokens when t > 64); token 1 is all zero (but for what lands there) when t > 2.
fn activations_with_outliers(t: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = random_f32(t * k, 3.0, rng);
    if t > 2 {
        x[k..2 * k].fill(0.0);
    }
    let token = |rng: &mut Rng| (rng.next_u64() % t as u64) as usize;
    let column = |rng: &mut Rng| (rng.next_u64() % k as u64) as usize;
    for v in [6.0, -5.99, -9.5, 40.0] {
        let (i, c) = (token(rng), column(rng));
        x[i * k + c] = v;
    }
    let c = column(rng);
    x[(t - 1) * k + c] = -7.25;
    x
}

/// Checks one quantised token row `got` of `x`: the outlier columns copied exactly, the others on the
/// grid of step s = max|x| / q_max over the row's inliers, at most 2·q_max + 1 distinct values, each
/// within half a step of x. Returns the step.
fn check_on_grid(what: &str, x: &[f32], got: &[f32], outliers: &[usize], q_max: f32) -> f32 {
    let inliers: Vec<usize> = (0..x.len()).filter(|c| !outliers.contains(c)).collect();
    let step = inliers.iter().map(|&c| x[c].abs()).fold(0f32, f32::max) / q_max;
    for &c in outliers {
        assert_eq!(got[c].to_bits(), x[c].to_bits(), "{what}: outlier column {c} changed");
    }
    let mut levels = std::collections::BTreeSet::new();
    for &c in &inliers {
        let level = if step == 0.0 { 0.0 } else { got[c] / step };
        assert!(
            (level - level.round()).abs() < 1e-3 && level.round().abs() <= q_max,
            "{what}: column {c}: {} is {level} steps of {step}",
            got[c]
        );
        assert!((got[c] - x[c]).abs() <= 0.5001 * step, "{what}: column {c}: {} from {}", got[c], x[c]);
        levels.insert(level.round() as i32);
    }
    assert!(levels.len() as f32 <= 2.0 * q_max + 1.0, "{what}: {} distinct levels", levels.len());
    step
}

#[test]
fn activation_quantisation_matches_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(21);
        let (mut elements, mut differing) = (0, 0);
        for t in [1, 4, 37, 100] {
            for k in [7, 96, 576, 1536] {
                for (bits, threshold) in [(8, Some(THRESHOLD)), (8, None), (4, Some(THRESHOLD))] {
                    let what = format!("t={t} k={k} bits={bits} threshold={threshold:?}");
                    let x = activations_with_outliers(t, k, &mut rng);
                    let want = cpu::actquant::quantize_activations(&x, t, k, bits, threshold);
                    let (got, gpu_outliers) = gpu_quantize(&gpu, &x, t, k, bits, threshold).await;
                    let outliers =
                        threshold.map_or(vec![], |th| cpu::actquant::outlier_columns(&x, t, k, th));
                    assert_eq!(gpu_outliers, threshold.map(|_| outliers.clone()), "{what}: outlier columns");
                    if threshold.is_some() {
                        assert!(!outliers.is_empty(), "{what}: planted outliers were found");
                    }
                    let q_max = cpu::actquant::max_level(bits);
                    for i in 0..t {
                        let row = i * k..(i + 1) * k;
                        let what = format!("{what} token {i}");
                        let step = check_on_grid(&what, &x[row.clone()], &got[row.clone()], &outliers, q_max);
                        check_on_grid(&what, &x[row.clone()], &want[row.clone()], &outliers, q_max);
                        // x / s may round differently where it lands on a half step: one step apart at most.
                        for c in row {
                            assert!((got[c] - want[c]).abs() <= 1.0001 * step, "{what}: column {c}");
                            differing += (got[c] != want[c]) as usize;
                        }
                    }
                    elements += t * k;
                }
            }
        }
        println!("{differing} of {elements} quantised activations differ by one step from the CPU's");
        assert!(differing * 1000 <= elements, "{differing} of {elements} differ from the CPU's");
    });
}

#[test]
fn activation_quantisation_known_answers() {
    pollster::block_on(async {
        let gpu = gpu();
        // 4-bit levels ±7. Token 0: column 3 (7.0) is an outlier at threshold 6, so s = 3.5/7 = 0.5:
        // 1.2 → 2.4 steps → 1.0; −3.5 → −7 → −3.5; 0.25 → 0.5 → 0 (ties to even). Token 1: its
        // inliers are all zero, so s = 0, and 3.5 in the outlier column passes through.
        let x = [1.2, -3.5, 0.25, 7.0, 0.0, 0.0, 0.0, 3.5];
        let want = [1.0, -3.5, 0.0, 7.0, 0.0, 0.0, 0.0, 3.5];
        assert_eq!(cpu::actquant::quantize_activations(&x, 2, 4, 4, Some(THRESHOLD)), want);
        let (got, outliers) = gpu_quantize(&gpu, &x, 2, 4, 4, Some(THRESHOLD)).await;
        assert_eq!((got.as_slice(), outliers), (want.as_slice(), Some(vec![3])));
        // Without outliers token 0 has s = 7/7 = 1: 1.2 → 1; −3.5 → −4 (ties to even); 0.25 → 0;
        // token 1 has s = 0.5 and every value on the grid.
        let want = [1.0, -4.0, 0.0, 7.0, 0.0, 0.0, 0.0, 3.5];
        assert_eq!(cpu::actquant::quantize_activations(&x, 2, 4, 4, None), want);
        assert_eq!(gpu_quantize(&gpu, &x, 2, 4, 4, None).await.0, want);

        // |x| ≥ threshold makes an outlier: 6.0 exactly (column 0) and −6.5 (column 2), not −5.99.
        let x = [6.0, -5.99, 0.0, 0.0, 0.0, 0.0, -6.5, 0.0];
        assert_eq!(cpu::actquant::outlier_columns(&x, 2, 4, THRESHOLD), [0, 2]);
        assert_eq!(gpu_quantize(&gpu, &x, 2, 4, 8, Some(THRESHOLD)).await.1, Some(vec![0, 2]));
    });
}

#[test]
fn activation_quantisation_refuses_bad_arguments() {
    pollster::block_on(async {
        let gpu = gpu();
        let (x, out) = (output(&gpu, 64), output(&gpu, 64));
        let mut enc = gpu.encoder();
        for bits in [1, 17] {
            let e = quantize_activations(&gpu, &mut enc, &x, &out, 4, 16, bits, None).await.unwrap_err();
            assert!(e.to_string().contains(&format!("not {bits}")), "{e}");
        }
        let e = quantize_activations(&gpu, &mut enc, &x, &x, 4, 16, 8, None).await.unwrap_err();
        assert!(e.to_string().contains("cannot write over its input"), "{e}");
        let e = quantize_activations(&gpu, &mut enc, &x, &out, 5, 16, 8, None).await.unwrap_err();
        assert!(e.to_string().contains("needs 80 f32 values"), "{e}");
        let e = quantize_activations(&gpu, &mut enc, &x, &out, 0, 16, 8, None).await.unwrap_err();
        assert!(e.to_string().contains("0 tokens"), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Sparse corrections

/// A random sparse (rows, cols) matrix as SpQR and OWQ leave them: scattered entries (about 2%), the
/// whole of a few input columns (OWQ), every column of row 0 (a row with many entries), and row 1
/// and each fourth row after it otherwise empty.
fn random_sparse(rows: usize, cols: usize, rng: &mut Rng) -> Vec<(u32, u32, f32)> {
    let mut entries = Vec::new();
    let owq_columns = [cols / 3, cols - 1];
    for r in 0..rows {
        let empty = r == 1 || (r > 1 && r % 4 == 1);
        for c in 0..cols {
            let kept = r == 0 || (!empty && (owq_columns.contains(&c) || rng.next_u64().is_multiple_of(50)));
            if kept {
                entries.push((r as u32, c as u32, rng.uniform() * 2.0));
            }
        }
    }
    // Upload sorts them by row.
    entries.reverse();
    entries
}

async fn gpu_add_sparse(gpu: &Gpu, s: &SparseRows, x: &[f32], out_before: &[f32], t: usize) -> Vec<f32> {
    let (x_buf, out) = (upload(gpu, x), upload(gpu, out_before));
    let mut enc = gpu.encoder();
    add_sparse(gpu, &mut enc, &x_buf, s, &out, t as u32).await.unwrap();
    submit_and_read(gpu, enc, &out, out_before.len()).await
}

#[test]
fn sparse_corrections_match_cpu() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(22);
        for (rows, cols) in [(1, 7), (5, 96), (97, 576), (576, 1536), (1536, 576)] {
            let entries = random_sparse(rows, cols, &mut rng);
            let s = SparseRows::upload(&gpu, "blk.0.ffn_up", rows as u64, cols as u64, &entries).unwrap();
            assert_eq!(s.nnz, entries.len() as u64);
            assert_eq!(s.stored_bytes(), 4 * (rows as u64 + 1) + 4 * entries.len() as u64);
            let csr = cpu::sparse::encode_entries(rows, cols, &entries).unwrap();
            assert_eq!(gpu.read_u32(&s.row_ptr, 0, rows as u64 + 1).await.unwrap(), csr.row_ptr);
            assert_eq!(gpu.read_u32(&s.entries, 0, s.nnz).await.unwrap(), csr.entries);
            for t in [1, 4, 37] {
                let x = random_f32(t * cols, 1.0, &mut rng);
                let before = random_f32(t * rows, 1.0, &mut rng);
                let mut want = before.clone();
                cpu::sparse::add_sparse(&x, t, cols, rows, &entries, &mut want).unwrap();
                let got = gpu_add_sparse(&gpu, &s, &x, &before, t).await;
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    let (token, r) = (i / rows, i % rows);
                    let row = &csr.entries[csr.row_ptr[r] as usize..csr.row_ptr[r + 1] as usize];
                    // An f32 sum of n products is within n·u·Σ|terms| of the exact one; then one add.
                    let magnitude: f32 = row
                        .iter()
                        .map(|&e| {
                            let (c, v) = cpu::sparse::unpack_entry(e);
                            (v * x[token * cols + c]).abs()
                        })
                        .sum();
                    let tolerance = (row.len() as f32 + 2.0) * EPS * (magnitude + before[i].abs());
                    assert!(
                        (g - w).abs() <= tolerance,
                        "({rows}, {cols}) t={t}: token {token} row {r}: GPU {g}, CPU {w}"
                    );
                    if row.is_empty() {
                        assert_eq!(g, before[i], "an empty row leaves out unchanged");
                    }
                }
            }
        }
    });
}

#[test]
fn sparse_corrections_known_answers() {
    pollster::block_on(async {
        let gpu = gpu();
        // S (3, 4): row 0 = 2.0 at column 1, −1.0 at column 3; row 1 empty; row 2 = 0.5 at column 0.
        let entries = [(2, 0, 0.5), (0, 3, -1.0), (0, 1, 2.0)];
        let csr = cpu::sparse::encode_entries(3, 4, &entries).unwrap();
        assert_eq!(csr.row_ptr, [0, 2, 2, 3]);
        let columns: Vec<(usize, f32)> = csr.entries.iter().map(|&e| cpu::sparse::unpack_entry(e)).collect();
        assert_eq!(columns, [(3, -1.0), (1, 2.0), (0, 0.5)]);
        let s = SparseRows::upload(&gpu, "s", 3, 4, &entries).unwrap();
        assert_eq!((s.nnz, s.stored_bytes()), (3, 4 * 4 + 4 * 3));
        // Token 0, x = (1, 2, 3, 4): row 0 gets 2·2 − 4 = 0, row 2 gets 0.5. Token 1, x = (−1, 0, 1, 2):
        // row 0 gets −2, row 2 gets −0.5.
        let x = [1.0, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 2.0];
        let before = [10.0, 20.0, 30.0, 0.0, 0.0, 0.0];
        let want = [10.0, 20.0, 30.5, -2.0, 0.0, -0.5];
        let mut cpu_out = before;
        cpu::sparse::add_sparse(&x, 2, 4, 3, &entries, &mut cpu_out).unwrap();
        assert_eq!(cpu_out, want);
        assert_eq!(gpu_add_sparse(&gpu, &s, &x, &before, 2).await, want);

        // Values are stored as f16: 0.1 comes back as 819·2⁻¹³ = 0.0999755859375.
        let s = SparseRows::upload(&gpu, "s", 1, 1, &[(0, 0, 0.1)]).unwrap();
        let got = gpu_add_sparse(&gpu, &s, &[1.0], &[0.0], 1).await;
        assert_eq!(got, [819.0 / 8192.0]);

        // The widest S allowed: 65535 columns, an entry in the last one.
        let s = SparseRows::upload(&gpu, "s", 2, 65535, &[(1, 65534, 3.0)]).unwrap();
        let mut x = vec![0.0; 65535];
        x[65534] = 2.0;
        assert_eq!(gpu_add_sparse(&gpu, &s, &x, &[1.0, 1.0], 1).await, [1.0, 7.0]);
        // An S without entries adds nothing.
        let s = SparseRows::upload(&gpu, "s", 3, 2, &[]).unwrap();
        assert_eq!(s.stored_bytes(), 16);
        assert_eq!(gpu_add_sparse(&gpu, &s, &[1.0, 2.0], &[1.0, 2.0, 3.0], 1).await, [1.0, 2.0, 3.0]);
    });
}

#[test]
fn sparse_corrections_refuse_what_they_cannot_store() {
    let gpu = gpu();
    let e = SparseRows::upload(&gpu, "blk.3.ffn_down", 4, 65536, &[(0, 1, 1.0)]).err().unwrap();
    assert!(e.to_string().contains("blk.3.ffn_down: sparse corrections address columns with 16 bits"), "{e}");
    let e = SparseRows::upload(&gpu, "s", 4, 8, &[(4, 1, 1.0)]).err().unwrap();
    assert!(e.to_string().contains("entry (4, 1) outside a (4, 8) matrix"), "{e}");
    let e = SparseRows::upload(&gpu, "s", 4, 8, &[(1, 8, 1.0)]).err().unwrap();
    assert!(e.to_string().contains("entry (1, 8) outside"), "{e}");
    let e = SparseRows::upload(&gpu, "s", 4, 8, &[(1, 2, 1e5)]).err().unwrap();
    assert!(e.to_string().contains("(1, 2) = 100000 does not fit f16"), "{e}");
    let mut out = [0.0; 4];
    let e = cpu::sparse::add_sparse(&[0.0; 70_000], 1, 70_000, 4, &[], &mut out).unwrap_err();
    assert!(e.to_string().contains("rows of 70000 need more"), "{e}");

    pollster::block_on(async {
        let s = SparseRows::upload(&gpu, "s", 4, 8, &[(1, 2, 1.0)]).unwrap();
        let (x, out) = (output(&gpu, 16), output(&gpu, 6));
        let mut enc = gpu.encoder();
        let e = add_sparse(&gpu, &mut enc, &x, &s, &out, 2).await.unwrap_err();
        assert!(e.to_string().contains("out needs 8 f32 values"), "{e}");
    });
}

// ---------------------------------------------------------------------------------------------
// Timings

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

/// Times at SmolLM2-135M shapes (d 576, FFN 1536) for 1 and 512 tokens: the activation quantisation
/// of both linear inputs, and 1% sparse corrections of the 1536 × 576 up projection next to its Q4_1
/// matmul.
/// `cargo test --release --test runtime_kernels -- --ignored --nocapture`.
#[test]
#[ignore]
fn runtime_kernel_timings_on_smollm2_shapes() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(23);
        let (rows, cols) = (1536usize, 576usize);
        let entries: Vec<(u32, u32, f32)> = (0..rows * cols / 100)
            .map(|_| ((rng.next_u64() % rows as u64) as u32, (rng.next_u64() % cols as u64) as u32, 0.5))
            .collect();
        let s = SparseRows::upload(&gpu, "s", rows as u64, cols as u64, &entries).unwrap();
        let bytes = random_tensor_bytes(DType::Q4_1, (rows * cols) as u64, 0.1, &mut rng);
        let w = gpu.upload_tensor("w", &[rows as u64, cols as u64], DType::Q4_1, &bytes).unwrap();
        for t in [1u32, 512] {
            for k in [576u32, 1536] {
                let x = upload(&gpu, &activations_with_outliers(t as usize, k as usize, &mut rng));
                let out = output(&gpu, (t * k) as usize);
                for threshold in [None, Some(THRESHOLD)] {
                    let ms = best_ms(&gpu, |mut e| async {
                        quantize_activations(&gpu, &mut e, &x, &out, t, k, 8, threshold).await.unwrap();
                        e
                    })
                    .await;
                    println!("quantize_activations t={t} k={k} threshold={threshold:?}: {ms:.3} ms");
                }
            }
            let x = upload(&gpu, &random_f32(t as usize * cols, 1.0, &mut rng));
            let out = output(&gpu, t as usize * rows);
            let ms = best_ms(&gpu, |mut e| async {
                add_sparse(&gpu, &mut e, &x, &s, &out, t).await.unwrap();
                e
            })
            .await;
            let matmul_ms = best_ms(&gpu, |mut e| async {
                matmul::matmul(&gpu, &mut e, &x, &w, None, &out, t).await.unwrap();
                e
            })
            .await;
            println!(
                "add_sparse ({rows}, {cols}) nnz={} t={t}: {ms:.3} ms; its Q4_1 matmul {matmul_ms:.3} ms",
                s.nnz
            );
        }
    });
}
