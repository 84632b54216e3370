//! Pruning: masks hold exactly what a step asks for (N of every M, a share per row or per matrix, the
//! lowest scores), SparseGPT equals a plain optimal-brain-surgeon loop written here (column by column,
//! the inverse Hessian of the columns not yet visited by Gauss–Jordan, every update at once), and on the
//! real SmolLM2-135M Wanda and SparseGPT beat magnitude pruning (KL divergence against the original), and
//! a quantising step after a pruning step keeps the zeros.

mod common;

use common::bench::{assert_sizes_honest, bench, Bench};
use common::hessians::{gaussians, hessian, output_error, to_f32};
use common::Rng;
use squeeze::compress::allot::{allot_sparsity, Allotted};
use squeeze::compress::prune::magnitude::{magnitude_mask, Scope};
use squeeze::compress::prune::mask::{apply, row_mask, whole_mask};
use squeeze::compress::prune::sparsegpt::{sparsegpt, SparseGptOptions, SparseGptResult};
use squeeze::compress::prune::wanda::wanda_mask;
use squeeze::compress::prune::Sparsity;
use squeeze::compress::{Compressed, Recipe};
use squeeze::error::Error;
use squeeze::eval::sensitivity::LayerSensitivity;
use squeeze::kernels::dequant::dequantize_to_vec;
use std::collections::BTreeMap;

// ---------- masks ----------

/// Scores on a coarse grid, so that ties occur and their order is exercised.
fn coarse_scores(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| (rng.uniform() as f64 * 16.0).round().abs()).collect()
}

/// In the set `at` of positions: exactly `count` are pruned, and none of them scores above a kept one.
fn assert_lowest(scores: &[f64], mask: &[bool], at: &[usize], count: usize, what: &str) {
    let pruned: Vec<f64> = at.iter().filter(|&&i| mask[i]).map(|&i| scores[i]).collect();
    let kept: Vec<f64> = at.iter().filter(|&&i| !mask[i]).map(|&i| scores[i]).collect();
    assert_eq!(pruned.len(), count, "{what}: pruned count");
    let highest_pruned = pruned.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let lowest_kept = kept.iter().fold(f64::INFINITY, |a, &b| a.min(b));
    assert!(highest_pruned <= lowest_kept, "{what}: pruned {highest_pruned} above kept {lowest_kept}");
}

fn row(r: usize, cols: usize) -> Vec<usize> {
    (r * cols..(r + 1) * cols).collect()
}

#[test]
fn n_of_m_masks_keep_exactly_n_of_every_m() {
    let mut rng = Rng::new(1);
    let (rows, cols) = (5, 48);
    for (n, m) in [(2, 4), (4, 8), (1, 4), (3, 16), (1, 2), (47, 48)] {
        let sparsity = Sparsity::NOfM { n, m };
        let scores = coarse_scores(&mut rng, rows * cols);
        let w: Vec<f32> = scores.iter().map(|&s| (s * rng.uniform().signum() as f64) as f32).collect();
        let masks = [
            ("row_mask", row_mask(&scores, rows, cols, sparsity)),
            ("magnitude, row scope", magnitude_mask(&w, rows, cols, sparsity, Scope::Row)),
            ("magnitude, matrix scope", magnitude_mask(&w, rows, cols, sparsity, Scope::Matrix)),
            ("wanda, equal norms", wanda_mask(&w, rows, cols, &vec![4.0; cols], sparsity).unwrap()),
        ];
        for (what, mask) in masks {
            for g in 0..rows * cols / m {
                let at: Vec<usize> = (g * m..(g + 1) * m).collect();
                assert_lowest(&scores, &mask, &at, m - n, &format!("{what} {n}:{m} group {g}"));
            }
            assert_eq!(mask.iter().filter(|&&p| p).count(), rows * cols * (m - n) / m);
        }
    }
}

