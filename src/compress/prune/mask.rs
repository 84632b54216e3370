//! Which weights a pruning removes: the sparsity a step asks for (a share, or N kept of every M
//! consecutive input weights) and the selection of the lowest scores within each comparison set — a row,
//! the whole matrix, or a group of M. A mask is one bool per weight, row-major: true = pruned.

use crate::error::{Error, Result};
use std::cmp::Ordering;

/// How many weights a pruning removes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sparsity {
    /// This share of the weights of each comparison set, rounded down to whole weights.
    Unstructured(f64),
    /// N of every M consecutive weights along a row are kept (2:4 is what sparse tensor cores read).
    NOfM { n: usize, m: usize },
}

impl Sparsity {
    /// From a step's `sparsity` (the share pruned, in [0, 1)) and `pattern` ("" or "N:M").
    pub fn parse(sparsity: f64, pattern: &str) -> Result<Sparsity> {
        if pattern.is_empty() {
            if !(0.0..1.0).contains(&sparsity) {
                return Err(Error::Invalid(format!("sparsity must lie in [0, 1), not {sparsity}")));
            }
            return Ok(Sparsity::Unstructured(sparsity));
        }
        let bad = || {
            Error::Invalid(format!(
                "pattern \"{pattern}\" is not N:M with 1 ≤ N < M ≤ 64 (e.g. \"2:4\", \"4:8\"; \"\" for unstructured)"
            ))
        };
        let (n, m) = pattern.split_once(':').ok_or_else(bad)?;
        let (n, m): (usize, usize) =
            (n.trim().parse().map_err(|_| bad())?, m.trim().parse().map_err(|_| bad())?);
        if !(1 <= n && n < m && m <= 64) {
            return Err(bad());
        }
        Ok(Sparsity::NOfM { n, m })
    }

    /// The share of the weights pruned.
    pub fn share(&self) -> f64 {
        match *self {
            Sparsity::Unstructured(s) => s,
            Sparsity::NOfM { n, m } => 1.0 - n as f64 / m as f64,
        }
    }

    /// Whether rows of `cols` weights split into whole groups of M; `what` names the tensor.
    pub fn check_cols(&self, cols: usize, what: &str) -> Result<()> {
        match *self {
            Sparsity::NOfM { n, m } if !cols.is_multiple_of(m) => Err(Error::Invalid(format!(
                "{what}: rows of {cols} weights do not split into groups of {m} for the {n}:{m} pattern"
            ))),
            _ => Ok(()),
        }
    }
}

/// Ascending score, ties broken by position, so that every selection is deterministic.
fn by_score(scores: &[f64]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    |&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b))
}

/// Mark the `count` lowest of `scores` in `mask` (true = pruned).
pub fn prune_lowest(scores: &[f64], count: usize, mask: &mut [bool]) {
    if count == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.select_nth_unstable_by(count - 1, by_score(scores));
    order[..count].iter().for_each(|&i| mask[i] = true);
}

/// Mark, in each group of `m` consecutive scores, the `m − n` lowest.
pub fn prune_n_of_m(scores: &[f64], n: usize, m: usize, mask: &mut [bool]) {
    for (scores, mask) in scores.chunks(m).zip(mask.chunks_mut(m)) {
        prune_lowest(scores, scores.len().saturating_sub(n), mask);
    }
}

/// The mask of a (rows, cols) matrix of `scores` compared within each row: the lowest ⌊cols·s⌋ of every
/// row, or N:M groups along it.
pub fn row_mask(scores: &[f64], rows: usize, cols: usize, sparsity: Sparsity) -> Vec<bool> {
    let mut mask = vec![false; rows * cols];
    for (scores, mask) in scores.chunks_exact(cols).zip(mask.chunks_exact_mut(cols)) {
        match sparsity {
            Sparsity::Unstructured(s) => prune_lowest(scores, (cols as f64 * s) as usize, mask),
            Sparsity::NOfM { n, m } => prune_n_of_m(scores, n, m, mask),
        }
    }
    mask
}

/// The mask of the lowest ⌊len·s⌋ `scores` of the whole set.
pub fn whole_mask(scores: &[f64], share: f64) -> Vec<bool> {
    let mut mask = vec![false; scores.len()];
    prune_lowest(scores, (scores.len() as f64 * share) as usize, &mut mask);
    mask
}

/// Zero the weights the mask prunes.
pub fn apply(w: &mut [f32], mask: &[bool]) {
    w.iter_mut().zip(mask).filter(|(_, &m)| m).for_each(|(w, _)| *w = 0.0);
}
