//! Pruning. Structured, the model physically smaller: whole blocks (`depth`), or whole heads, neurons
//! and hidden channels (`width`, `narrow`). Otherwise weights set to exactly zero, chosen by a score —
//! magnitude |w| (no data), Wanda's |w|·‖x‖ (calibration statistics) or SparseGPT's
//! optimal-brain-surgeon saliency with the survivors updated to compensate (calibration Hessian) —
//! either unstructured or N of every M consecutive input weights. Scoring and selection run on the CPU (as GPTQ and AWQ do); calibration runs on the GPU.
//!
//! A pruned matrix is stored dense: no matmul kernel reads a sparse layout yet, and for 16-bit values
//! one would only pay at low density (see `storage_note`). A quantising step after the pruning step
//! packs the zeros like any other weight (every grid but Q4_1's holds 0 exactly).

pub mod depth;
pub mod magnitude;
pub mod mask;
pub mod narrow;
pub mod sparsegpt;
pub mod wanda;
pub mod width;

pub use mask::Sparsity;

use super::quant::grid::Quantized;
use crate::formats::DType;

/// The dense type a pruned matrix is stored in: the original's float type, or F16 for a quantised one.
fn dense_dtype(original: DType) -> DType {
    match original {
        DType::F32 | DType::BF16 => original,
        _ => DType::F16,
    }
}

/// `values` stored dense in the float type of a matrix that was `original`, with the values it decodes
/// to; zeros stay zeros.
pub fn store_dense(values: &[f32], original: DType) -> Quantized {
    let dtype = dense_dtype(original);
    let (bytes, values): (Vec<u8>, Vec<f32>) = match dtype {
        DType::F32 => (bytemuck::cast_slice(values).to_vec(), values.to_vec()),
        DType::BF16 => {
            let h: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (h.iter().flat_map(|v| v.to_le_bytes()).collect(), h.iter().map(|v| v.to_f32()).collect())
        }
        _ => {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            (h.iter().flat_map(|v| v.to_le_bytes()).collect(), h.iter().map(|v| v.to_f32()).collect())
        }
    };
    Quantized { dtype, bytes, values }
}

/// Why a matrix pruned to `density` (the share kept) is stored dense in `bits`-bit values, with the
/// numbers: values with 16-bit column indices cost density·(bits + 16) bits per weight (plus 32 bits of
/// offset per row), less than dense only below the break-even density bits/(bits + 16) — 50% for 16-bit
/// values; an N:M pattern needs only ⌈log₂ M⌉ bits of position per kept weight.
pub fn storage_note(bits: u32, density: f64, pattern: Option<(usize, usize)>) -> String {
    let b = bits as f64;
    let mut note = format!(
        "stored dense, {bits} bits per weight: no matmul kernel reads a sparse layout yet, and values with \
         16-bit column indices would take {:.1} bits per weight at {:.1}% density (plus 32 bits per row); \
         that layout is smaller than dense only below {:.1}% density",
        density * (b + 16.0),
        100.0 * density,
        100.0 * b / (b + 16.0)
    );
    if let Some((n, m)) = pattern {
        let position = (m as f64).log2().ceil();
        note += &format!(
            ". {n}:{m} needs only {position} bits of position per kept weight: {:.1} bits per weight, the \
             layout sparse tensor cores read",
            density * (b + position)
        );
    }
    note
}
