//! GPTQ, OWQ and SpQR against a plain GPTQ written here (column by column, every update applied at once:
//! no blocks, no lazy update, no tiles, GPTQ's own Cholesky → inverse → Cholesky path), and against
//! round-to-nearest on the output error tr(ΔHΔᵀ); and the small linear algebra under them. No GPU needed.

mod common;

use common::hessians::{gaussian, gaussians, hessian, output_error, to_f32};
use common::Rng;
use squeeze::compress::linalg;
use squeeze::compress::quant::gptq::{gptq, GptqOptions, GptqResult, Outliers};
use squeeze::compress::quant::grid::{pack, quantize_rtn, Format, Granularity, Grid, Scheme};
use squeeze::cpu::dequant::dequantize;
use squeeze::error::Error;
use squeeze::formats::packed::read_header;
use squeeze::formats::DType;
use std::ops::Range;

/// What the algorithm decided: the decoded values with the kept weights' corrections added.
fn decided(r: &GptqResult, cols: usize) -> Vec<f32> {
    let mut v = r.quantized.values.clone();
    for &(row, col, c) in &r.outliers {
        v[row as usize * cols + col as usize] += c;
    }
    v
}

fn format(scheme: Scheme, granularity: Granularity) -> Format {
    Format { scheme, granularity, search: false }
}

fn int(bits: u8, sym: bool, granularity: Granularity) -> Format {
    format(Scheme::Int { bits, sym }, granularity)
}

fn opts(act_order: bool, block: usize, outliers: Outliers) -> GptqOptions {
    GptqOptions { act_order, block, outliers, ..GptqOptions::default() }
}

// ---------- the plain algorithm ----------

/// GPTQ as the paper states it, one column at a time with every later column updated at once.
struct Plain {
    format: Format,
    n: usize,
    group: usize,
    w: Vec<f32>,
    order: Vec<usize>,
    position: Vec<usize>,
    /// (n, n) upper, loop order.
    u: Vec<f64>,
    kept: Vec<bool>,
    /// Grids fitted before the loop, (rows, groups); none when groups are fitted as the loop reaches them.
    static_grids: Option<Vec<Grid>>,
}

struct PlainResult {
    bytes: Vec<u8>,
    values: Vec<f32>,
    outliers: Vec<(u32, u32, f32)>,
    loss: f64,
    kept_columns: Vec<usize>,
}

