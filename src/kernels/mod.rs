//! Launchers for the GPU kernels in `shaders/`, one module per shader file.

pub mod actquant;
pub mod attention;
mod buffers;
pub mod calib;
pub mod dequant;
pub mod elementwise;
pub mod embed;
pub mod logits;
pub mod matmul;
pub mod norm;
pub mod quantize;
pub mod rope;
pub mod sparse;
pub mod stats;
