//! Compression: recipes of steps (quantise, prune, factorise) applied to a loaded model's tensors,
//! the calibration that feeds them, and the report of what each step did.

pub mod quant;