#[test]
fn unstructured_masks_prune_the_requested_share_per_row_or_per_matrix() {
    let mut rng = Rng::new(2);
    let (rows, cols) = (13, 50);
    let w = gaussians(&mut rng, rows * cols, 0.05);
    let magnitudes: Vec<f64> = w.iter().map(|&v| v.abs() as f64).collect();
    for s in [0.0, 0.3, 0.5, 0.77, 0.9] {
        let per_row = (cols as f64 * s) as usize;
        let mask = magnitude_mask(&w, rows, cols, Sparsity::Unstructured(s), Scope::Row);
        for r in 0..rows {
            assert_lowest(&magnitudes, &mask, &row(r, cols), per_row, &format!("row scope {s}, row {r}"));
        }
        let mask = magnitude_mask(&w, rows, cols, Sparsity::Unstructured(s), Scope::Matrix);
        let all: Vec<usize> = (0..rows * cols).collect();
        assert_lowest(&magnitudes, &mask, &all, ((rows * cols) as f64 * s) as usize, "matrix scope");
        assert_eq!(mask, whole_mask(&magnitudes, s));
    }

    // Wanda: |w|·‖x_j‖ per row; a column of huge activations keeps its weights, a dead one loses them.
    let mut sum_sq: Vec<f32> = (0..cols).map(|_| 10f32.powf(rng.uniform())).collect();
    sum_sq[3] = 1e8;
    sum_sq[7] = 0.0;
    let scores: Vec<f64> =
        w.iter().enumerate().map(|(i, &v)| v.abs() as f64 * (sum_sq[i % cols] as f64).sqrt()).collect();
    let mask = wanda_mask(&w, rows, cols, &sum_sq, Sparsity::Unstructured(0.5)).unwrap();
    for r in 0..rows {
        assert_lowest(&scores, &mask, &row(r, cols), cols / 2, &format!("wanda row {r}"));
        assert!(
            !mask[r * cols + 3] && mask[r * cols + 7],
            "row {r}: the loud column stays, the dead one goes"
        );
    }
    let mut pruned = w.clone();
    apply(&mut pruned, &mask);
    for (i, (&p, &m)) in pruned.iter().zip(&mask).enumerate() {
        assert_eq!(p, if m { 0.0 } else { w[i] }, "weight {i}");
    }
    match wanda_mask(&w, rows, cols, &sum_sq[1..], Sparsity::Unstructured(0.5)) {
        Err(Error::Invalid(m)) => assert!(m.contains("50 input norms, not 650 and 49"), "{m}"),
        other => panic!("a short norm vector was accepted: {:?}", other.map(|_| ())),
    }
}

