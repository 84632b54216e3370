//! GPTQ (Frantar et al. 2022; IST-DASLab/gptq `fasterquant`): quantise a linear layer's weights one input
//! column at a time and, after each column, spread its rounding error over the columns still to come,
//! weighted by the inverse Hessian of the layer's calibration inputs, so that the layer's outputs on those
//! inputs move as little as possible. Groups, act-order and static groups follow the reference. Two
//! variants keep what rounds worst exactly (16 bit beside the packed matrix): OWQ keeps whole input
//! columns, SpQR single weights.
//!
//! Once U (the upper Cholesky factor of H⁻¹) is known the rows are independent, so tiles of rows walk the
//! columns in blocks: the error feedback inside a block is applied column by column, the feedback onto the
//! columns after it once per block (the reference's lazy batch update), one row of U for the whole tile.

use super::grid::{pack, quantize_rtn, Format, Grid, Quantized};
use crate::compress::linalg;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GptqOptions {
    /// Added to diag(H), relative to its mean (the reference's `percdamp`).
    pub damp: f64,
    /// Columns per block of the lazy update; the result does not depend on it (except through SpQR's bar).
    pub block: usize,
    /// Quantise the columns in order of decreasing diag(H) (`act_order`, `desc_act`).
    pub act_order: bool,
    pub outliers: Outliers,
}

impl Default for GptqOptions {
    fn default() -> Self {
        GptqOptions { damp: 0.01, block: 128, act_order: false, outliers: Outliers::None }
    }
}

/// Which weights are kept exactly instead of rounded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outliers {
    None,
    /// OWQ: this many input columns, those with the largest diag(H)_j·‖W_:,j − RTN(W)_:,j‖². They are
    /// quantised last, so they absorb the error of all the others, and left out of the grids' fits.
    Columns(usize),
    /// SpQR: a weight whose ((w − q)/U_ii)² exceeds `threshold` times the mean of that quantity over its
    /// row's block (as plain GPTQ would quantise the block).
    Weights {
        threshold: f32,
    },
}

pub struct GptqResult {
    pub quantized: Quantized,
    /// (row, column, correction), by row then column: the kept weights are `quantized.values` plus these.
    pub outliers: Vec<(u32, u32, f32)>,
    /// Σ ((w − q)/U_ii)²/2 over the rounded weights, as the reference reports it.
    pub loss: f64,
}

/// Rows quantised together, so that each row of U fetched from memory serves all of them.
const TILE_ROWS: usize = 16;

/// Quantise the (rows, cols) weights `w` onto `format` with GPTQ, given the Hessian Σ x·xᵀ (cols, cols)
/// of the layer's inputs over `tokens` calibration tokens.
pub fn gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &[f32],
    tokens: usize,
    format: &Format,
    opts: &GptqOptions,
) -> Result<GptqResult> {
    check(w, rows, cols, hessian, tokens, format, opts)?;
    let mut w = w.to_vec();
    let (h, dead) = linalg::layer_hessian(hessian, tokens, cols);
    for (i, v) in w.iter_mut().enumerate() {
        if dead[i % cols] {
            *v = 0.0;
        }
    }
    let diag: Vec<f64> = (0..cols).map(|i| h[i * cols + i]).collect();
    let kept = match opts.outliers {
        Outliers::Columns(n) => weak_columns(format, &w, rows, cols, &diag, n)?,
        _ => vec![false; cols],
    };
    let order = loop_order(&diag, opts.act_order, &kept);
    let u = inverse_factor(&h, cols, opts.damp, &order)?;
    let grids = grid_source(format, &w, rows, cols, opts.act_order, &kept, &order);
    let plan = Plan {
        format,
        cols,
        group: format.group_len(cols),
        blocks: blocks(cols, opts.block, &grids),
        order,
        u,
        kept,
        grids,
        spqr: match opts.outliers {
            Outliers::Weights { threshold } => Some(threshold as f64),
            _ => None,
        },
    };

    let (mut codes, mut grids, mut outliers, mut loss) = (Vec::new(), Vec::new(), Vec::new(), 0.0);
    for first in (0..rows).step_by(TILE_ROWS) {
        let tile = first..(first + TILE_ROWS).min(rows);
        let mut states: Vec<RowState> = tile.clone().map(|r| plan.start_row(&w, r)).collect();
        plan.quantize_tile(&mut states);
        for (r, mut row) in tile.zip(states) {
            codes.extend_from_slice(&row.codes);
            grids.extend(row.grids.iter().map(|g| g.expect("every group has a column, so a grid")));
            row.kept.sort_by_key(|&(c, _)| c);
            outliers.extend(row.kept.iter().map(|&(c, v)| (r as u32, c as u32, v)));
            loss += row.loss;
        }
    }
    Ok(GptqResult { quantized: pack(format, rows, cols, &grids, &codes)?, outliers, loss })
}

