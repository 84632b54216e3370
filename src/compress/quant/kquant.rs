//! ggml's K-quants fitted on the CPU: super-blocks of 256 weights in the byte layouts of ggml-common.h,
//! which `cpu::dequant` decodes and the matmul kernels read.
//!
//! Q4_K: eight sub-blocks of 32, each x ≈ s·q − m with q in 0..15, s and m stored as 6-bit multiples
//! of the super-block's f16 `d` and `dmin`. Q6_K: sixteen sub-blocks of 16, each x ≈ s·q with q in
//! −32..31, s stored as an i8 multiple of the f16 `d`.
//!
//! `Fit::Searched`, per super-block:
//! 1. each sub-block's scale (and min) is searched: 21 candidate scales around the min/max one, each
//!    rounded and refitted by least squares; the best is refined by alternately rounding and refitting
//!    while the squared error falls;
//! 2. the sub-block scales (and mins) are quantised against the super-block scale, the largest onto the
//!    top level;
//! 3. each sub-block's stored scale (and min) is chosen among the neighbours of its rounded value by
//!    the squared error of its codes re-rounded on the grid as stored.
//!
//! `Fit::MinMax` takes each sub-block's range and rounds once (no steps 1 and 3): the baseline that
//! shows what the search buys.

use super::grid::{Quantized, Scheme};
use crate::cpu::dequant::dequantize;
use crate::error::{Error, Result};
use crate::formats::DType;

/// Weights per super-block.
pub const QK_K: usize = 256;

/// How each sub-block's scale (and min) is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    MinMax,
    Searched,
}

/// Quantise a (rows, cols) matrix to `scheme` (Q4_K or Q6_K); `cols` must be a multiple of 256
/// (`grid::Format::for_row` gives llama.cpp's fallback for other rows).
pub fn quantize(scheme: Scheme, w: &[f32], rows: usize, cols: usize, fit: Fit) -> Result<Quantized> {
    let dtype = match scheme {
        Scheme::Q4_K => DType::Q4_K,
        Scheme::Q6_K => DType::Q6_K,
        other => return Err(Error::Invalid(format!("{other:?} is not a K-quant (Q4_K, Q6_K)"))),
    };
    if !cols.is_multiple_of(QK_K) {
        return Err(Error::Invalid(format!(
            "{dtype} stores rows in super-blocks of {QK_K}; rows of {cols} need llama.cpp's fallback format"
        )));
    }
    if w.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "a ({rows}, {cols}) matrix has {} weights, not {}",
            rows * cols,
            w.len()
        )));
    }
    let mut bytes = Vec::with_capacity(w.len() / QK_K * dtype.block_bytes() as usize);
    for x in w.chunks_exact(QK_K) {
        match scheme {
            Scheme::Q4_K => q4_k_block(x, fit, &mut bytes),
            _ => q6_k_block(x, fit, &mut bytes),
        }
    }
    let values = dequantize(dtype, &bytes, w.len())?;
    Ok(Quantized { dtype, bytes, values })
}

fn f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// Candidate scales of step 1: the min/max scale's level count moved by −1 … +1 in steps of 0.1.
const CANDIDATES: i32 = 10;
/// Rounds of alternating rounding and refitting at most.
const REFINE: usize = 8;

// ---- Q4_K: x ≈ s·q − m, q in 0..15 -------------------------------------------------------------

const Q4_TOP: f32 = 15.0;

/// The codes of `x` on the grid s·q − m.
fn affine_codes(x: &[f32], s: f32, m: f32, q: &mut [f32]) {
    for (q, &v) in q.iter_mut().zip(x) {
        *q = if s > 0.0 { ((v + m) / s).round().clamp(0.0, Q4_TOP) } else { 0.0 };
    }
}

fn affine_error(x: &[f32], s: f32, m: f32, q: &[f32]) -> f32 {
    x.iter().zip(q).map(|(&v, &q)| (s * q - m - v).powi(2)).sum()
}

/// The least-squares (s, m) for fixed codes, with s > 0 and m ≥ 0 (the stored min is subtracted, so
/// a positive offset is fitted as m = 0); None when the codes cannot determine a scale.
fn affine_refit(x: &[f32], q: &[f32]) -> Option<(f32, f32)> {
    let n = x.len() as f64;
    let (mut sq, mut sqq, mut sx, mut sqx) = (0f64, 0f64, 0f64, 0f64);
    for (&v, &q) in x.iter().zip(q) {
        let (v, q) = (v as f64, q as f64);
        sq += q;
        sqq += q * q;
        sx += v;
        sqx += q * v;
    }
    let det = n * sqq - sq * sq;
    if det <= 0.0 {
        return None;
    }
    let (mut s, mut b) = ((n * sqx - sq * sx) / det, (sqq * sx - sq * sqx) / det);
    if b > 0.0 {
        (s, b) = (sqx / sqq, 0.0);
    }
    (s > 0.0).then_some((s as f32, -b as f32))
}

