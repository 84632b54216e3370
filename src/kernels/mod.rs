//! Launchers for the GPU kernels in `shaders/`, one module per shader file.

pub mod dequant;
pub mod stats;
