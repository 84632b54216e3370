//! Quantisation: grids and storage formats (`grid`), the methods that choose codes on them (`gptq`,
//! `awq`, `hqq`; `kquant` for ggml's K-quant super-blocks), and scales that make weights easier to quantise (`smoothquant`).

pub mod awq;
pub mod gptq;
pub mod grid;
pub mod hqq;
pub mod kquant;
pub mod smoothquant;
