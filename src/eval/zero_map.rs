//! Where a pruned matrix is zero: the share of exact zeros in each cell of a grid laid over a window of the
//! matrix. Zoomed out, a cell covers many weights (how sparsity spreads over rows and columns); zoomed in
//! to one weight per cell, it is the mask itself (2:4's two zeros in every four inputs show).

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::dequant::dequantize_to_vec;
use crate::model::LoadedModel;
use serde::{Deserialize, Serialize};

/// Rows and columns `[row0, row0 + rows) × [col0, col0 + cols)` of a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub row0: u64,
    pub col0: u64,
    pub rows: u64,
    pub cols: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ZeroMap {
    pub name: String,
    /// The whole matrix.
    pub rows: u64,
    pub cols: u64,
    pub window: Window,
    /// Grid size: at most the requested size, and at most one cell per weight.
    pub grid_rows: usize,
    pub grid_cols: usize,
    /// Share of zeros per cell, row-major (`grid_rows × grid_cols`).
    pub zeros: Vec<f32>,
    /// Zeros in the whole matrix.
    pub zeros_total: u64,
}

/// The zero map of tensor `name` of `model` (decoded, with kept 16-bit corrections added back) over
/// `window` (the whole matrix when None), in at most `grid_rows × grid_cols` cells.
pub async fn zero_map(
    gpu: &Gpu,
    model: &LoadedModel,
    name: &str,
    window: Option<Window>,
    grid_rows: usize,
    grid_cols: usize,
) -> Result<ZeroMap> {
    let t = model.tensor(name)?;
    let (rows, cols) = (t.rows(), t.cols());
    let mut values = dequantize_to_vec(gpu, t).await?;
    let index = model.header.tensors.iter().position(|x| x.name == name).expect("found above");
    if let Some(e) = model.extras.get(&index) {
        e.add_corrections(&mut values, cols as usize);
    }
    let window = window.unwrap_or(Window { row0: 0, col0: 0, rows, cols });
    map_zeros(name, &values, rows, cols, window, grid_rows, grid_cols)
}

/// The map over decoded values (rows × cols, row-major). Cell (i, j) covers the window's rows
/// [i·R/g_r, (i+1)·R/g_r) and likewise its columns, so cells differ by at most one row or column.
pub fn map_zeros(
    name: &str,
    values: &[f32],
    rows: u64,
    cols: u64,
    window: Window,
    grid_rows: usize,
    grid_cols: usize,
) -> Result<ZeroMap> {
    let Window { row0, col0, rows: wr, cols: wc } = window;
    if wr == 0 || wc == 0 || row0 + wr > rows || col0 + wc > cols || grid_rows == 0 || grid_cols == 0 {
        return Err(Error::Invalid(format!(
            "{name}: window rows {row0}..{} × columns {col0}..{} in a grid of {grid_rows} × {grid_cols} does \
             not fit the {rows} × {cols} matrix",
            row0 + wr,
            col0 + wc
        )));
    }
    let (gr, gc) = (grid_rows.min(wr as usize), grid_cols.min(wc as usize));
    let edge = |g: usize, n: u64, k: usize| (k as u64 * n / g as u64) as usize;
    let mut zeros = Vec::with_capacity(gr * gc);
    for i in 0..gr {
        let (r_lo, r_hi) = (edge(gr, wr, i), edge(gr, wr, i + 1));
        for j in 0..gc {
            let (c_lo, c_hi) = (edge(gc, wc, j), edge(gc, wc, j + 1));
            let mut n = 0usize;
            for r in r_lo..r_hi {
                let at = (row0 as usize + r) * cols as usize + col0 as usize;
                n += values[at + c_lo..at + c_hi].iter().filter(|&&v| v == 0.0).count();
            }
            zeros.push(n as f32 / ((r_hi - r_lo) * (c_hi - c_lo)) as f32);
        }
    }
    Ok(ZeroMap {
        name: name.to_string(),
        rows,
        cols,
        window,
        grid_rows: gr,
        grid_cols: gc,
        zeros,
        zeros_total: values.iter().filter(|&&v| v == 0.0).count() as u64,
    })
}
