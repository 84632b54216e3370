//! The sparse 16-bit corrections of SpQR and OWQ and their CPU twin (`shaders/sparse.wgsl`): the
//! weights a method keeps unquantised are stored apart as a sparse matrix S (rows, cols) in CSR by
//! output row, each entry one u32 = column (low 16 bits) | f16 value (high 16 bits), and added after
//! the matmul: out[t, r] += Σ_{(c, v) in row r} v·x[t, c].

use crate::error::{Error, Result};
use half::f16;

/// The most columns S may have: an entry's column index is 16 bits.
pub const MAX_COLS: usize = u16::MAX as usize;

/// S in compressed sparse rows: row r's entries are `entries[row_ptr[r]..row_ptr[r + 1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub row_ptr: Vec<u32>,
    pub entries: Vec<u32>,
}

/// One entry: column `col` and `value` rounded to f16.
pub fn pack_entry(col: u32, value: f32) -> u32 {
    col | (f16::from_f32(value).to_bits() as u32) << 16
}

/// (column, value) of a packed entry.
pub fn unpack_entry(entry: u32) -> (usize, f32) {
    ((entry & 0xffff) as usize, f16::from_bits((entry >> 16) as u16).to_f32())
}

/// The CSR form of (row, col, value) triples of a (rows, cols) matrix, in row order (within a row, in
/// the order given); values are rounded to f16 and repeated positions add up. Fails, naming the
/// entry, on positions outside the matrix and values beyond f16's range.
pub fn encode_entries(rows: usize, cols: usize, entries: &[(u32, u32, f32)]) -> Result<Csr> {
    if cols > MAX_COLS {
        return Err(Error::Invalid(format!(
            "sparse corrections address columns with 16 bits, at most {MAX_COLS}; rows of {cols} need more"
        )));
    }
    if rows >= u32::MAX as usize || entries.len() > u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "{} sparse entries over {rows} rows overflow CSR's u32 indices",
            entries.len()
        )));
    }
    let mut counts = vec![0u32; rows + 1];
    for &(r, c, v) in entries {
        if r as usize >= rows || c as usize >= cols {
            return Err(Error::Invalid(format!("sparse entry ({r}, {c}) outside a ({rows}, {cols}) matrix")));
        }
        if !f16::from_f32(v).is_finite() {
            return Err(Error::Invalid(format!("sparse entry ({r}, {c}) = {v} does not fit f16")));
        }
        counts[r as usize + 1] += 1;
    }
    let row_ptr: Vec<u32> = counts
        .iter()
        .scan(0u32, |total, &n| {
            *total += n;
            Some(*total)
        })
        .collect();
    let mut next = row_ptr.clone();
    let mut packed = vec![0u32; entries.len()];
    for &(r, c, v) in entries {
        packed[next[r as usize] as usize] = pack_entry(c, v);
        next[r as usize] += 1;
    }
    Ok(Csr { row_ptr, entries: packed })
}

/// out (t, rows) += x (t, cols)·Sᵀ for S given as (row, col, value) triples, with each value rounded
/// to f16 as stored; each row's sum runs in f64 and is added to out in f32.
pub fn add_sparse(
    x: &[f32],
    t: usize,
    cols: usize,
    rows: usize,
    entries: &[(u32, u32, f32)],
    out: &mut [f32],
) -> Result<()> {
    assert!(x.len() >= t * cols && out.len() >= t * rows, "add_sparse: x or out shorter than {t} tokens");
    let s = encode_entries(rows, cols, entries)?;
    for i in 0..t {
        let xi = &x[i * cols..(i + 1) * cols];
        for r in 0..rows {
            let row = &s.entries[s.row_ptr[r] as usize..s.row_ptr[r + 1] as usize];
            let dot: f64 = row
                .iter()
                .map(|&e| {
                    let (c, v) = unpack_entry(e);
                    v as f64 * xi[c] as f64
                })
                .sum();
            out[i * rows + r] += dot as f32;
        }
    }
    Ok(())
}
