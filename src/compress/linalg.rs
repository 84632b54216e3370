//! Small dense linear algebra in f64 for symmetric positive-definite matrices (n×n, row-major): the
//! Cholesky factor, the inverse through it, and the upper Cholesky factor of the inverse that GPTQ and
//! SparseGPT step through, with the layer Hessian both prepare the same way. Sizes are a layer's input width (576 … 1536, more is only slower); every
//! inner loop runs along a row, so memory is read in order.

use crate::error::{Error, Result};

/// Rows handled together: each row fetched from memory serves the dot products or updates of all of them.
const TILE: usize = 8;

/// The layer Hessian as GPTQ and SparseGPT use it, H = (2/N)·Σ x·xᵀ over N calibration tokens in f64,
/// and which columns no input reaches (H_ii = 0). Their diagonal is set to 1 so that H stays invertible;
/// the caller zeroes their weights, which multiply nothing.
pub fn layer_hessian(sum_xxt: &[f32], tokens: usize, cols: usize) -> (Vec<f64>, Vec<bool>) {
    let scale = 2.0 / tokens as f64;
    let mut h: Vec<f64> = sum_xxt.iter().map(|&v| v as f64 * scale).collect();
    let mut dead = vec![false; cols];
    for (i, dead) in dead.iter_mut().enumerate() {
        if h[i * cols + i] == 0.0 {
            h[i * cols + i] = 1.0;
            *dead = true;
        }
    }
    (h, dead)
}

/// λ of the damping H + λI: `damp` times the mean of diag(H) (the references' `percdamp`).
pub fn damping(h: &[f64], cols: usize, damp: f64) -> f64 {
    damp * (0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols as f64
}

/// The lower Cholesky factor L of `a` (A = L·Lᵀ), or why `a` is not positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    if a.len() != n * n {
        return Err(Error::Invalid(format!("a {n}×{n} matrix has {} entries, not {}", a.len(), n * n)));
    }
    let mut l = vec![0.0; n * n];
    for_lower_triangle(n, |i, j| {
        // L[i][j]·L[j][j] = A[i][j] − Σ_{k<j} L[i][k]·L[j][k]: a dot of two row prefixes.
        let s = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
        l[i * n + j] = if i == j {
            if !(s > 0.0 && s.is_finite()) {
                return Err(Error::Invalid(format!(
                    "the {n}×{n} matrix is not positive definite: pivot {i} is {s}"
                )));
            }
            s.sqrt()
        } else {
            s / l[j * n + j]
        };
        Ok(())
    })?;
    Ok(l)
}

/// The upper triangular U with A⁻¹ = Uᵀ·U (positive diagonal): GPTQ's `cholesky(cholesky_inverse(
/// cholesky(H)), upper=True)`. Computed without forming A⁻¹: factor A = R·Rᵀ with R upper (the
/// Cholesky of A with rows and columns reversed), then A⁻¹ = (R⁻¹)ᵀ·R⁻¹, and the factor is unique.
pub fn upper_cholesky_of_inverse(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let r = reversed(&cholesky(&reversed(a), n)?);
    Ok(invert_upper(&r, n))
}

/// A⁻¹ of a symmetric positive-definite `a`, as Uᵀ·U from its factor above: entry (i, j) is the dot of
/// columns i and j of U, which are rows of Uᵀ.
pub fn inverse(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let u = upper_cholesky_of_inverse(a, n)?;
    let ut: Vec<f64> = (0..n * n).map(|ij| u[(ij % n) * n + ij / n]).collect();
    let mut inv = vec![0.0; n * n];
    for_lower_triangle(n, |i, j| {
        let x = dot(&ut[i * n..i * n + j + 1], &ut[j * n..j * n + j + 1]);
        inv[i * n + j] = x;
        inv[j * n + i] = x;
        Ok(())
    })?;
    Ok(inv)
}

/// Visit every (i, j ≤ i) in an order where row i's entries left of j and row j's entries up to j come
/// before (i, j): tiles of rows, and within a tile column by column, so that row j, read once, serves
/// the whole tile.
fn for_lower_triangle(n: usize, mut visit: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
    for i0 in (0..n).step_by(TILE) {
        let i1 = (i0 + TILE).min(n);
        for j in 0..i1 {
            for i in i0.max(j)..i1 {
                visit(i, j)?;
            }
        }
    }
    Ok(())
}

/// J·A·J for the exchange matrix J: rows and columns in reverse order, which for a row-major square
/// matrix is its entries in reverse order. It turns a lower triangle into an upper one.
fn reversed(a: &[f64]) -> Vec<f64> {
    a.iter().rev().copied().collect()
}

/// R⁻¹ of an upper triangular `r` with nonzero diagonal. Off the diagonal, row i of R⁻¹ is
/// −(1/R[i][i])·Σ_{k>i} R[i][k]·(row k of R⁻¹), so rows are built from the bottom up, a tile at a time:
/// first from the finished rows below the tile, each serving the whole tile, then within the tile.
fn invert_upper(r: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    let mut i1 = n;
    while i1 > 0 {
        let i0 = i1.saturating_sub(TILE);
        let (tile, below) = inv.split_at_mut(i1 * n);
        for k in i1..n {
            let inv_k = &below[(k - i1) * n + k..(k - i1 + 1) * n];
            for i in i0..i1 {
                axpy(r[i * n + k], inv_k, &mut tile[i * n + k..(i + 1) * n]);
            }
        }
        for i in (i0..i1).rev() {
            let (above, rows_below) = tile.split_at_mut((i + 1) * n);
            let row = &mut above[i * n..];
            for k in i + 1..i1 {
                axpy(r[i * n + k], &rows_below[(k - i - 1) * n + k..(k - i) * n], &mut row[k..]);
            }
            let d = 1.0 / r[i * n + i];
            row[i + 1..].iter_mut().for_each(|x| *x *= -d);
            row[i] = d;
        }
        i1 = i0;
    }
    inv
}

/// Σ x·y, with four running sums so the compiler can keep them in vector registers.
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    let (xs, ys) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail: f64 = xs.remainder().iter().zip(ys.remainder()).map(|(a, b)| a * b).sum();
    let mut acc = [0.0; 4];
    for (a, b) in xs.zip(ys) {
        for k in 0..4 {
            acc[k] += a[k] * b[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// y += a·x.
pub fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