impl Plain {
    fn new(
        w: &[f32],
        rows: usize,
        n: usize,
        hessian: &[f32],
        tokens: usize,
        format: &Format,
        o: &GptqOptions,
    ) -> Plain {
        let group = format.group_len(n);
        let mut w = w.to_vec();
        let mut h: Vec<f64> = hessian.iter().map(|&v| v as f64 * 2.0 / tokens as f64).collect();
        for i in 0..n {
            if h[i * n + i] == 0.0 {
                h[i * n + i] = 1.0;
                (0..rows).for_each(|r| w[r * n + i] = 0.0);
            }
        }
        let mut kept = vec![false; n];
        if let Outliers::Columns(count) = o.outliers {
            let rtn = quantize_rtn(format, &w, rows, n).unwrap().values;
            let cost = |c: usize| {
                let err: f64 = (0..rows).map(|r| (w[r * n + c] as f64 - rtn[r * n + c] as f64).powi(2)).sum();
                err * h[c * n + c]
            };
            let mut by_cost: Vec<usize> = (0..n).collect();
            by_cost.sort_by(|&a, &b| cost(b).total_cmp(&cost(a)));
            by_cost[..count].iter().for_each(|&c| kept[c] = true);
        }
        let mut order: Vec<usize> = (0..n).collect();
        if o.act_order {
            order.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]));
        }
        order.sort_by_key(|&c| kept[c]);
        let mut position = vec![0; n];
        order.iter().enumerate().for_each(|(p, &c)| position[c] = p);

        let damp = o.damp * (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64;
        let mut hp = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                hp[i * n + j] = h[order[i] * n + order[j]] + if i == j { damp } else { 0.0 };
            }
        }
        // cholesky(cholesky_inverse(cholesky(H)), upper=True): the upper factor is the lower one transposed.
        let l = linalg::cholesky(&linalg::inverse(&hp, n).unwrap(), n).unwrap();
        let u = (0..n * n).map(|i| l[(i % n) * n + i / n]).collect();

        let mut plain = Plain { format: *format, n, group, w, order, position, u, kept, static_grids: None };
        let one_grid =
            format.granularity == Granularity::Tensor && matches!(format.dtype(n).unwrap(), DType::Packed(_));
        let groups = n.div_ceil(group);
        plain.static_grids = if one_grid {
            let values: Vec<f32> = (0..rows).flat_map(|r| plain.fit_values(r, 0, &plain.w)).collect();
            Some(vec![format.fit(&values); rows])
        } else if o.act_order || group == n {
            Some(
                (0..rows)
                    .flat_map(|r| (0..groups).map(move |g| (r, g)))
                    .map(|(r, g)| plain.fit_original(r, g))
                    .collect(),
            )
        } else {
            None
        };
        plain
    }

    /// The columns of group `g` its grid is fitted on: those rounded, or all when all are kept.
    fn fit_columns(&self, g: usize) -> Vec<usize> {
        let all: Vec<usize> = (g * self.group..((g + 1) * self.group).min(self.n)).collect();
        let rounded: Vec<usize> = all.iter().copied().filter(|&c| !self.kept[c]).collect();
        if rounded.is_empty() {
            all
        } else {
            rounded
        }
    }

    fn fit_values(&self, r: usize, g: usize, w: &[f32]) -> Vec<f32> {
        self.fit_columns(g).iter().map(|&c| w[r * self.n + c]).collect()
    }

    fn fit_original(&self, r: usize, g: usize) -> Grid {
        self.format.fit(&self.fit_values(r, g, &self.w))
    }

    fn run(&self, rows: usize, o: &GptqOptions) -> PlainResult {
        let (n, groups) = (self.n, self.n.div_ceil(self.group));
        let mut codes = vec![0u8; rows * n];
        let mut grids = Vec::new();
        let mut outliers = Vec::new();
        let mut loss = 0.0;
        for r in 0..rows {
            let mut row = PlainRow {
                w: self.order.iter().map(|&c| self.w[r * n + c] as f64).collect(),
                grids: match &self.static_grids {
                    Some(g) => g[r * groups..(r + 1) * groups].iter().copied().map(Some).collect(),
                    None => vec![None; groups],
                },
            };
            for start in (0..n).step_by(o.block) {
                let block = start..(start + o.block).min(n);
                let bar = match o.outliers {
                    Outliers::Weights { threshold } => {
                        let steps = self.columns(&mut row.clone(), block.clone(), f64::INFINITY);
                        threshold as f64 * steps.iter().map(|s| s.e * s.e).sum::<f64>() / steps.len() as f64
                    }
                    _ => f64::INFINITY,
                };
                for s in self.columns(&mut row, block, bar) {
                    codes[r * n + s.column] = s.code;
                    loss += s.e * s.e / 2.0;
                    if let Some(c) = s.correction {
                        outliers.push((r as u32, s.column as u32, c));
                    }
                }
            }
            grids.extend(row.grids.iter().map(|g| g.unwrap()));
        }
        outliers.sort_by_key(|&(r, c, _)| (r, c));
        let q = pack(&self.format, rows, n, &grids, &codes).unwrap();
        let kept_columns = (0..n).filter(|&c| self.kept[c]).collect();
        PlainResult { bytes: q.bytes, values: q.values, outliers, loss, kept_columns }
    }

    /// Quantise loop positions `range` of `row`; weights whose ((w − q)/U_pp)² exceeds `bar` are kept.
    fn columns(&self, row: &mut PlainRow, range: Range<usize>, bar: f64) -> Vec<Step> {
        let n = self.n;
        let mut steps = Vec::new();
        for p in range {
            let column = self.order[p];
            let g = column / self.group;
            if row.grids[g].is_none() {
                let values: Vec<f32> =
                    self.fit_columns(g).iter().map(|&c| row.w[self.position[c]] as f32).collect();
                row.grids[g] = Some(self.format.fit(&values));
            }
            let grid = row.grids[g].unwrap();
            let w = row.w[p];
            let code = grid.code(w as f32);
            let q = grid.value(code);
            let mut e = (w - q as f64) / self.u[p * n + p];
            let mut correction = None;
            if self.kept[column] || e * e > bar {
                correction = Some(w as f32 - q);
                e = 0.0;
            }
            for j in p + 1..n {
                row.w[j] -= e * self.u[p * n + j];
            }
            steps.push(Step { column, code, e, correction });
        }
        steps
    }
}

