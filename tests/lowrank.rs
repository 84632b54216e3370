//! Low-rank factorisation: the symmetric eigensolver against its definition and closed forms, the
//! truncated SVD on awkward shapes against the definition (A·B's error is exactly the discarded
//! singular values; the singular values agree with power iteration and with the characteristic
//! polynomial of 2×2 and 3×3 Gram matrices), ASVD's scaled error, the two-matmul execution against the
//! dense product, and on the real SmolLM2-135M ASVD beating plain SVD.

mod common;

use common::hessians::gaussian;
use common::{tiny_gpt2_gguf, tiny_llama_gguf, Rng, TINY_VOCAB};
use squeeze::compress::linalg::{gram, symmetric_eigen};
use squeeze::compress::lowrank::asvd::{asvd, scales};
use squeeze::compress::lowrank::svd::truncated_svd;
use squeeze::compress::lowrank::{product, rank_for};
use squeeze::compress::{compress, Calibration, Compressed, Recipe};
use squeeze::error::Error;
use squeeze::formats::{DType, MemSource};
use squeeze::gpu::Gpu;
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};

fn normals(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| gaussian(rng)).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// A random symmetric n×n matrix (B + Bᵀ)/2.
fn symmetric(rng: &mut Rng, n: usize) -> Vec<f64> {
    let b = normals(rng, n * n);
    (0..n * n).map(|ij| (b[ij] + b[(ij % n) * n + ij / n]) / 2.0).collect()
}

fn transpose(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows * cols).map(|ji| m[(ji % rows) * cols + ji / rows]).collect()
}

/// Eigenvalues of a symmetric 2×2 or 3×3 matrix from its characteristic polynomial, largest first:
/// the quadratic formula, or the trigonometric roots of the depressed cubic.
fn characteristic_roots(a: &[f64], n: usize) -> Vec<f64> {
    let mut roots = match n {
        2 => {
            let (tr, det) = (a[0] + a[3], a[0] * a[3] - a[1] * a[2]);
            let disc = (tr * tr / 4.0 - det).max(0.0).sqrt();
            vec![tr / 2.0 + disc, tr / 2.0 - disc]
        }
        3 => {
            let q = (a[0] + a[4] + a[8]) / 3.0;
            let p1 = a[1] * a[1] + a[2] * a[2] + a[5] * a[5];
            let p2 = (0..3).map(|i| (a[i * 4] - q).powi(2)).sum::<f64>() + 2.0 * p1;
            let p = (p2 / 6.0).sqrt();
            let b: Vec<f64> = (0..9).map(|ij| (a[ij] - if ij % 4 == 0 { q } else { 0.0 }) / p).collect();
            let det_b = b[0] * (b[4] * b[8] - b[5] * b[7]) - b[1] * (b[3] * b[8] - b[5] * b[6])
                + b[2] * (b[3] * b[7] - b[4] * b[6]);
            let phi = (det_b / 2.0).clamp(-1.0, 1.0).acos() / 3.0;
            let tau = std::f64::consts::TAU;
            (0..3).map(|k| q + 2.0 * p * (phi + tau * k as f64 / 3.0).cos()).collect()
        }
        _ => unreachable!("closed forms for 2×2 and 3×3 only"),
    };
    roots.sort_by(|x, y| y.total_cmp(x));
    roots
}

/// The largest singular values of (rows, cols) `w`, one at a time: power iteration on WᵀW, then that
/// direction deflated away.
fn power_iteration_singular_values(w: &[f64], rows: usize, cols: usize, count: usize) -> Vec<f64> {
    let mut g = gram(&transpose(w, rows, cols), cols, rows);
    let mut rng = Rng::new(99);
    let mut found = Vec::new();
    for _ in 0..count {
        let mut v = normals(&mut rng, cols);
        let mut lambda = 0.0;
        for _ in 0..5000 {
            let gv: Vec<f64> =
                g.chunks_exact(cols).map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
            let norm = gv.iter().map(|x| x * x).sum::<f64>().sqrt();
            let next: Vec<f64> = gv.iter().map(|x| x / norm).collect();
            let moved = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            v = next;
            lambda = norm;
            if moved < 1e-13 {
                break;
            }
        }
        for i in 0..cols {
            for j in 0..cols {
                g[i * cols + j] -= lambda * v[i] * v[j];
            }
        }
        found.push(lambda.sqrt());
    }
    found
}