/// Whether the arguments fit together, and the format can store rows of `cols`.
fn check(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &[f32],
    tokens: usize,
    format: &Format,
    opts: &GptqOptions,
) -> Result<()> {
    let problem = linalg::hessian_args_problem(w, rows, cols, hessian, tokens, opts.block, opts.damp).or(
        match opts.outliers {
            Outliers::Columns(n) if n > cols => Some(format!("cannot keep {n} of {cols} columns")),
            Outliers::Weights { threshold } if !(threshold > 0.0 && threshold.is_finite()) => {
                Some(format!("the outlier threshold must be a positive number, not {threshold}"))
            }
            _ => None,
        },
    );
    match problem {
        Some(p) => Err(Error::Invalid(format!("GPTQ: {p}"))),
        None => format.grid_dtype(cols).map(|_| ()),
    }
}

/// OWQ's weak columns: the `n` whose rounding costs most, diag(H)_j·‖W_:,j − RTN(W)_:,j‖².
fn weak_columns(
    format: &Format,
    w: &[f32],
    rows: usize,
    cols: usize,
    diag: &[f64],
    n: usize,
) -> Result<Vec<bool>> {
    let rtn = quantize_rtn(format, w, rows, cols)?.values;
    let mut cost = vec![0.0; cols];
    for (i, (&a, &b)) in w.iter().zip(&rtn).enumerate() {
        cost[i % cols] += (a as f64 - b as f64).powi(2) * diag[i % cols];
    }
    let mut by_cost: Vec<usize> = (0..cols).collect();
    by_cost.sort_by(|&a, &b| cost[b].total_cmp(&cost[a]));
    let mut kept = vec![false; cols];
    by_cost[..n].iter().for_each(|&c| kept[c] = true);
    Ok(kept)
}

/// The columns in the order the loop quantises them: by decreasing diag(H) with act-order, else as
/// stored; OWQ's kept columns last (as in OWQ), so that they absorb the error of all the others.
fn loop_order(diag: &[f64], act_order: bool, kept: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..diag.len()).collect();
    if act_order {
        order.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]));
    }
    order.sort_by_key(|&c| kept[c]);
    order
}

/// U, the upper Cholesky factor of (H + λI)⁻¹ with rows and columns in loop order, λ = damp·mean diag(H).
fn inverse_factor(h: &[f64], cols: usize, damp: f64, order: &[usize]) -> Result<Vec<f64>> {
    let lambda = linalg::damping(h, cols, damp);
    let mut permuted = vec![0.0; cols * cols];
    for (i, &ci) in order.iter().enumerate() {
        for (j, &cj) in order.iter().enumerate() {
            permuted[i * cols + j] = h[ci * cols + cj];
        }
        permuted[i * cols + i] += lambda;
    }
    linalg::upper_cholesky_of_inverse(&permuted, cols).map_err(|e| {
        Error::Invalid(format!(
            "GPTQ: the Hessian damped by {damp} of its mean diagonal cannot be inverted ({e}); \
             raise the damping"
        ))
    })
}