#[test]
fn recipes_refuse_bad_pruning_parameters_with_the_reason() {
    assert_eq!(Sparsity::parse(0.5, "").unwrap(), Sparsity::Unstructured(0.5));
    assert_eq!(Sparsity::parse(0.5, "2:4").unwrap(), Sparsity::NOfM { n: 2, m: 4 });
    assert_eq!(Sparsity::parse(0.0, " 4 : 8").unwrap().share(), 0.5);
    let refused = common::assert_recipe_refused;
    refused(r#"{"steps":[{"method":"magnitude","sparsity":1.0}]}"#, "magnitude.sparsity must lie in [0, 1)");
    refused(
        r#"{"steps":[{"method":"wanda","sparsity":-0.1}]}"#,
        "wanda.sparsity must lie in [0, 1), not -0.1",
    );
    refused(r#"{"steps":[{"method":"magnitude","scope":"column"}]}"#, "scope must be \"row\" or \"matrix\"");
    refused(r#"{"steps":[{"method":"wanda","pattern":"4:2"}]}"#, "pattern \"4:2\" is not N:M");
    refused(r#"{"steps":[{"method":"wanda","pattern":"2-4"}]}"#, "pattern \"2-4\" is not N:M");
    refused(r#"{"steps":[{"method":"sparsegpt","pattern":"0:4"}]}"#, "is not N:M with 1 ≤ N < M");
    refused(
        r#"{"steps":[{"method":"sparsegpt","pattern":"2:4","sparsity":0.6}]}"#,
        "prunes 0.5 of the weights",
    );
    refused(r#"{"steps":[{"method":"sparsegpt","pattern":"4:8","block":100}]}"#, "multiple of 8");
    refused(r#"{"steps":[{"method":"sparsegpt","block":0}]}"#, "sparsegpt.block must be at least 1");
    refused(r#"{"steps":[{"method":"magnitude","pattern":2}]}"#, "magnitude.pattern must be like \"\"");
    let ok = Recipe::parse(r#"{"steps":[{"method":"sparsegpt","pattern":"2:4","sparsity":0.5}]}"#).unwrap();
    assert_eq!(ok.steps[0].sparsity(), Some(Sparsity::NOfM { n: 2, m: 4 }));
    assert!(Recipe::parse(r#"{"steps":[{"method":"magnitude"}]}"#).unwrap().steps[0].sparsity().is_some());
}

/// The sensitivity allotment of sparsity: shares spread over the ranks of the measured KLD, the most
/// sensitive block pruned least, and the parameter-weighted mean exactly the step's sparsity even when
/// blocks differ in size.
#[test]
fn sparsity_allotment_spreads_by_rank_and_keeps_the_mean() {
    let klds = [0.30, 0.02, 0.11, 0.05, 0.11];
    let sensitivity: Vec<LayerSensitivity> = klds
        .iter()
        .enumerate()
        .map(|(layer, &kld)| LayerSensitivity { layer, kld, top1: 0.9, bpw: 16.0, seconds: 0.1 })
        .collect();
    let equal: BTreeMap<usize, u64> = (0..5).map(|l| (l, 1000)).collect();
    let Allotted::Sparsity { layers, mean, spread } = allot_sparsity(0.6, 0.1, &sensitivity, &equal) else {
        panic!("a sparsity allotment")
    };
    assert_eq!((mean, spread), (0.6, 0.1));
    let shares: Vec<f64> = layers.iter().map(|l| l.sparsity).collect();
    // Ranks by KLD: block 1 (least sensitive), 3, 2 and 4 (tie, by block), 0 (most).
    for (got, want) in shares.iter().zip([0.5, 0.7, 0.6, 0.65, 0.55]) {
        assert!((got - want).abs() < 1e-12, "{shares:?}");
    }
    assert_eq!(layers.iter().map(|l| l.layer).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);

    // Unequal blocks: the shares shift together so that the weighted mean stays 0.6; the most
    // sensitive block (0) still has the fewest zeros.
    let unequal: BTreeMap<usize, u64> = [(0, 4000), (1, 1000), (2, 1000), (3, 1000), (4, 1000)].into();
    let Allotted::Sparsity { layers, .. } = allot_sparsity(0.6, 0.1, &sensitivity, &unequal) else {
        panic!()
    };
    let total: u64 = layers.iter().map(|l| l.params).sum();
    let weighted: f64 = layers.iter().map(|l| l.sparsity * l.params as f64).sum::<f64>() / total as f64;
    assert!((weighted - 0.6).abs() < 1e-12, "{weighted}");
    assert!(layers.iter().all(|l| l.layer == 0 || l.sparsity > layers[0].sparsity), "{layers:?}");

    // One block alone keeps the mean; an N:M pattern or a spread leaving [0, 1) is refused.
    let Allotted::Sparsity { layers, .. } = allot_sparsity(0.5, 0.1, &sensitivity[..1], &equal) else {
        panic!()
    };
    assert_eq!(layers[0].sparsity, 0.5);
    let refused = common::assert_recipe_refused;
    refused(
        r#"{"steps":[{"method":"wanda","pattern":"2:4","allot":"sensitivity"}]}"#,
        "an N:M pattern prunes the same share everywhere",
    );
    refused(
        r#"{"steps":[{"method":"magnitude","sparsity":0.95,"allot":"sensitivity"}]}"#,
        "0.95 ± 0.08 is not",
    );
    refused(
        r#"{"steps":[{"method":"magnitude","allot":"owl"}]}"#,
        "allot must be \"uniform\" or \"sensitivity\"",
    );
    let step = &Recipe::parse(r#"{"steps":[{"method":"sparsegpt","allot":"sensitivity","spread":0.05}]}"#)
        .unwrap()
        .steps[0];
    assert_eq!(step.allotted_sparsity(), Some((0.5, 0.05)));
    let free = step.data_free().with_sparsity(0.45);
    assert_eq!((free.method.as_str(), free.sparsity()), ("magnitude", Some(Sparsity::Unstructured(0.45))));
    assert_eq!(free.allotted_sparsity(), None);
}

// ---------- SparseGPT ----------

/// A⁻¹ by Gauss–Jordan elimination with partial pivoting.
fn gauss_jordan_inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv: Vec<f64> = (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| m[i * n + c].abs().total_cmp(&m[j * n + c].abs())).unwrap();
        for k in 0..n {
            m.swap(c * n + k, p * n + k);
            inv.swap(c * n + k, p * n + k);
        }
        let d = m[c * n + c];
        for k in 0..n {
            m[c * n + k] /= d;
            inv[c * n + k] /= d;
        }
        for i in (0..n).filter(|&i| i != c) {
            let f = m[i * n + c];
            for k in 0..n {
                m[i * n + k] -= f * m[c * n + k];
                inv[i * n + k] -= f * inv[c * n + k];
            }
        }
    }
    inv
}

/// SparseGPT as optimal brain surgeon states it: eliminating column p with the inverse Hessian of the
/// columns not yet visited, Ĥ = (H[p:, p:])⁻¹, moves every later weight of the row by −(w_p − q)/Ĥ₀₀·Ĥ₀ⱼ
/// at once; the saliency of a weight about to be visited at column c is w²/(H[c:, c:])⁻¹₀₀.
#[allow(clippy::needless_range_loop)] // p is the column the reference loop is at, as in the paper's pseudocode
fn plain_sparsegpt(
    w: &[f32],
    rows: usize,
    cols: usize,
    sum_xxt: &[f64],
    tokens: usize,
    o: &SparseGptOptions,
) -> SparseGptResult {
    let mut h: Vec<f64> = sum_xxt.iter().map(|&v| v * 2.0 / tokens as f64).collect();
    let mut w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    for c in 0..cols {
        if h[c * cols + c] == 0.0 {
            h[c * cols + c] = 1.0;
            (0..rows).for_each(|r| w[r * cols + c] = 0.0);
        }
    }
    let lambda = o.damp * (0..cols).map(|c| h[c * cols + c]).sum::<f64>() / cols as f64;
    (0..cols).for_each(|c| h[c * cols + c] += lambda);
    let trailing: Vec<Vec<f64>> = (0..cols)
        .map(|p| {
            let k = cols - p;
            let sub: Vec<f64> = (0..k * k).map(|ij| h[(p + ij / k) * cols + p + ij % k]).collect();
            gauss_jordan_inverse(&sub, k)
        })
        .collect();
    let d = |c: usize| trailing[c][0];
    let saliency = |w: &[f64], i: usize| w[i] * w[i] / d(i % cols);
    let prune_lowest = |mut candidates: Vec<(f64, usize)>, count: usize, mask: &mut [bool]| {
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        candidates[..count].iter().for_each(|&(_, i)| mask[i] = true);
    };
    let mut mask = vec![false; rows * cols];
    let mut loss = 0.0;
    for (p, inverse) in trailing.iter().enumerate() {
        match o.sparsity {
            Sparsity::Unstructured(s) if p % o.block == 0 => {
                let end = (p + o.block).min(cols);
                let at: Vec<(f64, usize)> = (0..rows)
                    .flat_map(|r| (p..end).map(move |c| r * cols + c))
                    .map(|i| (saliency(&w, i), i))
                    .collect();
                let count = (at.len() as f64 * s) as usize;
                prune_lowest(at, count, &mut mask);
            }
            Sparsity::NOfM { n, m } if p % m == 0 => {
                for r in 0..rows {
                    let at = (p..p + m).map(|c| (saliency(&w, r * cols + c), r * cols + c)).collect();
                    prune_lowest(at, m - n, &mut mask);
                }
            }
            _ => {}
        }
        for r in 0..rows {
            let i = r * cols + p;
            let q = if mask[i] { 0.0 } else { w[i] };
            let e = w[i] - q;
            loss += e * e / d(p) / 2.0;
            // Row 0 of Ĥ = (H[p:, p:])⁻¹ against the weights p, p+1, … of this row.
            let later = &mut w[i..(r + 1) * cols];
            for (w, h) in later.iter_mut().zip(inverse).skip(1) {
                *w -= e / d(p) * h;
            }
            w[i] = q;
        }
    }
    SparseGptResult { values: w.iter().map(|&v| v as f32).collect(), mask, loss }
}

fn sgpt(sparsity: Sparsity, block: usize) -> SparseGptOptions {
    SparseGptOptions { sparsity, block, ..SparseGptOptions::default() }
}

#[test]
fn sparsegpt_matches_the_plain_algorithm() {
    let mut rng = Rng::new(3);
    // 20 rows: a full tile of 16 and a partial one; 72 columns: blocks of 32 end in a block of 8.
    let (rows, cols, tokens) = (20, 72, 150);
    let cases = [
        (sgpt(Sparsity::Unstructured(0.5), 32), &[][..]),
        (sgpt(Sparsity::Unstructured(0.3), 16), &[5][..]),
        (sgpt(Sparsity::Unstructured(0.9), 128), &[][..]),
        (sgpt(Sparsity::NOfM { n: 2, m: 4 }, 32), &[][..]),
        (sgpt(Sparsity::NOfM { n: 4, m: 8 }, 16), &[9, 10][..]),
        (SparseGptOptions { damp: 0.3, ..sgpt(Sparsity::NOfM { n: 1, m: 4 }, 8) }, &[][..]),
    ];
    for (o, dead) in cases {
        let h = hessian(&mut rng, tokens, cols, 2.0, 1.0, dead);
        let w = gaussians(&mut rng, rows * cols, 0.05);
        let got = sparsegpt(&w, rows, cols, &to_f32(&h), tokens, &o).unwrap();
        let want = plain_sparsegpt(
            &w,
            rows,
            cols,
            &to_f32(&h).iter().map(|&v| v as f64).collect::<Vec<_>>(),
            tokens,
            &o,
        );
        let what = format!("{o:?}, dead {dead:?}");
        assert_eq!(got.mask, want.mask, "{what}: masks");
        for (i, (&a, &b)) in got.values.iter().zip(&want.values).enumerate() {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{what}: weight {i}: {a} vs {b}");
        }
        assert!(
            (got.loss - want.loss).abs() <= 1e-9 * want.loss,
            "{what}: loss {} vs {}",
            got.loss,
            want.loss
        );

        // Zeros exactly where the mask says (the kept Gaussian weights are never exactly 0), dead
        // columns zero, and the requested sparsity: per block for unstructured, per group for N:M.
        for (i, (&v, &m)) in got.values.iter().zip(&got.mask).enumerate() {
            assert_eq!(v == 0.0, m || dead.contains(&(i % cols)), "{what}: weight {i} = {v}, pruned {m}");
        }
        match o.sparsity {
            Sparsity::Unstructured(s) => {
                for b0 in (0..cols).step_by(o.block) {
                    let len = o.block.min(cols - b0);
                    let pruned = (0..rows).flat_map(|r| (b0..b0 + len).map(move |c| r * cols + c));
                    let count = pruned.filter(|&i| got.mask[i]).count();
                    assert_eq!(count, ((rows * len) as f64 * s) as usize, "{what}: block at {b0}");
                }
            }
            Sparsity::NOfM { n, m } => {
                for (g, group) in got.mask.chunks(m).enumerate() {
                    assert_eq!(group.iter().filter(|&&p| p).count(), m - n, "{what}: group {g}");
                }
            }
        }
    }
}

#[test]
fn sparsegpt_moves_the_outputs_less_than_wanda_and_magnitude() {
    let mut rng = Rng::new(4);
    let (rows, cols, tokens) = (32, 96, 400);
    let h = hessian(&mut rng, tokens, cols, 2.0, 1.0, &[]);
    let w = gaussians(&mut rng, rows * cols, 0.05);
    let sum_sq: Vec<f32> = (0..cols).map(|c| h[c * cols + c] as f32).collect();
    for sparsity in [Sparsity::Unstructured(0.5), Sparsity::NOfM { n: 2, m: 4 }] {
        let masked = |mask: &[bool]| {
            let mut v = w.clone();
            apply(&mut v, mask);
            output_error(&w, &v, &h, cols)
        };
        let got = sparsegpt(&w, rows, cols, &to_f32(&h), tokens, &sgpt(sparsity, 32)).unwrap();
        let compensated = output_error(&w, &got.values, &h, cols);
        let same_mask = masked(&got.mask);
        let wanda = masked(&wanda_mask(&w, rows, cols, &sum_sq, sparsity).unwrap());
        let magnitude = masked(&magnitude_mask(&w, rows, cols, sparsity, Scope::Row));
        eprintln!("{sparsity:?}: SparseGPT {compensated:.4e}, its mask alone {same_mask:.4e}, Wanda {wanda:.4e}, magnitude {magnitude:.4e}");
        assert!(compensated < 0.8 * same_mask, "{sparsity:?}: the update must help");
        assert!(compensated < 0.8 * wanda && wanda < magnitude, "{sparsity:?}");
    }
}

#[test]
fn sparsegpt_refuses_bad_arguments_with_the_numbers() {
    let mut rng = Rng::new(5);
    let (rows, cols) = (4, 30);
    let h = to_f32(&hessian(&mut rng, 64, cols, 1.0, 1.0, &[]));
    let w = gaussians(&mut rng, rows * cols, 1.0);
    let refused = |w: &[f32], h: &[f32], tokens: usize, o: SparseGptOptions, says: &str| match sparsegpt(
        w, rows, cols, h, tokens, &o,
    ) {
        Err(Error::Invalid(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("accepted, wanted \"{says}\": {:?}", other.map(|r| r.loss)),
    };
    let o = SparseGptOptions::default();
    refused(&w[1..], &h, 64, o, "the weights have 119 values, not 4×30");
    refused(&w, &h[1..], 64, o, "the Hessian has 899 entries, not 30×30");
    refused(&w, &h, 0, o, "at least one calibration token");
    refused(&w, &h, 64, SparseGptOptions { block: 0, ..o }, "at least one column");
    refused(&w, &h, 64, SparseGptOptions { damp: f64::NAN, ..o }, "finite number ≥ 0, not NaN");
    refused(&w, &h, 64, sgpt(Sparsity::NOfM { n: 2, m: 4 }, 6), "blocks of 6 columns do not split");
    refused(
        &w,
        &h,
        64,
        sgpt(Sparsity::NOfM { n: 2, m: 4 }, 8),
        "rows of 30 weights do not split into groups of 4",
    );
    let negative: Vec<f32> =
        h.iter().enumerate().map(|(i, &v)| if i % (cols + 1) == 0 { -v } else { v }).collect();
    refused(&w, &negative, 64, SparseGptOptions { damp: 0.0, ..o }, "cannot be inverted");
}

// ---------- the real model ----------

const FIRST_BLOCKS: &str = r"blk\\.[0-3]\\.";

fn recipe(steps: &[&str]) -> String {
    let steps: Vec<String> =
        steps.iter().map(|s| format!(r#"{{{s}, "target": "{FIRST_BLOCKS}"}}"#)).collect();
    format!(r#"{{"steps": [{}]}}"#, steps.join(", "))
}

/// (name, shape, values) of every matrix a recipe rewrote, as the model stores them now.
fn stored(b: &Bench, c: &Compressed) -> Vec<(String, usize, Vec<f32>)> {
    let mut names: Vec<&str> = c.report.tensors.iter().map(|t| t.name.as_str()).collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let t = c.model.tensor(name).unwrap();
            let cols = c.model.header.tensor(name).unwrap().cols() as usize;
            (name.to_string(), cols, pollster::block_on(dequantize_to_vec(&b.gpu, t)).unwrap())
        })
        .collect()
}

fn zeros(v: &[f32]) -> usize {
    v.iter().filter(|&&x| x == 0.0).count()
}

/// Every group of `m` consecutive weights of every rewritten matrix holds at least m − n zeros, and the
/// reported sparsity is the share of zeros actually stored.
fn assert_n_of_m(b: &Bench, c: &Compressed, n: usize, m: usize, what: &str) {
    for (name, _, v) in stored(b, c) {
        for (g, group) in v.chunks(m).enumerate() {
            assert!(zeros(group) >= m - n, "{what}: {name} group {g}: {group:?}");
        }
        let t = c.report.tensors.iter().rev().find(|t| t.name == name).unwrap();
        assert_eq!(t.sparsity, zeros(&v) as f64 / v.len() as f64, "{what}: {name}");
    }
}

#[test]
fn wanda_and_sparsegpt_beat_magnitude_on_smollm2() {
    let b = bench();
    let mut kld = std::collections::HashMap::new();
    for pattern in ["", "2:4"] {
        for method in ["magnitude", "wanda", "sparsegpt"] {
            let what = format!("{method} {}", if pattern.is_empty() { "50%" } else { pattern });
            let (c, d) = b.run(&recipe(&[&format!(r#""method": "{method}", "pattern": "{pattern}""#)]));
            assert_sizes_honest(&c);
            assert_eq!(c.report.tensors.len(), 4 * 7, "{what}");
            assert!(c.report.tensors.iter().all(|t| t.dtype_after == "F16" && t.bpw == 16.0), "{what}");
            assert!(
                c.report.steps[0].notes[0].contains("smaller than dense only below 50.0% density"),
                "{what}"
            );
            // Half of every row (or group of 4) is zero; a kept Q4_1 weight is 0 only by chance.
            assert!((0.5..0.5005).contains(&c.report.sparsity), "{what}: sparsity {}", c.report.sparsity);
            match pattern {
                "" if method != "sparsegpt" => {
                    for (name, cols, v) in stored(&b, &c) {
                        for (r, row) in v.chunks(cols).enumerate() {
                            assert!(
                                zeros(row) >= cols / 2 && zeros(row) < cols / 2 + 3,
                                "{what}: {name} row {r}"
                            );
                        }
                    }
                }
                "" => {}
                _ => assert_n_of_m(&b, &c, 2, 4, &what),
            }
            kld.insert(what, d.kld);
        }
    }
    for pattern in ["50%", "2:4"] {
        let magnitude = kld[&format!("magnitude {pattern}")];
        for method in ["wanda", "sparsegpt"] {
            let k = kld[&format!("{method} {pattern}")];
            assert!(k < 0.9 * magnitude, "{method} {pattern}: KLD {k} vs magnitude {magnitude}");
        }
    }
}

/// Magnitude pruning at 60% on blocks 0–3, the sparsity allotted by sensitivity (± 0.1): each block
/// holds the share it was allotted, the most sensitive block the fewest zeros, the whole the same 60% —
/// and the model moves less than with 60% everywhere.
#[test]
fn sparsity_allotted_by_sensitivity_beats_uniform_magnitude_on_smollm2() {
    let b = bench();
    let (_, uniform) = b.run(&recipe(&[r#""method": "magnitude", "sparsity": 0.6"#]));
    let (c, allotted) =
        b.run(&recipe(&[r#""method": "magnitude", "sparsity": 0.6, "allot": "sensitivity", "spread": 0.1"#]));
    assert_sizes_honest(&c);
    let a = &c.report.allotments[0];
    let Allotted::Sparsity { layers, .. } = &a.allotted else { panic!("{:?}", a.allotted) };
    assert_eq!(layers.iter().map(|l| l.layer).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let most = a.sensitivity.iter().max_by(|x, y| x.kld.total_cmp(&y.kld)).unwrap().layer;
    let least = a.sensitivity.iter().min_by(|x, y| x.kld.total_cmp(&y.kld)).unwrap().layer;
    let share = |l: usize| layers.iter().find(|s| s.layer == l).unwrap().sparsity;
    assert!((share(most) - 0.5).abs() < 1e-9 && (share(least) - 0.7).abs() < 1e-9, "{layers:?}");
    for t in &c.report.tensors {
        let want = share(t.layer.unwrap());
        assert!((t.sparsity - want).abs() < 0.002, "{}: {} zeros, allotted {want}", t.name, t.sparsity);
    }
    assert!((c.report.sparsity - 0.6).abs() < 0.002, "{}", c.report.sparsity);
    assert!(c.report.steps[0].notes.iter().any(|n| n.starts_with("sparsity 0.6 ± 0.1 by block sensitivity")));
    assert!(
        allotted.kld < 0.95 * uniform.kld,
        "allotted: KLD {} vs 60% in every block: {}",
        allotted.kld,
        uniform.kld
    );
}

#[test]
fn magnitude_prunes_exactly_the_smallest_real_weights_and_quantisers_keep_the_zeros() {
    let b = bench();
    // Magnitude on the real weights: zero exactly where the mask of the original values says, the
    // others the original in F16.
    let (c, _) = b.run(&recipe(&[r#""method": "magnitude", "sparsity": 0.3"#]));
    for (name, cols, v) in stored(&b, &c) {
        let original = pollster::block_on(dequantize_to_vec(&b.gpu, b.model.tensor(&name).unwrap())).unwrap();
        let mask =
            magnitude_mask(&original, original.len() / cols, cols, Sparsity::Unstructured(0.3), Scope::Row);
        for (i, ((&got, &was), &pruned)) in v.iter().zip(&original).zip(&mask).enumerate() {
            let want = if pruned { 0.0 } else { half::f16::from_f32(was).to_f32() };
            assert_eq!(got, want, "{name}[{i}]");
        }
    }

    // 2:4 SparseGPT, then int4 groups of 128: the quantiser reads the pruned values, its grid holds 0,
    // the structure survives, and the model is stored (and counted) as int4 only.
    let (rtn_alone, rtn) = b.run(&recipe(&[r#""method": "rtn", "bits": 4, "group": 128"#]));
    let (c, both) = b.run(&recipe(&[
        r#""method": "sparsegpt", "pattern": "2:4""#,
        r#""method": "rtn", "bits": 4, "group": 128"#,
    ]));
    assert_sizes_honest(&c);
    assert_eq!(c.report.steps[1].zeros_lost, 0);
    assert!(c.report.steps[1].sparsity >= c.report.steps[0].sparsity);
    assert_n_of_m(&b, &c, 2, 4, "sparsegpt 2:4 + rtn int4");
    assert_eq!(c.report.bpw_compressed, rtn_alone.report.bpw_compressed);
    assert_eq!(c.report.size_bytes, rtn_alone.report.size_bytes);
    assert!(both.kld > rtn.kld, "pruning adds error: KLD {} vs rtn alone {}", both.kld, rtn.kld);

    // Q4_1's grid has no exact 0 (value = code·d + min): the report says the zeros were lost.
    let (c, _) = b.run(&recipe(&[r#""method": "magnitude""#, r#""method": "rtn", "format": "q4_1""#]));
    assert!(c.report.steps[1].zeros_lost > 1_000_000, "{}", c.report.steps[1].zeros_lost);
    assert!(c.report.steps[1].sparsity < 0.1);
}
