//! Plain CPU twins of every GPU kernel: the definitions the kernels are tested against.

pub mod actquant;
pub mod attention;
pub mod calib;
pub mod dequant;
pub mod elementwise;
pub mod embed;
pub mod gpt2;
pub mod llama;
pub mod logits;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod sparse;
pub mod stats;