/// Where each row's grids come from.
enum GridSource {
    /// Fitted before the loop on the original weights: (rows, groups), row-major.
    Static(Vec<Grid>),
    /// Fitted by the loop from the current (error-updated) weights when it reaches a group's first
    /// column: at loop position p, `fits[p]` is that group and the loop positions it is fitted on.
    Dynamic(Vec<Option<(usize, Vec<usize>)>>),
}

/// Per tensor and per channel the grids come from the original weights, as in the reference; groups
/// are refitted as the loop reaches them, except with act-order.
fn grid_source(
    format: &Format,
    w: &[f32],
    rows: usize,
    cols: usize,
    act_order: bool,
    kept: &[bool],
    order: &[usize],
) -> GridSource {
    let group = format.group_len(cols);
    // A grid is fitted on the weights it will round: OWQ's kept ones only when its whole group is kept.
    let fit_columns = |g: usize| -> Vec<usize> {
        let all = g * group..((g + 1) * group).min(cols);
        let rounded: Vec<usize> = all.clone().filter(|&c| !kept[c]).collect();
        if rounded.is_empty() {
            all.collect()
        } else {
            rounded
        }
    };
    let fit_rows = |rows: Range<usize>, columns: &[usize]| {
        let values: Vec<f32> = rows.flat_map(|r| columns.iter().map(move |&c| w[r * cols + c])).collect();
        format.fit(&values)
    };
    // One grid for the whole tensor (repeated in every row's block), except in ggml's block formats,
    // where every block of 32 has its own.
    if format.per_tensor() {
        return GridSource::Static(vec![fit_rows(0..rows, &fit_columns(0)); rows]);
    }
    let groups = cols.div_ceil(group);
    if act_order || group == cols {
        // Static groups (the reference's `static_groups`): act-order visits a group's columns far apart,
        // and storage keeps one grid per group of consecutive original columns, so all of them are fitted
        // before the loop, on the original weights.
        let columns: Vec<Vec<usize>> = (0..groups).map(fit_columns).collect();
        let grids = (0..rows).flat_map(|r| columns.iter().map(move |c| fit_rows(r..r + 1, c))).collect();
        return GridSource::Static(grids);
    }
    let mut position = vec![0; cols];
    order.iter().enumerate().for_each(|(p, &c)| position[c] = p);
    let mut fits = vec![None; cols];
    for g in 0..groups {
        let columns = g * group..((g + 1) * group).min(cols);
        let first = columns.map(|c| position[c]).min().expect("groups are not empty");
        fits[first] = Some((g, fit_columns(g).iter().map(|&c| position[c]).collect()));
    }
    GridSource::Dynamic(fits)
}

/// The loop's blocks of at most `block` positions. A grid fitted inside a block must see current
/// weights, but the columns after the block still lack the block's lazy update, so a block ends where
/// a group begins that reaches past it.
fn blocks(cols: usize, block: usize, grids: &GridSource) -> Vec<Range<usize>> {
    let reach = |p: usize| match grids {
        GridSource::Dynamic(fits) => {
            fits[p].as_ref().map_or(p, |(_, at)| at.iter().copied().max().unwrap_or(p))
        }
        GridSource::Static(_) => p,
    };
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < cols {
        let mut end = start + block.min(cols - start);
        if let Some(p) = (start + 1..end).find(|&p| reach(p) >= end) {
            end = p;
        }
        blocks.push(start..end);
        start = end;
    }
    blocks
}

/// What all rows share.
struct Plan<'a> {
    format: &'a Format,
    cols: usize,
    group: usize,
    /// Loop position → column.
    order: Vec<usize>,
    /// (cols, cols), rows and columns in loop order.
    u: Vec<f64>,
    /// By column: OWQ's columns, kept exactly.
    kept: Vec<bool>,
    grids: GridSource,
    blocks: Vec<Range<usize>>,
    /// SpQR's relative threshold τ.
    spqr: Option<f64>,
}

