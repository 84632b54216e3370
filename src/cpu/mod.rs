//! Plain CPU twins of every GPU kernel: the definitions the kernels are tested against.

pub mod dequant;
pub mod stats;