fn frobenius2(m: &[f64]) -> f64 {
    m.iter().map(|x| x * x).sum()
}

#[test]
fn symmetric_eigen_meets_its_definition() {
    let mut rng = Rng::new(1);
    for n in [1, 2, 3, 4, 7, 50, 130] {
        let a = symmetric(&mut rng, n);
        let e = symmetric_eigen(&a, n).unwrap();
        let scale = e.values.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(e.values.windows(2).all(|p| p[0] >= p[1]), "n {n}: not sorted");
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        assert!((e.values.iter().sum::<f64>() - trace).abs() < 1e-10 * n as f64 * scale, "n {n}: trace");
        for (i, v) in e.vectors.chunks_exact(n).enumerate() {
            let av: Vec<f64> =
                a.chunks_exact(n).map(|row| row.iter().zip(v).map(|(x, y)| x * y).sum()).collect();
            let residual = av.iter().zip(v).map(|(x, y)| (x - e.values[i] * y).abs()).fold(0.0, f64::max);
            assert!(residual < 1e-11 * scale, "n {n}: eigenpair {i}: residual {residual:e}");
            for (j, u) in e.vectors.chunks_exact(n).enumerate() {
                let d: f64 = v.iter().zip(u).map(|(x, y)| x * y).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-12, "n {n}: vectors {i}·{j} = {d}");
            }
        }
        if n == 2 || n == 3 {
            for (got, want) in e.values.iter().zip(characteristic_roots(&a, n)) {
                assert!((got - want).abs() < 1e-12 * scale, "n {n}: λ {got} vs root {want}");
            }
        }
    }
    // Repeated and zero eigenvalues: I + 3·uuᵀ (one 4, the rest 1) and the zero matrix.
    let n = 20;
    let u: Vec<f64> = normals(&mut rng, n);
    let norm2: f64 = u.iter().map(|x| x * x).sum();
    let a: Vec<f64> = (0..n * n)
        .map(|ij| if ij / n == ij % n { 1.0 } else { 0.0 } + 3.0 * u[ij / n] * u[ij % n] / norm2)
        .collect();
    let e = symmetric_eigen(&a, n).unwrap();
    assert!(
        (e.values[0] - 4.0).abs() < 1e-13 && e.values[1..].iter().all(|v| (v - 1.0).abs() < 1e-13),
        "{:?}",
        e.values
    );
    // Gram matrices of low-rank products (what a second factorisation of a factored layer meets):
    // most eigenvalues at rounding level, where only a test against the matrix's scale converges.
    for (rows, inner, cols) in [(50, 5, 70), (512, 136, 256), (256, 100, 256)] {
        let low = product(
            &f32s(&normals(&mut rng, rows * inner)),
            &f32s(&normals(&mut rng, inner * cols)),
            rows,
            inner,
            cols,
        );
        let n = rows.min(cols);
        let low = f64s(&low);
        let g = match rows <= cols {
            true => gram(&low, rows, cols),
            false => gram(&transpose(&low, rows, cols), cols, rows),
        };
        let e = symmetric_eigen(&g, n).unwrap();
        assert!(
            e.values[inner - 1] > 1.0 && e.values[inner..].iter().all(|v| v.abs() < 1e-10 * e.values[0]),
            "rank {inner}: {:?}",
            e.values
        );
    }
    let zero = symmetric_eigen(&[0.0; 9], 3).unwrap();
    assert_eq!(zero.values, vec![0.0; 3]);
    match symmetric_eigen(&[1.0, 2.0, 3.0], 2) {
        Err(Error::Invalid(m)) => assert!(m.contains("a 2×2 matrix has 3 entries, not 4"), "{m}"),
        other => panic!("a short matrix was accepted: {:?}", other.map(|e| e.values)),
    }
}

