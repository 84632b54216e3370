//! Small dense linear algebra in f64 (n×n, row-major): for symmetric positive-definite matrices the
//! Cholesky factor, the inverse through it, and the upper Cholesky factor of the inverse that GPTQ and
//! SparseGPT step through, with the layer Hessian both prepare the same way; for any symmetric matrix its
//! eigenvalues and eigenvectors (Householder tridiagonalisation, then implicit QL), which low-rank
//! factorisation reads singular values from. Sizes are a layer's input width (576 … 1536, more is only
//! slower); every inner loop runs along a row, so memory is read in order.

use crate::error::{Error, Result};

/// Rows handled together: each row fetched from memory serves the dot products or updates of all of them.
const TILE: usize = 8;

/// What is wrong, if anything, with the arguments GPTQ and SparseGPT share: (rows, cols) weights `w`,
/// the (cols, cols) Hessian sum over `tokens` tokens, columns processed `block` at a time, dampening.
pub fn hessian_args_problem(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &[f32],
    tokens: usize,
    block: usize,
    damp: f64,
) -> Option<String> {
    if w.len() != rows * cols {
        Some(format!("the weights have {} values, not {rows}×{cols}", w.len()))
    } else if hessian.len() != cols * cols {
        Some(format!("the Hessian has {} entries, not {cols}×{cols}", hessian.len()))
    } else if tokens == 0 {
        Some("the Hessian needs at least one calibration token".into())
    } else if block == 0 {
        Some("a block needs at least one column".into())
    } else if !(damp >= 0.0 && damp.is_finite()) {
        Some(format!("the damping must be a finite number ≥ 0, not {damp}"))
    } else {
        None
    }
}

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

/// X·Xᵀ of an (n, len) matrix X: the dot of every pair of rows, the lower triangle computed and mirrored.
pub fn gram(x: &[f64], n: usize, len: usize) -> Vec<f64> {
    let mut g = vec![0.0; n * n];
    for_lower_triangle(n, |i, j| {
        let v = dot(&x[i * len..(i + 1) * len], &x[j * len..(j + 1) * len]);
        g[i * n + j] = v;
        g[j * n + i] = v;
        Ok(())
    })
    .expect("visiting cannot fail");
    g
}

/// The eigen-decomposition of a symmetric matrix, A = Σ_i λ_i·v_i·v_iᵀ.
pub struct SymmetricEigen {
    /// λ, largest first.
    pub values: Vec<f64>,
    /// Row i is the unit eigenvector of `values[i]`, (n, n).
    pub vectors: Vec<f64>,
}

/// The eigenvalues and orthonormal eigenvectors of the symmetric `a`: Householder reflections bring it
/// to tridiagonal form T = Qᵀ·A·Q, QL iterations with implicit shifts diagonalise T by plane rotations,
/// and the rotations applied to Qᵀ's rows turn them into A's eigenvectors. About 9n³ flops.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<SymmetricEigen> {
    if a.len() != n * n {
        return Err(Error::Invalid(format!("a {n}×{n} matrix has {} entries, not {}", a.len(), n * n)));
    }
    let (mut zt, mut d, mut e) = tridiagonalise(a, n);
    diagonalise_tridiagonal(&mut d, &mut e, &mut zt, n)?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[j].total_cmp(&d[i]));
    Ok(SymmetricEigen {
        values: order.iter().map(|&i| d[i]).collect(),
        vectors: order.iter().flat_map(|&i| zt[i * n..(i + 1) * n].iter().copied()).collect(),
    })
}