#[derive(Clone)]
struct PlainRow {
    w: Vec<f64>,
    grids: Vec<Option<Grid>>,
}

struct Step {
    column: usize,
    code: u8,
    e: f64,
    correction: Option<f32>,
}

fn plain_gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f32],
    tokens: usize,
    f: &Format,
    o: &GptqOptions,
) -> PlainResult {
    Plain::new(w, rows, cols, h, tokens, f, o).run(rows, o)
}

/// GPTQ and the plain algorithm agree: the same bytes (codes and grids), corrections and loss.
fn assert_same(got: &GptqResult, want: &PlainResult, what: &str) {
    assert!(got.quantized.bytes == want.bytes, "{what}: the packed bytes differ");
    assert_eq!(got.quantized.values, want.values, "{what}");
    assert_eq!(got.outliers.len(), want.outliers.len(), "{what}: kept weights");
    for (a, b) in got.outliers.iter().zip(&want.outliers) {
        assert_eq!((a.0, a.1), (b.0, b.1), "{what}: kept weights");
        assert!((a.2 - b.2).abs() <= 1e-5 * (1.0 + b.2.abs()), "{what}: correction {a:?} vs {b:?}");
    }
    assert!(
        (got.loss - want.loss).abs() <= 1e-9 * want.loss.max(1e-30),
        "{what}: loss {} vs {}",
        got.loss,
        want.loss
    );
}

/// Formats of every scheme at a granularity `cols` allows (the GGUF block formats are groups of 32).
fn formats() -> Vec<Format> {
    let g32 = Granularity::Group(32);
    vec![
        int(4, false, g32),
        int(3, false, Granularity::Channel),
        format(Scheme::Q4_0, Granularity::Channel),
        format(Scheme::Nf4, g32),
        Format { search: true, ..int(4, true, Granularity::Group(64)) },
        int(8, true, Granularity::Tensor),
        int(2, false, Granularity::Group(96)),
        format(Scheme::Fp4, g32),
        format(Scheme::Fp8E4M3, Granularity::Channel),
        format(Scheme::Fp8E5M2, g32),
        format(Scheme::Mxfp4, Granularity::Tensor),
        format(Scheme::Q8_0, g32),
        format(Scheme::Q4_1, g32),
    ]
}

// ---------- GPTQ ----------

