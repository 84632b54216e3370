//! CPU twins of the table-row kernels (`shaders/embed.wgsl`), over tables already decoded to f32 by
//! `cpu::dequant`.

/// Rows ids[0..] of table (·, d): the token embedding, (ids.len(), d).
pub fn embed(table: &[f32], d: usize, ids: &[u32]) -> Vec<f32> {
    ids.iter().flat_map(|&id| table[id as usize * d..(id as usize + 1) * d].iter().copied()).collect()
}

/// x (t, d) += rows pos0 .. pos0 + t of table (n_ctx, d): GPT-2's learned position embedding.
pub fn add_positions(x: &mut [f32], table: &[f32], pos0: usize, t: usize, d: usize) {
    for (x, p) in x[..t * d].iter_mut().zip(&table[pos0 * d..(pos0 + t) * d]) {
        *x += p;
    }
}
