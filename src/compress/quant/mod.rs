//! Quantisation: grids and storage formats (`grid`), and the methods that choose codes on them.

pub mod grid;
