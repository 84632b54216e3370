//! Squeeze: load a real LLM, compress it, and measure what each method does.
//!
//! Data flows one way: `formats` (parse files) → `gpu` (upload) → `kernels` (GPU work, each checked
//! against its plain twin in `cpu`) → `eval` (statistics and metrics) → the page (`web`) or the CLI, and `export` (GGUF or
//! safetensors files of the compressed model).

pub mod compress;
pub mod cpu;
pub mod error;
pub mod eval;
pub mod export;
pub mod formats;
pub mod gpu;
pub mod kernels;
pub mod model;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