/// Step 1 for one Q4_K sub-block: its (s, m).
fn fit_affine(x: &[f32], fit: Fit) -> (f32, f32) {
    let lo = x.iter().fold(0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(f32::MIN, |a, &v| a.max(v));
    if hi <= lo {
        return (0.0, -lo);
    }
    let minmax = ((hi - lo) / Q4_TOP, -lo);
    if fit == Fit::MinMax {
        return minmax;
    }
    search(
        x.len(),
        minmax,
        (-CANDIDATES..=CANDIDATES).map(|k| ((hi - lo) / (Q4_TOP + 0.1 * k as f32), -lo)),
        |(s, m), q| affine_codes(x, s, m, q),
        |q| affine_refit(x, q),
        |(s, m), q| affine_error(x, s, m, q),
    )
}

/// Step 1's search for either fit: from the min/max parameters `minmax`, each candidate's codes refitted
/// by least squares, then rounding and refitting alternately from the best while the squared error falls.
fn search<P: Copy>(
    n: usize,
    minmax: P,
    candidates: impl IntoIterator<Item = P>,
    codes: impl Fn(P, &mut [f32]),
    refit: impl Fn(&[f32]) -> Option<P>,
    error: impl Fn(P, &[f32]) -> f32,
) -> P {
    let mut q = vec![0f32; n];
    let score = |p: P, q: &mut [f32]| {
        codes(p, q);
        error(p, q)
    };
    let mut best = (score(minmax, &mut q), minmax);
    for candidate in candidates {
        codes(candidate, &mut q);
        if let Some(refit) = refit(&q) {
            let e = score(refit, &mut q);
            if e < best.0 {
                best = (e, refit);
            }
        }
    }
    for _ in 0..REFINE {
        codes(best.1, &mut q);
        let Some(refit) = refit(&q) else { break };
        let e = score(refit, &mut q);
        if e >= best.0 {
            break;
        }
        best = (e, refit);
    }
    best.1
}

/// `v` in steps of `unit`, as a 6-bit level.
fn level6(v: f32, unit: f32) -> u8 {
    if unit > 0.0 {
        (v / unit).round().clamp(0.0, 63.0) as u8
    } else {
        0
    }
}

/// One 144-byte Q4_K block: d, dmin f16; scales[12] (6-bit sc and m of 8 sub-blocks); qs[128].
fn q4_k_block(x: &[f32], fit: Fit, out: &mut Vec<u8>) {
    let fits: Vec<(f32, f32)> = x.chunks_exact(32).map(|sub| fit_affine(sub, fit)).collect();
    let d = f16(fits.iter().fold(0f32, |a, f| a.max(f.0)) / 63.0);
    let dmin = f16(fits.iter().fold(0f32, |a, f| a.max(f.1)) / 63.0);
    let mut q = [0f32; QK_K];
    let mut levels = [(0u8, 0u8); 8];
    for (j, (sub, &(s, m))) in x.chunks_exact(32).zip(&fits).enumerate() {
        let q = &mut q[32 * j..32 * j + 32];
        // The stored scale and min, as the decoder forms them.
        let stored = |(sc, mn): (u8, u8), q: &mut [f32]| {
            let (s, m) = (d * sc as f32, dmin * mn as f32);
            affine_codes(sub, s, m, q);
            affine_error(sub, s, m, q)
        };
        let rounded = (level6(s, d), level6(m, dmin));
        let mut best = (stored(rounded, q), rounded);
        if fit == Fit::Searched {
            for (ds, dm) in (-1i32..=1).flat_map(|a| (-1i32..=1).map(move |b| (a, b))) {
                let near = |l: u8, by: i32| (l as i32 + by).clamp(0, 63) as u8;
                let c = (near(rounded.0, ds), near(rounded.1, dm));
                let e = stored(c, q);
                if e < best.0 {
                    best = (e, c);
                }
            }
        }
        stored(best.1, q);
        levels[j] = best.1;
    }
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out.extend(half::f16::from_f32(dmin).to_le_bytes());
    out.extend(pack_scale_min_k4(&levels));
    for chunk in 0..4 {
        let q = |i: usize| q[64 * chunk + i] as u8;
        out.extend((0..32).map(|l| q(l) | q(32 + l) << 4));
    }
}

/// The 12 scale bytes of Q4_K/Q5_K (the inverse of `cpu::dequant::scale_min_k4`): sub-blocks 0–3 in
/// the low 6 bits of bytes j (scale) and j+4 (min); 4–7 with their low 4 bits in byte j+4 and their top
/// 2 bits in the spare top bits of bytes j−4 (scale) and j (min).
fn pack_scale_min_k4(levels: &[(u8, u8); 8]) -> [u8; 12] {
    let mut b = [0u8; 12];
    for (j, &(sc, m)) in levels.iter().enumerate() {
        if j < 4 {
            b[j] |= sc & 63;
            b[j + 4] |= m & 63;
        } else {
            b[j + 4] = (sc & 0x0F) | (m & 0x0F) << 4;
            b[j - 4] |= (sc >> 4) << 6;
            b[j] |= (m >> 4) << 6;
        }
    }
    b
}

// ---- Q6_K: x ≈ s·q, q in −32..31 ---------------------------------------------------------------

fn symmetric_codes(x: &[f32], s: f32, q: &mut [f32]) {
    for (q, &v) in q.iter_mut().zip(x) {
        *q = if s != 0.0 { (v / s).round().clamp(-32.0, 31.0) } else { 0.0 };
    }
}

fn symmetric_error(x: &[f32], s: f32, q: &[f32]) -> f32 {
    x.iter().zip(q).map(|(&v, &q)| (s * q - v).powi(2)).sum()
}

/// The least-squares scale for fixed codes; None when every code is 0.
fn symmetric_refit(x: &[f32], q: &[f32]) -> Option<f32> {
    let sqq: f64 = q.iter().map(|&q| (q * q) as f64).sum();
    let sqx: f64 = x.iter().zip(q).map(|(&v, &q)| (q * v) as f64).sum();
    (sqq > 0.0).then(|| (sqx / sqq) as f32)
}

/// Step 1 for one Q6_K sub-block: its signed scale. The min/max scale puts the extreme on −32, the
/// wider side of the code range; candidates also try it on +31.
fn fit_symmetric(x: &[f32], fit: Fit) -> f32 {
    let extreme = x.iter().fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
    if extreme == 0.0 {
        return 0.0;
    }
    let minmax = extreme / -32.0;
    if fit == Fit::MinMax {
        return minmax;
    }
    let candidates = [-32.0, 31.0]
        .into_iter()
        .flat_map(|top| (-CANDIDATES..=CANDIDATES).map(move |k| extreme / (top + 0.1 * k as f32)));
    search(
        x.len(),
        minmax,
        candidates,
        |s, q| symmetric_codes(x, s, q),
        |q| symmetric_refit(x, q),
        |s, q| symmetric_error(x, s, q),
    )
}

/// One 210-byte Q6_K block: ql[128], qh[64], i8 scales[16], d f16.
fn q6_k_block(x: &[f32], fit: Fit, out: &mut Vec<u8>) {
    let scales: Vec<f32> = x.chunks_exact(16).map(|sub| fit_symmetric(sub, fit)).collect();
    // The scale of largest magnitude goes to level −128, the wider side of i8.
    let widest = scales.iter().fold(0f32, |a, &s| if s.abs() > a.abs() { s } else { a });
    let d = f16(widest / -128.0);
    let level = |s: f32| if d != 0.0 { (s / d).round().clamp(-128.0, 127.0) as i8 } else { 0 };
    let mut q = [0f32; QK_K];
    let mut levels = [0i8; 16];
    for (j, (sub, &s)) in x.chunks_exact(16).zip(&scales).enumerate() {
        let q = &mut q[16 * j..16 * j + 16];
        let stored = |sc: i8, q: &mut [f32]| {
            let s = d * sc as f32;
            symmetric_codes(sub, s, q);
            symmetric_error(sub, s, q)
        };
        let rounded = level(s);
        let mut best = (stored(rounded, q), rounded);
        if fit == Fit::Searched {
            for by in [-1i16, 1] {
                let c = (rounded as i16 + by).clamp(-128, 127) as i8;
                let e = stored(c, q);
                if e < best.0 {
                    best = (e, c);
                }
            }
        }
        stored(best.1, q);
        levels[j] = best.1;
    }
    let code = |i: usize| (q[i] + 32.0) as u8;
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for half in 0..2 {
        for l in 0..32 {
            let c = |quarter: usize| code(128 * half + 32 * quarter + l);
            ql[64 * half + l] = (c(0) & 0x0F) | (c(2) & 0x0F) << 4;
            ql[64 * half + 32 + l] = (c(1) & 0x0F) | (c(3) & 0x0F) << 4;
            qh[32 * half + l] = c(0) >> 4 | (c(1) >> 4) << 2 | (c(2) >> 4) << 4 | (c(3) >> 4) << 6;
        }
    }
    out.extend(ql);
    out.extend(qh);
    out.extend(levels.map(|l| l as u8));
    out.extend(half::f16::from_f32(d).to_le_bytes());
}