#[test]
fn gptq_matches_the_plain_algorithm_and_decodes_to_its_values() {
    let mut rng = Rng::new(1);
    let mut compared = 0;
    for (rows, cols) in [(7, 64), (48, 96), (48, 160)] {
        let h = hessian(&mut rng, 2 * cols, cols, 2.0, 1.0, &[]);
        let h32 = to_f32(&h);
        let w = gaussians(&mut rng, rows * cols, 0.05);
        for f in formats().iter().filter(|f| f.dtype(cols).is_ok()) {
            // Blocks of 24 cut groups of 32 and 64, and of 1 make every update a lazy one.
            for (act_order, block) in [(false, 128), (true, 128), (false, 24), (true, 1), (false, 1)] {
                let o = opts(act_order, block, Outliers::None);
                let what = format!("{rows}×{cols} {} act_order {act_order} block {block}", f.describe());
                let got = gptq(&w, rows, cols, &h32, 2 * cols, f, &o).unwrap();
                assert_same(&got, &plain_gptq(&w, rows, cols, &h32, 2 * cols, f, &o), &what);
                let decoded = dequantize(got.quantized.dtype, &got.quantized.bytes, rows * cols).unwrap();
                assert_eq!(decoded, got.quantized.values, "{what}: the bytes decode to the values");
                assert!(got.outliers.is_empty() && got.loss > 0.0, "{what}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 150, "only {compared} cases ran");
}

#[test]
fn gptq_moves_the_outputs_less_than_rounding() {
    let mut rng = Rng::new(2);
    let (rows, cols, tokens) = (48, 160, 320);
    let h = hessian(&mut rng, tokens, cols, 2.0, 1.0, &[]);
    let w = gaussians(&mut rng, rows * cols, 0.05);
    let g32 = Granularity::Group(32);
    let cases = [
        int(4, false, g32),
        int(3, false, Granularity::Channel),
        format(Scheme::Q4_0, g32),
        format(Scheme::Nf4, g32),
    ];
    for f in cases {
        let rtn = output_error(&w, &quantize_rtn(&f, &w, rows, cols).unwrap().values, &h, cols);
        for act_order in [false, true] {
            let got =
                gptq(&w, rows, cols, &to_f32(&h), tokens, &f, &opts(act_order, 128, Outliers::None)).unwrap();
            let err = output_error(&w, &got.quantized.values, &h, cols);
            println!(
                "{} act_order {act_order}: GPTQ {err:.4e}, RTN {rtn:.4e}, ratio {:.3}",
                f.describe(),
                err / rtn
            );
            assert!(err < 0.8 * rtn, "{} act_order {act_order}: GPTQ {err} vs RTN {rtn}", f.describe());
        }
    }
}

#[test]
fn act_order_permutes_and_fits_static_groups_on_the_original_weights() {
    let mut rng = Rng::new(3);
    let (rows, cols, tokens) = (7, 96, 192);
    let h32 = to_f32(&hessian(&mut rng, tokens, cols, 2.0, 1.0, &[]));
    let w = gaussians(&mut rng, rows * cols, 0.05);
    for f in [int(4, false, Granularity::Group(32)), int(3, false, Granularity::Channel)] {
        let ordered = gptq(&w, rows, cols, &h32, tokens, &f, &opts(true, 128, Outliers::None)).unwrap();
        let plain = gptq(&w, rows, cols, &h32, tokens, &f, &opts(false, 128, Outliers::None)).unwrap();
        assert_ne!(ordered.quantized.values, plain.quantized.values, "act-order changes the result");
        // Round-to-nearest fits every grid on the original weights too: the block headers agree.
        let rtn = quantize_rtn(&f, &w, rows, cols).unwrap();
        let DType::Packed(p) = rtn.dtype else { panic!("{} is a packed format", f.describe()) };
        let block = rtn.dtype.block_bytes() as usize;
        for (a, b) in ordered.quantized.bytes.chunks_exact(block).zip(rtn.bytes.chunks_exact(block)) {
            assert_eq!(read_header(p.kind, a), read_header(p.kind, b), "{}", f.describe());
        }
    }
}

#[test]
fn dead_columns_get_zero_weights_and_no_error() {
    let mut rng = Rng::new(4);
    let (rows, cols, tokens) = (48, 96, 192);
    let dead = [5, 40, 41, 95];
    let h = hessian(&mut rng, tokens, cols, 2.0, 1.0, &dead);
    let w = gaussians(&mut rng, rows * cols, 0.05);
    let f = int(4, false, Granularity::Group(32));
    for act_order in [false, true] {
        let o = opts(act_order, 128, Outliers::None);
        let got = gptq(&w, rows, cols, &to_f32(&h), tokens, &f, &o).unwrap();
        assert_same(&got, &plain_gptq(&w, rows, cols, &to_f32(&h), tokens, &f, &o), "dead columns");
        for r in 0..rows {
            for &c in &dead {
                assert_eq!(got.quantized.values[r * cols + c], 0.0, "row {r} column {c}");
            }
        }
        let rtn = output_error(&w, &quantize_rtn(&f, &w, rows, cols).unwrap().values, &h, cols);
        assert!(output_error(&w, &got.quantized.values, &h, cols) < rtn);
    }
}

#[test]
fn bad_arguments_are_refused_with_the_numbers() {
    let mut rng = Rng::new(5);
    let (rows, cols) = (3, 64);
    let h = to_f32(&hessian(&mut rng, 64, cols, 1.0, 1.0, &[]));
    let w = gaussians(&mut rng, rows * cols, 1.0);
    let f = int(4, false, Granularity::Group(32));
    let o = GptqOptions::default();
    let refused = |w: &[f32], h: &[f32], tokens: usize, f: &Format, o: &GptqOptions, says: &str| match gptq(
        w, rows, cols, h, tokens, f, o,
    ) {
        Err(Error::Invalid(m)) => assert!(m.contains(says), "{m:?} does not say {says:?}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("accepted; should say {says:?}"),
    };
    refused(&w[1..], &h, 64, &f, &o, "191 values, not 3×64");
    refused(&w, &h[1..], 64, &f, &o, "4095 entries, not 64×64");
    refused(&w, &h, 0, &f, &o, "at least one calibration token");
    refused(&w, &h, 64, &f, &GptqOptions { block: 0, ..o }, "at least one column");
    refused(&w, &h, 64, &f, &GptqOptions { damp: -1.0, ..o }, "not -1");
    refused(&w, &h, 64, &f, &opts(false, 128, Outliers::Columns(65)), "cannot keep 65 of 64 columns");
    refused(&w, &h, 64, &f, &opts(false, 128, Outliers::Weights { threshold: 0.0 }), "not 0");
    refused(&w, &h, 64, &int(4, false, Granularity::Group(48)), &o, "blocks of 48");
    let negative: Vec<f32> = h.iter().map(|v| -v).collect();
    refused(&w, &negative, 64, &f, &o, "not positive definite");
}

// ---------- OWQ and SpQR ----------

#[test]
fn owq_keeps_the_weakest_columns_exactly_and_lowers_the_error() {
    let mut rng = Rng::new(6);
    let (rows, cols, tokens) = (48, 160, 320);
    let h = hessian(&mut rng, tokens, cols, 2.0, 1.0, &[7]);
    let h32 = to_f32(&h);
    let w = gaussians(&mut rng, rows * cols, 0.05);
    for f in [
        int(3, false, Granularity::Channel),
        int(4, false, Granularity::Group(32)),
        format(Scheme::Q4_0, Granularity::Group(32)),
    ] {
        for act_order in [false, true] {
            let n = 6;
            let o = opts(act_order, 128, Outliers::Columns(n));
            let what = format!("{} act_order {act_order}", f.describe());
            let got = gptq(&w, rows, cols, &h32, tokens, &f, &o).unwrap();
            let want = plain_gptq(&w, rows, cols, &h32, tokens, &f, &o);
            assert_same(&got, &want, &what);
            let columns: Vec<(u32, u32)> = (0..rows as u32)
                .flat_map(|r| want.kept_columns.iter().map(move |&c| (r, c as u32)))
                .collect();
            assert_eq!(got.outliers.iter().map(|&(r, c, _)| (r, c)).collect::<Vec<_>>(), columns, "{what}");
            let alone =
                gptq(&w, rows, cols, &h32, tokens, &f, &opts(act_order, 128, Outliers::None)).unwrap();
            let (owq, gptq_err) = (
                output_error(&w, &decided(&got, cols), &h, cols),
                output_error(&w, &alone.quantized.values, &h, cols),
            );
            println!("{what}: OWQ {owq:.4e}, GPTQ {gptq_err:.4e}");
            assert!(owq < gptq_err && got.loss < alone.loss, "{what}: OWQ {owq} vs GPTQ {gptq_err}");
        }
    }
    // Keeping every column leaves nothing to round.
    let f = int(4, false, Granularity::Group(32));
    let all = gptq(&w, rows, cols, &h32, tokens, &f, &opts(false, 128, Outliers::Columns(cols))).unwrap();
    assert_eq!(all.loss, 0.0);
    let mut dead_zeroed = w.clone();
    (0..rows).for_each(|r| dead_zeroed[r * cols + 7] = 0.0);
    for (a, b) in decided(&all, cols).iter().zip(&dead_zeroed) {
        assert!((a - b).abs() <= 1e-7, "{a} vs {b}");
    }
}

#[test]
fn spqr_keeps_a_planted_outlier_and_nothing_else() {
    let mut rng = Rng::new(7);
    let (rows, cols, tokens) = (7, 160, 640);
    // Mildly correlated inputs of one scale: every column's rounding weighs about the same.
    let h32 = to_f32(&hessian(&mut rng, tokens, cols, 0.3, 0.0, &[]));
    let w = gaussians(&mut rng, rows * cols, 1.0);
    // On a symmetric grid the largest negative weight sets the scale and lands on level −8, but level +7
    // stops short of a positive weight as large: row 3, column 0 cannot be rounded near.
    let mut planted = w.clone();
    planted[3 * cols] = 100.0;
    planted[3 * cols + 10] = -101.0;
    let f = int(4, true, Granularity::Group(32));
    // The planted weight's own error is in its block's mean: a block of b weights caps the ratio below b.
    for block in [128, 64] {
        let o = opts(false, block, Outliers::Weights { threshold: 20.0 });
        let clean = gptq(&w, rows, cols, &h32, tokens, &f, &o).unwrap();
        assert_same(&clean, &plain_gptq(&w, rows, cols, &h32, tokens, &f, &o), "clean");
        assert!(clean.outliers.is_empty(), "block {block}: {:?}", clean.outliers);
        let got = gptq(&planted, rows, cols, &h32, tokens, &f, &o).unwrap();
        assert_same(&got, &plain_gptq(&planted, rows, cols, &h32, tokens, &f, &o), "planted");
        assert_eq!(got.outliers.len(), 1, "block {block}: {:?}", got.outliers);
        let (r, c, correction) = got.outliers[0];
        assert_eq!((r, c), (3, 0));
        // The first column gets no error feedback: its decided value is the weight itself.
        assert_eq!(got.quantized.values[3 * cols] + correction, 100.0);
        assert!(correction > 10.0, "level +7 is 7/8 of 101: {correction}");
    }
    // Strongly correlated inputs of many scales and a low bar: many weights kept, each one's error
    // taken out of the feedback mid-block, as in the plain algorithm.
    let h32 = to_f32(&hessian(&mut rng, tokens, cols, 2.0, 1.0, &[]));
    for f in [f, int(3, false, Granularity::Channel)] {
        let o = opts(false, 128, Outliers::Weights { threshold: 4.0 });
        let got = gptq(&w, rows, cols, &h32, tokens, &f, &o).unwrap();
        assert_same(&got, &plain_gptq(&w, rows, cols, &h32, tokens, &f, &o), "low bar");
        println!("{}: {} of {} weights kept", f.describe(), got.outliers.len(), rows * cols);
        assert!(got.outliers.len() > 10 && got.outliers.len() < rows * cols / 10);
    }
}

// ---------- linear algebra ----------

fn random_spd(rng: &mut Rng, n: usize) -> Vec<f64> {
    let b: Vec<f64> = (0..n * n).map(|_| gaussian(rng)).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] =
                (0..n).map(|k| b[k * n + i] * b[k * n + j]).sum::<f64>() + if i == j { 0.1 } else { 0.0 };
        }
    }
    a
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    (0..n * n).map(|ij| (0..n).map(|k| a[(ij / n) * n + k] * b[k * n + ij % n]).sum()).collect()
}

fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    (0..n * n).map(|ij| a[(ij % n) * n + ij / n]).collect()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn linalg_known_answer() {
    let a = [4.0, 2.0, 2.0, 3.0];
    assert_close(&linalg::cholesky(&a, 2).unwrap(), &[2.0, 0.0, 1.0, 2f64.sqrt()], 1e-15, "L");
    assert_close(&linalg::inverse(&a, 2).unwrap(), &[0.375, -0.25, -0.25, 0.5], 1e-15, "A⁻¹");
    // A = R·Rᵀ with R = [[√(8/3), 2/√3], [0, √3]]; U = R⁻¹.
    let s3 = 3f64.sqrt();
    let want = [(3f64 / 8.0).sqrt(), -(2.0 / s3) / ((8f64 / 3.0).sqrt() * s3), 0.0, 1.0 / s3];
    assert_close(&linalg::upper_cholesky_of_inverse(&a, 2).unwrap(), &want, 1e-15, "U");
}

#[test]
fn linalg_factors_random_matrices() {
    let mut rng = Rng::new(8);
    for n in [1, 2, 5, 33, 70] {
        let a = random_spd(&mut rng, n);
        let l = linalg::cholesky(&a, n).unwrap();
        assert!((0..n).all(|i| l[i * n + i] > 0.0 && (i + 1..n).all(|j| l[i * n + j] == 0.0)), "L is lower");
        assert_close(&matmul(&l, &transpose(&l, n), n), &a, 1e-12, "L·Lᵀ");
        let inv = linalg::inverse(&a, n).unwrap();
        let eye: Vec<f64> = (0..n * n).map(|ij| if ij / n == ij % n { 1.0 } else { 0.0 }).collect();
        assert_close(&matmul(&inv, &a, n), &eye, 1e-8, "A⁻¹·A");
        let u = linalg::upper_cholesky_of_inverse(&a, n).unwrap();
        assert!((0..n).all(|i| u[i * n + i] > 0.0 && (0..i).all(|j| u[i * n + j] == 0.0)), "U is upper");
        assert_close(&matmul(&transpose(&u, n), &u, n), &inv, 1e-10, "Uᵀ·U");
        // GPTQ's path: the upper factor of the inverse formed explicitly.
        assert_close(&u, &transpose(&linalg::cholesky(&inv, n).unwrap(), n), 1e-9, "U by GPTQ's path");
    }
}

#[test]
fn linalg_refuses_what_is_not_positive_definite() {
    let refused = |a: &[f64], n: usize, says: &str| match linalg::cholesky(a, n) {
        Err(Error::Invalid(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("{other:?}"),
    };
    refused(&[1.0, 2.0, 2.0, 1.0], 2, "not positive definite: pivot 1 is -3");
    refused(&[0.0; 4], 2, "pivot 0 is 0");
    refused(&[f64::NAN, 0.0, 0.0, 1.0], 2, "pivot 0 is NaN");
    refused(&[1.0; 3], 2, "has 3 entries, not 4");
    assert!(linalg::upper_cholesky_of_inverse(&[1.0, 2.0, 2.0, 1.0], 2).is_err());
}

/// Wall time and time on a CPU of `f` (this machine's cores are shared, so wall time alone overstates).
fn timed(f: impl FnOnce()) -> String {
    // The first field of schedstat is the nanoseconds this thread has run.
    let on_cpu = || -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        stat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap_or(f64::NAN) / 1e9
    };
    let (wall, cpu) = (std::time::Instant::now(), on_cpu());
    f();
    format!("{:.3} s on CPU ({:.3} s wall)", on_cpu() - cpu, wall.elapsed().as_secs_f64())
}

/// Timing of the factorisation and of GPTQ at a layer's sizes:
/// `cargo test --release --test gptq -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing() {
    let mut rng = Rng::new(9);
    for n in [576, 1536] {
        let z: Vec<f64> = (0..n * n).map(|_| gaussian(&mut rng)).collect();
        let a: Vec<f64> = (0..n * n)
            .map(|ij| {
                (z[ij] + z[(ij % n) * n + ij / n]) / 2.0 + if ij / n == ij % n { n as f64 } else { 0.0 }
            })
            .collect();
        println!("n {n}: Cholesky {}", timed(|| drop(linalg::cholesky(&a, n).unwrap())));
        println!(
            "n {n}: upper factor of the inverse {}",
            timed(|| drop(linalg::upper_cholesky_of_inverse(&a, n).unwrap()))
        );
        println!("n {n}: inverse {}", timed(|| drop(linalg::inverse(&a, n).unwrap())));
        let (h32, w) = (to_f32(&a), gaussians(&mut rng, 1536 * n, 0.05));
        let f = int(4, false, Granularity::Group(32));
        let run = || drop(gptq(&w, 1536, n, &h32, n, &f, &GptqOptions::default()).unwrap());
        println!("GPTQ of 1536×{n}, int4 g32: {}", timed(run));
    }
}