#[test]
fn truncated_svd_error_is_the_discarded_singular_values() {
    let mut rng = Rng::new(2);
    for (rows, cols) in [(2, 2), (3, 3), (2, 3), (3, 2), (7, 5), (5, 7), (37, 96), (96, 37), (1, 9)] {
        // Columns of different scales, so that the spectrum is spread.
        let w: Vec<f64> =
            (0..rows * cols).map(|ij| gaussian(&mut rng) * (1.0 + (ij % cols) as f64 / 3.0)).collect();
        let w32 = f32s(&w);
        let w = f64s(&w32);
        let n = rows.min(cols);
        let full = truncated_svd(&w32, rows, cols, n).unwrap();
        let sigma = &full.singular_values;
        assert_eq!(sigma.len(), n);
        let what = format!("{rows}×{cols}");
        // Against a reference computed another way.
        let reference = match n {
            2 | 3 => characteristic_roots(&gram(&transpose(&w, rows, cols), cols, rows), cols)
                .iter()
                .chain(&[0.0; 3])
                .take(n)
                .map(|l| l.max(0.0).sqrt())
                .collect(),
            _ => power_iteration_singular_values(&w, rows, cols, n.min(4)),
        };
        // The Gram route resolves singular values to about √ε·σ₁ in absolute terms.
        for (i, (got, want)) in sigma.iter().zip(&reference).enumerate() {
            assert!((got - want).abs() < 1e-7 * sigma[0], "{what}: σ{i} {got} vs {want}");
        }
        assert!((frobenius2(sigma) - frobenius2(&w)).abs() < 1e-9 * frobenius2(&w), "{what}: Σσ² = ‖W‖²");
        for rank in [1, n / 2, n.saturating_sub(1), n].into_iter().filter(|&r| r >= 1) {
            let f = truncated_svd(&w32, rows, cols, rank).unwrap();
            assert_eq!((f.a.len(), f.b.len(), f.rank), (rows * rank, rank * cols, rank), "{what}");
            let err: Vec<f64> = f.product().iter().zip(&w).map(|(&p, &x)| p as f64 - x).collect();
            let want = frobenius2(&sigma[rank..]);
            // f32 factors: the product carries about 1e-7 of ‖W‖ besides the truncation.
            let tolerance = 1e-6 * frobenius2(&w).sqrt();
            assert!(
                (frobenius2(&err).sqrt() - want.sqrt()).abs() < tolerance,
                "{what} rank {rank}: ‖W − AB‖ = {:e}, √Σ discarded σ² = {:e}",
                frobenius2(&err).sqrt(),
                want.sqrt()
            );
        }
    }
}