/// One row on its way through the loop.
#[derive(Clone)]
struct RowState {
    /// The current weights, in loop order.
    w: Vec<f64>,
    /// By group, once fitted.
    grids: Vec<Option<Grid>>,
    /// By column.
    codes: Vec<u8>,
    /// (column, correction) of the weights kept exactly.
    kept: Vec<(usize, f32)>,
    loss: f64,
    /// The current block's errors (w − q)/U_pp, zero where a weight is kept.
    err: Vec<f64>,
}

impl Plan<'_> {
    fn start_row(&self, w: &[f32], r: usize) -> RowState {
        let groups = self.cols.div_ceil(self.group);
        let grids = match &self.grids {
            GridSource::Static(grids) => {
                grids[r * groups..(r + 1) * groups].iter().copied().map(Some).collect()
            }
            GridSource::Dynamic(_) => vec![None; groups],
        };
        RowState {
            w: self.order.iter().map(|&c| w[r * self.cols + c] as f64).collect(),
            grids,
            codes: vec![0; self.cols],
            kept: Vec::new(),
            loss: 0.0,
            err: vec![0.0; self.blocks.iter().map(|b| b.len()).max().unwrap_or(0)],
        }
    }

    fn quantize_tile(&self, rows: &mut [RowState]) {
        for block in &self.blocks {
            for row in rows.iter_mut() {
                let bar = self.keep_above(row, block.clone());
                self.quantize_block(row, block.clone(), bar);
            }
            self.propagate(rows, block.clone());
        }
    }

    /// SpQR's bar for this row's block: τ times the mean ((w − q)/U_pp)² that plain GPTQ gives the block,
    /// from a trial run on a copy, so that keeping one weight does not move the bar for the others.
    fn keep_above(&self, row: &RowState, block: Range<usize>) -> f64 {
        let Some(tau) = self.spqr else { return f64::INFINITY };
        let mut trial = row.clone();
        self.quantize_block(&mut trial, block.clone(), f64::INFINITY);
        let errs = &trial.err[..block.len()];
        tau * errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64
    }

    /// Quantise the row's `block`; a weight whose ((w − q)/U_pp)² exceeds `keep_above` is kept exactly.
    fn quantize_block(&self, row: &mut RowState, block: Range<usize>, keep_above: f64) {
        let k = self.cols;
        for p in block.clone() {
            self.fit_group_at(row, p);
            let c = self.order[p];
            let grid = row.grids[c / self.group].expect("a group's grid is fitted at its first column");
            let w = row.w[p];
            let code = grid.code(w as f32);
            let q = grid.value(code);
            row.codes[c] = code;
            let mut e = (w - q as f64) / self.u[p * k + p];
            if self.kept[c] || e * e > keep_above {
                row.kept.push((c, w as f32 - q));
                e = 0.0;
            }
            row.loss += e * e / 2.0;
            row.err[p - block.start] = e;
            linalg::axpy(-e, &self.u[p * k + p + 1..p * k + block.end], &mut row.w[p + 1..block.end]);
        }
    }

    /// The lazy update: the columns after the block absorb the block's errors, each row of U applied to
    /// the whole tile.
    fn propagate(&self, rows: &mut [RowState], block: Range<usize>) {
        let k = self.cols;
        for p in block.clone() {
            let u_p = &self.u[p * k + block.end..(p + 1) * k];
            for row in rows.iter_mut() {
                linalg::axpy(-row.err[p - block.start], u_p, &mut row.w[block.end..]);
            }
        }
    }

    fn fit_group_at(&self, row: &mut RowState, p: usize) {
        if let GridSource::Dynamic(fits) = &self.grids {
            if let Some((group, at)) = &fits[p] {
                let values: Vec<f32> = at.iter().map(|&q| row.w[q] as f32).collect();
                row.grids[*group] = Some(self.format.fit(&values));
            }
        }
    }
}