/// Householder reduction: step k reflects rows and columns k+1.. by H = I − 2·v·vᵀ so that column k
/// is zero below its subdiagonal; T = H_last·…·H_0·A·H_0·…·H_last. Returns Qᵀ = (H_0·…·H_last)ᵀ, T's
/// diagonal, and its off-diagonal (e[i] couples i and i + 1; e[n − 1] = 0).
fn tridiagonalise(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut e = vec![0.0; n];
    let mut reflectors = Vec::new();
    for k in 0..n.saturating_sub(2) {
        let off = k + 1;
        let x: Vec<f64> = (off..n).map(|i| a[i * n + k]).collect();
        let norm = dot(&x, &x).sqrt();
        // x goes to alpha·e_1; alpha takes the sign opposite x₀ so that v = x − alpha·e_1 cancels nothing.
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        e[k] = alpha;
        let mut v = x;
        v[0] -= alpha;
        let v_norm = dot(&v, &v).sqrt();
        if v_norm == 0.0 {
            reflectors.push(Vec::new()); // the column is already zero: no reflection
            continue;
        }
        v.iter_mut().for_each(|x| *x /= v_norm);
        // A₂₂ ← H·A₂₂·H = A₂₂ − 2(v·wᵀ + w·vᵀ) with p = A₂₂·v and w = p − (vᵀp)·v.
        let p: Vec<f64> = (off..n).map(|i| dot(&a[i * n + off..(i + 1) * n], &v)).collect();
        let vp = dot(&v, &p);
        let w: Vec<f64> = p.iter().zip(&v).map(|(p, v)| p - vp * v).collect();
        for (i, (&vi, &wi)) in v.iter().zip(&w).enumerate() {
            let row = &mut a[(off + i) * n + off..(off + i + 1) * n];
            axpy(-2.0 * vi, &w, row);
            axpy(-2.0 * wi, &v, row);
        }
        reflectors.push(v);
    }
    if n >= 2 {
        e[n - 2] = a[(n - 1) * n + n - 2];
    }
    let d = (0..n).map(|i| a[i * n + i]).collect();
    // Q = H_0·(H_1·(…·H_last)), built from the last reflection: when H_k is applied, the product so far
    // is the identity outside rows and columns k+1.., so only that corner changes.
    let mut q: Vec<f64> = (0..n * n).map(|ij| if ij / n == ij % n { 1.0 } else { 0.0 }).collect();
    for (k, v) in reflectors.iter().enumerate().rev().filter(|(_, v)| !v.is_empty()) {
        let off = k + 1;
        let mut u = vec![0.0; n - off]; // vᵀ·Q[off.., off..]
        for (i, &vi) in v.iter().enumerate() {
            axpy(vi, &q[(off + i) * n + off..(off + i + 1) * n], &mut u);
        }
        for (i, &vi) in v.iter().enumerate() {
            axpy(-2.0 * vi, &u, &mut q[(off + i) * n + off..(off + i + 1) * n]);
        }
    }
    let qt = (0..n * n).map(|ij| q[(ij % n) * n + ij / n]).collect();
    (qt, d, e)
}

/// QL iterations on the symmetric tridiagonal (d, e) until every off-diagonal is negligible: d then
/// holds the eigenvalues. Each sweep chases a bulge up from the end of the unreduced block l..=m with
/// plane rotations, shifted by the eigenvalue of the leading 2×2 nearer d[l]; each rotation is also
/// applied to rows i and i + 1 of `zt`.
///
/// An off-diagonal is negligible beside its two diagonal entries, or beside the whole matrix's scale:
/// a rank-deficient matrix (a Gram matrix of a low-rank product) has clusters of eigenvalues near 0,
/// where the relative test alone may never pass.
fn diagonalise_tridiagonal(d: &mut [f64], e: &mut [f64], zt: &mut [f64], n: usize) -> Result<()> {
    const MAX_SWEEPS: usize = 60;
    let scale = d.iter().zip(e.iter()).fold(0f64, |m, (d, e)| m.max(d.abs() + e.abs()));
    let negligible = |e: f64, d0: f64, d1: f64| e.abs() <= f64::EPSILON * (d0.abs() + d1.abs()).max(scale);
    for l in 0..n {
        let mut sweeps = 0;
        loop {
            let mut m = l;
            while m + 1 < n && !negligible(e[m], d[m], d[m + 1]) {
                m += 1;
            }
            if m == l {
                break;
            }
            sweeps += 1;
            if sweeps > MAX_SWEEPS {
                return Err(Error::Invalid(format!(
                    "the {n}×{n} eigenvalue iteration did not converge at eigenvalue {l} in {MAX_SWEEPS} sweeps \
                     (is the matrix finite?)"
                )));
            }
            let g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let r = g.hypot(1.0);
            let mut g = d[m] - d[l] + e[l] / (g + if g >= 0.0 { r } else { -r });
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut split = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                let r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    // The bulge vanished: the block splits here; start over on it.
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    split = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                let r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                let (upper, lower) = zt.split_at_mut((i + 1) * n);
                for (zi, zi1) in upper[i * n..].iter_mut().zip(&mut lower[..n]) {
                    let f = *zi1;
                    *zi1 = s * *zi + c * f;
                    *zi = c * *zi - s * f;
                }
            }
            if !split {
                d[l] -= p;
                e[l] = g;
                e[m] = 0.0;
            }
        }
    }
    Ok(())
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