#[test]
fn truncated_svd_beats_other_rank_r_approximations_and_refuses_bad_input() {
    let mut rng = Rng::new(3);
    let (rows, cols, rank) = (24, 40, 6);
    let w = f32s(&normals(&mut rng, rows * cols));
    let f = truncated_svd(&w, rows, cols, rank).unwrap();
    let err = |approx: &[f32]| {
        frobenius2(&approx.iter().zip(&w).map(|(&a, &b)| (a - b) as f64).collect::<Vec<_>>())
    };
    let best = err(&f.product());
    // Perturbed factors do worse.
    for trial in 0..5 {
        let a: Vec<f32> = f.a.iter().map(|&x| x + 0.05 * rng.uniform()).collect();
        assert!(err(&product(&a, &f.b, rows, rank, cols)) > best, "perturbation {trial}");
    }
    assert_eq!(
        truncated_svd(&w[1..], rows, cols, rank).unwrap_err().to_string(),
        Error::Invalid(format!(
            "the matrices have {} and {} values, not {rows}×{cols}",
            rows * cols - 1,
            rows * cols - 1
        ))
        .to_string()
    );
    let refused = |r: squeeze::error::Result<squeeze::compress::lowrank::Factors>, says: &str| match r {
        Err(Error::Invalid(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("accepted, wanted \"{says}\": {:?}", other.map(|f| f.rank)),
    };
    refused(truncated_svd(&w, rows, cols, 0), "rank 0 of a 24×40 matrix: must lie in [1, 24]");
    refused(truncated_svd(&w, rows, cols, 25), "rank 25");
    let mut nan = w.clone();
    nan[47] = f32::NAN;
    refused(truncated_svd(&nan, rows, cols, 3), "value 47 is not finite");

    assert_eq!(rank_for(0.8, 576, 1536).unwrap(), 335);
    assert_eq!(rank_for(0.8, 1536, 576).unwrap(), 335);
    assert_eq!(rank_for(0.5, 576, 576).unwrap(), 144);
    assert_eq!(rank_for(0.01, 64, 64).unwrap(), 1);
    match rank_for(0.5, 2, 2) {
        Err(Error::Invalid(m)) => assert!(
            m.contains("rank-1 factors of a 2×2 matrix hold 4 parameters, not fewer than its 4"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn asvd_truncates_the_activation_weighted_matrix() {
    let mut rng = Rng::new(4);
    let (rows, cols, tokens, rank) = (48, 80, 600, 16);
    // Inputs whose channels differ in scale by up to 100×; one channel never active.
    let channel: Vec<f64> =
        (0..cols).map(|j| if j == 5 { 0.0 } else { 10f64.powf(rng.uniform() as f64) }).collect();
    let x: Vec<f64> = (0..tokens * cols).map(|i| gaussian(&mut rng) * channel[i % cols]).collect();
    let mean_abs: Vec<f32> = (0..cols)
        .map(|j| ((0..tokens).map(|t| x[t * cols + j].abs()).sum::<f64>() / tokens as f64) as f32)
        .collect();
    let w = f32s(&normals(&mut rng, rows * cols));
    let s = scales(&mean_abs, 0.5);
    assert_eq!(s[5], 0.0);
    assert!((s[0] - mean_abs[0].sqrt()).abs() < 1e-6);

    let f = asvd(&w, rows, cols, &mean_abs, 0.5, rank).unwrap();
    assert!(f.a.iter().chain(&f.b).all(|v| v.is_finite()));
    // ‖(W − AB)·S‖² is the discarded part of W·S's spectrum.
    let ws: Vec<f64> = (0..rows * cols).map(|i| w[i] as f64 * s[i % cols] as f64).collect();
    let scaled_err: Vec<f64> =
        f.product().iter().enumerate().map(|(i, &p)| (p as f64 - w[i] as f64) * s[i % cols] as f64).collect();
    let want = frobenius2(&f.singular_values[rank..]);
    assert!(
        (frobenius2(&scaled_err) - want).abs() < 1e-5 * frobenius2(&ws),
        "‖(W − AB)S‖² {:e} vs {want:e}",
        frobenius2(&scaled_err)
    );
    // On the inputs themselves, ASVD moves the layer's outputs less than plain SVD of the same rank.
    let output_err = |approx: &[f32]| -> f64 {
        (0..tokens)
            .map(|t| {
                let xt = &x[t * cols..(t + 1) * cols];
                (0..rows)
                    .map(|r| {
                        (0..cols)
                            .map(|j| (approx[r * cols + j] - w[r * cols + j]) as f64 * xt[j])
                            .sum::<f64>()
                            .powi(2)
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let plain = output_err(&truncated_svd(&w, rows, cols, rank).unwrap().product());
    let aware = output_err(&f.product());
    eprintln!("output error: ASVD {aware:e}, SVD {plain:e}");
    assert!(aware < 0.7 * plain, "ASVD {aware:e} vs SVD {plain:e}");
    match asvd(&w, rows, cols, &mean_abs[1..], 0.5, rank) {
        Err(Error::Invalid(m)) => {
            assert!(m.contains("79 input statistics for a matrix of 80 columns"), "{m}")
        }
        other => panic!("{:?}", other.map(|f| f.rank)),
    }
}

/// Where the factorisation runs: SmolLM2's largest shape, 576 × 1536, timed on the CPU (f64 Gram,
/// eigensolver, the whole truncated SVD) against the Gram product through the GPU matmul (f32; on
/// lavapipe here), whose result must agree. The figures are quoted in svd.rs and README.md.
#[test]
fn factorisation_timing() {
    use squeeze::kernels::matmul::matmul;
    let (rows, cols) = (576, 1536);
    let mut rng = Rng::new(5);
    let w = f32s(&normals(&mut rng, rows * cols));
    let w64 = f64s(&w);
    let time = |f: &mut dyn FnMut()| {
        let t0 = std::time::Instant::now();
        f();
        t0.elapsed().as_secs_f64() * 1000.0
    };
    let mut g = Vec::new();
    let gram_cpu = time(&mut || g = gram(&w64, rows, cols));
    let eigen_cpu = time(&mut || {
        symmetric_eigen(&g, rows).unwrap();
    });
    let svd_cpu = time(&mut || {
        truncated_svd(&w, rows, cols, rank_for(0.8, rows, cols).unwrap()).unwrap();
    });

    let gpu = common::gpu();
    let tensor =
        gpu.upload_tensor("w", &[rows as u64, cols as u64], DType::F32, bytemuck::cast_slice(&w)).unwrap();
    let out = gpu.storage_buffer("gram", (rows * rows * 4) as u64, wgpu::BufferUsages::empty()).unwrap();
    let run = || {
        pollster::block_on(async {
            let mut enc = gpu.encoder();
            matmul(&gpu, &mut enc, &tensor.buffer, &tensor, None, &out, rows as u32).await.unwrap();
            gpu.queue.submit([enc.finish()]);
            gpu.read_f32(&out, 0, (rows * rows) as u64).await.unwrap()
        })
    };
    run(); // pipelines compiled
    let mut g_gpu = Vec::new();
    let gram_gpu = time(&mut || g_gpu = run());
    let scale = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (&a, &b)) in g_gpu.iter().zip(&g).enumerate() {
        assert!((a as f64 - b).abs() < 1e-5 * scale, "Gram entry {i}: GPU {a}, CPU {b}");
    }
    eprintln!(
        "576×1536: Gram CPU f64 {gram_cpu:.0} ms, GPU matmul f32 {gram_gpu:.0} ms; 576×576 eigensolver \
         {eigen_cpu:.0} ms; truncated SVD at keep 0.8 (rank 335) {svd_cpu:.0} ms"
    );
}

// ---------- two matmuls ----------

fn quiet(_: &str, _: u64, _: u64) {}

fn load_bytes(gpu: &Gpu, bytes: Vec<u8>) -> LoadedModel {
    pollster::block_on(load(gpu, &[MemSource { name: "tiny.gguf".into(), bytes }], &mut quiet)).unwrap()
}

fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % TINY_VOCAB) as u32).collect()
}

fn run(gpu: &Gpu, model: &LoadedModel, recipe: &str) -> squeeze::error::Result<Compressed> {
    let recipe = Recipe::parse(recipe)?;
    let calib = tokens(128, 7);
    pollster::block_on(compress(
        gpu,
        model,
        &recipe,
        Some(Calibration { tokens: &calib, seq_len: 64 }),
        &mut quiet,
    ))
}

fn logits(gpu: &Gpu, model: &LoadedModel, ids: &[u32]) -> Vec<f32> {
    let mut runner = Runner::new(gpu, model, ids.len(), ids.len()).unwrap();
    pollster::block_on(runner.logits_of(ids, 0..ids.len())).unwrap()
}

/// The same model with every factored matrix replaced by the product of its stored factors, as one
/// dense F32 tensor run by one matmul.
fn dense_substitute(gpu: &Gpu, c: &LoadedModel) -> LoadedModel {
    let mut m = LoadedModel {
        header: c.header.clone(),
        tensors: c.tensors.clone(),
        timings: c.timings,
        extras: c.extras.clone(),
    };
    for (&i, e) in &c.extras {
        let f = e.low_rank.as_ref().expect("only factored layers here");
        let p = pollster::block_on(f.product(gpu)).unwrap();
        let info = &mut m.header.tensors[i];
        info.dtype = DType::F32;
        info.n_bytes = (p.len() * 4) as u64;
        m.tensors[i] =
            gpu.upload_tensor(&info.name, &info.shape, DType::F32, bytemuck::cast_slice(&p)).unwrap();
    }
    m.extras.clear();
    m
}

#[test]
fn factored_layers_run_as_two_matmuls_and_compute_the_dense_product() {
    let gpu = common::gpu();
    let ids = tokens(40, 3);
    let cases = [
        ("llama, svd", tiny_llama_gguf(DType::F16, 31), r#"{"steps":[{"method":"svd","keep":0.6}]}"#),
        (
            "llama, asvd on attention",
            tiny_llama_gguf(DType::Q8_0, 32),
            r#"{"steps":[{"method":"asvd","keep":0.3,"target":"attn"}]}"#,
        ),
        ("gpt2, svd", tiny_gpt2_gguf(DType::F32, 33), r#"{"steps":[{"method":"svd","keep":0.7}]}"#),
    ];
    for (what, bytes, recipe) in cases {
        let model = load_bytes(&gpu, bytes);
        let c = run(&gpu, &model, recipe).unwrap();
        assert!(!c.model.extras.is_empty(), "{what}");
        for t in &c.report.tensors {
            let info = c.model.header.tensor(&t.name).unwrap();
            let (rows, cols) = (info.rows(), info.cols());
            let keep = Recipe::parse(recipe).unwrap().steps[0].f64("keep");
            let rank = ((keep * (rows * cols) as f64) / (rows + cols) as f64).floor() as u64;
            assert_eq!(t.rank, Some(rank), "{what}: {}", t.name);
            // Both factors in F16, and nothing else stored for the matrix.
            assert_eq!(
                (t.bytes, info.n_bytes, t.dtype_after.as_str()),
                (2 * rank * (rows + cols), 0, "F16"),
                "{what}: {}",
                t.name
            );
            assert_eq!(t.params, rows * cols);
        }
        let saved: u64 = c
            .report
            .tensors
            .iter()
            .map(|t| t.params - t.rank.unwrap() * (t.bytes / 2 / t.rank.unwrap()))
            .sum();
        assert_eq!(c.report.params - c.report.params_stored, saved, "{what}: parameters stored");
        let size: u64 = c.model.header.tensors.iter().map(|t| t.n_bytes).sum::<u64>()
            + c.model.extras.values().map(|e| e.stored_bytes()).sum::<u64>();
        assert_eq!(c.report.size_bytes, size, "{what}");
        assert!(
            c.report.steps[0].notes.iter().any(|n| n.contains("as two low-rank factors each")),
            "{what}: {:?}",
            c.report.steps[0].notes
        );

        let two = logits(&gpu, &c.model, &ids);
        let one = logits(&gpu, &dense_substitute(&gpu, &c.model), &ids);
        let original = logits(&gpu, &model, &ids);
        let scale = one.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = two.iter().zip(&one).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let moved = original.iter().zip(&one).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{what}: two matmuls vs the dense product: {worst:e} (logits up to {scale}; the factorisation moved them {moved})");
        assert!(worst <= 1e-4 * scale, "{what}: {worst} vs scale {scale}");
        assert!(moved > 100.0 * worst.max(1e-6), "{what}: the factorisation changed nothing? {moved}");
    }
}

#[test]
fn recipes_refuse_what_low_rank_cannot_do() {
    let gpu = common::gpu();
    let model = load_bytes(&gpu, tiny_llama_gguf(DType::F16, 34));
    let refused = |recipe: &str, says: &str| match run(&gpu, &model, recipe) {
        Err(Error::Invalid(m)) => assert!(m.contains(says), "{recipe}: {m}"),
        other => panic!("{recipe} was accepted: {:?}", other.map(|c| c.report.params)),
    };
    refused(
        r#"{"steps":[{"method":"svd","keep":1.0}]}"#,
        "svd.keep is the share of each matrix's parameters",
    );
    refused(r#"{"steps":[{"method":"asvd","keep":0}]}"#, "must lie in (0, 1)");
    refused(r#"{"steps":[{"method":"asvd","alpha":2}]}"#, "asvd.alpha must lie in [0, 1], not 2");
    refused(
        r#"{"steps":[{"method":"svd","target":"token_embd"}]}"#,
        "token_embd.weight is not a linear layer inside a block",
    );
    refused(
        r#"{"steps":[{"method":"svd","target":"ffn_up"},{"method":"rtn","bits":4,"group":64}]}"#,
        "rtn on blk.0.ffn_up.weight: an earlier step stored it as two rank-136 factors",
    );
    refused(
        r#"{"steps":[{"method":"svd","target":"attn_q"},{"method":"awq","bits":4,"group":64}]}"#,
        "awq on blk.0.attn_q.weight: an earlier step stored it as two rank-102 factors",
    );
    // Factorising again reads the product: allowed.
    let c = run(&gpu, &model, r#"{"steps":[{"method":"svd","keep":0.8,"target":"ffn_up"},{"method":"asvd","keep":0.5,"target":"ffn_up"}]}"#).unwrap();
    assert_eq!(c.report.tensors.iter().filter_map(|t| t.rank).collect::<Vec<_>>(), [136, 85, 136, 85]);
}

// ---------- the real model ----------

/// Blocks 0–3 of SmolLM2-135M at keep 0.8 (20% fewer parameters in each matrix): the factors are F16,
/// 12.8 bits per weight of the matrices they replace at most, and ASVD's activation weighting must
/// beat plain SVD on KL divergence against the original.
#[test]
fn asvd_beats_svd_on_smollm2() {
    let b = common::bench::bench();
    let recipe = |method: &str| {
        format!(r#"{{"steps":[{{"method":"{method}","keep":0.8,"target":"blk\\.[0-3]\\."}}]}}"#)
    };
    let (svd_c, svd) = b.run(&recipe("svd"));
    let (asvd_c, asvd) = b.run(&recipe("asvd"));
    for (what, c) in [("svd", &svd_c), ("asvd", &asvd_c)] {
        assert_eq!(c.report.tensors.len(), 4 * 7, "{what}");
        for t in &c.report.tensors {
            let info = c.model.header.tensor(&t.name).unwrap();
            let (rows, cols) = (info.rows(), info.cols());
            assert_eq!(t.bytes, 2 * t.rank.unwrap() * (rows + cols), "{what}: {}", t.name);
            assert!(t.bpw <= 16.0 * 0.8 && t.bpw > 16.0 * 0.79, "{what}: {} at {} bpw", t.name, t.bpw);
        }
        let dense: u64 = c.report.tensors.iter().map(|t| t.params).sum();
        let saved = c.report.params - c.report.params_stored;
        assert!((0.2..0.201).contains(&(saved as f64 / dense as f64)), "{what}: {saved} of {dense} saved");
    }
    assert!(asvd.kld < 0.8 * svd.kld, "ASVD KLD {} vs SVD {}", asvd.kld, svd.kld);
}
