//! Quantisation grids: which values a group of weights may take after quantisation, how a group's grid
//! is fitted (scale and zero point from its range, optionally searched), and how codes are packed into
//! the stored formats. Every quantiser (RTN, HQQ, GPTQ, AWQ …) chooses codes on these grids, so all
//! of them write the same formats that the matmul kernels read. ggml's K-quants are the exception: their
//! super-blocks of 256 carry quantised sub-block scales, which `quant::kquant` fits whole, so only
//! round-to-nearest writes them.

use super::kquant::{self, Fit};
use crate::error::{Error, Result};
use crate::formats::packed::{self, BlockHeader, E2M1_MAX, E4M3_MAX, E5M2_MAX};
use crate::formats::{DType, Packed, PackedKind};
use serde::{Deserialize, Serialize};

/// The number format of a quantised weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Integers of `bits` (2–8): symmetric d·(q − 2^(b−1)) or asymmetric d·(q − z).
    Int {
        bits: u8,
        sym: bool,
    },
    Nf4,
    Fp8E4M3,
    Fp8E5M2,
    /// FP4 E2M1 with an f16 scale per group.
    Fp4,
    /// OCP MXFP4 as ggml stores it: blocks of 32, E8M0 scale.
    Mxfp4,
    /// The GGUF block layouts, fitted as llama.cpp's reference quantisers do.
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    /// ggml's K-quants (`quant::kquant`); rows not a multiple of 256 fall back as llama.cpp's do.
    #[serde(rename = "q4_k")]
    #[allow(non_camel_case_types)]
    Q4_K,
    #[serde(rename = "q6_k")]
    #[allow(non_camel_case_types)]
    Q6_K,
}

impl Scheme {
    /// Whether the scheme stores super-blocks with quantised sub-block scales (not one grid per block).
    pub fn super_blocks(self) -> bool {
        matches!(self, Scheme::Q4_K | Scheme::Q6_K)
    }

    /// The GGUF block formats, whose blocks are 32 wide (256 for the K-quants) whatever the granularity.
    fn fixed_blocks(self) -> bool {
        matches!(
            self,
            Scheme::Q8_0
                | Scheme::Q4_0
                | Scheme::Q4_1
                | Scheme::Q5_0
                | Scheme::Mxfp4
                | Scheme::Q4_K
                | Scheme::Q6_K
        )
    }
}

/// How many weights share one grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Granularity {
    /// `g` consecutive input columns of one row (a multiple of 32).
    Group(u32),
    /// One grid per output channel (row).
    Channel,
    /// One grid for the whole tensor (stored once per row, which the bits per weight count).
    Tensor,
}

/// A storage format: the scheme, its granularity, and whether each group's range is searched
/// (shrunk while Σ|err|^2.4 falls, GPTQ's "mse" option) rather than taken from min/max.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub scheme: Scheme,
    pub granularity: Granularity,
    pub search: bool,
}

/// One group's grid: a scale `d` and zero point `z` as stored (for MXFP4, `d` is the power of two
/// 2^(e−128) and `z` holds e).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub scheme: Scheme,
    pub d: f32,
    pub z: f32,
}

impl Format {
    /// The format rows of `cols` elements are stored in: this one, or for a K-quant whose 256-element
    /// super-blocks do not divide the row, llama.cpp's fallback (`tensor_type_fallback` in
    /// llama-quant.cpp): Q4_K → Q5_0, Q6_K → Q8_0.
    pub fn for_row(&self, cols: usize) -> Format {
        let scheme = match self.scheme {
            Scheme::Q4_K if !cols.is_multiple_of(256) => Scheme::Q5_0,
            Scheme::Q6_K if !cols.is_multiple_of(256) => Scheme::Q8_0,
            s => s,
        };
        Format { scheme, ..*self }
    }

    /// Elements per block of a row of `cols` elements.
    pub fn group_len(&self, cols: usize) -> usize {
        match (self.for_row(cols).scheme, self.granularity) {
            (Scheme::Q4_K | Scheme::Q6_K, _) => 256,
            (s, _) if s.fixed_blocks() => 32,
            (_, Granularity::Group(g)) => g as usize,
            _ => cols,
        }
    }

    /// The stored type of a row of `cols` elements (after the K-quants' fallback), or why this format
    /// cannot hold it.
    pub fn dtype(&self, cols: usize) -> Result<DType> {
        let group = self.group_len(cols);
        if group == 0
            || !group.is_multiple_of(32)
            || !cols.is_multiple_of(32)
            || !(cols % group).is_multiple_of(32)
        {
            return Err(Error::Invalid(format!(
                "{} needs rows of a multiple of 32 elements in blocks of a multiple of 32; rows of {cols} \
                 in blocks of {group} are not",
                self.describe()
            )));
        }
        let packed =
            |kind, bits| DType::Packed(Packed { kind, bits, group: group as u32, cols: cols as u32 });
        Ok(match self.for_row(cols).scheme {
            Scheme::Int { bits, .. } if !(2..=8).contains(&bits) => {
                return Err(Error::Invalid(format!("integer grids have 2 to 8 bits, not {bits}")))
            }
            Scheme::Int { bits, sym: true } => packed(PackedKind::IntSym, bits),
            Scheme::Int { bits, sym: false } => packed(PackedKind::IntAsym, bits),
            Scheme::Nf4 => packed(PackedKind::Nf4, 4),
            Scheme::Fp4 => packed(PackedKind::Fp4, 4),
            Scheme::Fp8E4M3 => packed(PackedKind::Fp8E4M3, 8),
            Scheme::Fp8E5M2 => packed(PackedKind::Fp8E5M2, 8),
            Scheme::Mxfp4 => DType::MXFP4,
            Scheme::Q8_0 => DType::Q8_0,
            Scheme::Q4_0 => DType::Q4_0,
            Scheme::Q4_1 => DType::Q4_1,
            Scheme::Q5_0 => DType::Q5_0,
            Scheme::Q4_K => DType::Q4_K,
            Scheme::Q6_K => DType::Q6_K,
        })
    }

    /// The stored type of a row of `cols` elements when one grid per block describes it, as the methods
    /// that choose grids or codes themselves (GPTQ, AWQ's clip search, HQQ) need; K-quant super-blocks
    /// are fitted whole by round-to-nearest (`quantize_rtn`) only.
    pub fn grid_dtype(&self, cols: usize) -> Result<DType> {
        if self.scheme.super_blocks() {
            return Err(Error::Invalid(format!(
                "{:?} super-blocks carry quantised sub-block scales, fitted whole by round-to-nearest \
                 (rtn) only; methods that choose one grid per block can write Q4_0, Q4_1, Q5_0 or Q8_0",
                self.scheme
            )));
        }
        self.dtype(cols)
    }

    pub fn describe(&self) -> String {
        let g = match self.granularity {
            Granularity::Group(g) => format!("groups of {g}"),
            Granularity::Channel => "per channel".into(),
            Granularity::Tensor => "per tensor".into(),
        };
        format!("{:?} {g}", self.scheme)
    }

    /// The grid for one group of `values`.
    pub fn fit(&self, values: &[f32]) -> Grid {
        let lo = values.iter().fold(0f32, |m, &v| m.min(v));
        let hi = values.iter().fold(0f32, |m, &v| m.max(v));
        let full = Grid::for_range(self.scheme, lo, hi);
        if !self.search || matches!(self.scheme, Scheme::Mxfp4) {
            return full;
        }
        let err = |g: &Grid| values.iter().map(|&v| (g.round(v) - v).abs().powf(2.4)).sum::<f32>();
        let mut best = (err(&full), full);
        for i in 1..80 {
            let p = 1.0 - i as f32 / 100.0;
            let g = Grid::for_range(self.scheme, p * lo, p * hi);
            let e = err(&g);
            if e < best.0 {
                best = (e, g);
            }
        }
        best.1
    }

    /// Whether the whole tensor shares one grid (the GGUF block schemes always have blocks of 32).
    pub fn per_tensor(&self) -> bool {
        self.granularity == Granularity::Tensor && !self.scheme.fixed_blocks()
    }

    /// Grids for a (rows, cols) matrix `w`: one per block, row-major; per-tensor formats share one.
    pub fn fit_all(&self, w: &[f32], rows: usize, cols: usize) -> Vec<Grid> {
        let group = self.group_len(cols);
        if self.per_tensor() {
            return vec![self.fit(w); rows];
        }
        blocks(&w[..rows * cols], cols, group).map(|g| self.fit(g)).collect()
    }
}

impl Grid {
    /// The grid a scheme fits to a group whose values lie in [lo, hi] (lo ≤ 0 ≤ hi), following the
    /// reference quantisers: GPTQ's min/max for integers (with llama.cpp's full-range symmetric grid),
    /// absmax for NF4/FP, llama.cpp's Q8_0/Q4_0/Q4_1/MXFP4.
    pub fn for_range(scheme: Scheme, lo: f32, hi: f32) -> Grid {
        let amax = hi.max(-lo);
        // The extreme with its sign, which Q4_0 and the symmetric integer grid map to level −2^(b−1).
        let signed = if -lo > hi { lo } else { hi };
        let header = |kind, d: f32, z: f32| {
            let h = BlockHeader::stored(kind, d, z);
            Grid { scheme, d: h.d, z: h.z }
        };
        let f16 = |v: f32| half::f16::from_f32(v).to_f32();
        match scheme {
            Scheme::Int { bits, sym: true } => {
                let half = (1u32 << (bits - 1)) as f32;
                let d = if amax > 0.0 { -signed / half } else { 1.0 };
                header(PackedKind::IntSym, d, 0.0)
            }
            Scheme::Int { bits, sym: false } => {
                let maxq = ((1u32 << bits) - 1) as f32;
                let (lo, hi) = if lo == 0.0 && hi == 0.0 { (-1.0, 1.0) } else { (lo, hi) };
                let d = (hi - lo) / maxq;
                let d = f16(d);
                header(PackedKind::IntAsym, d, (-lo / d).round())
            }
            Scheme::Nf4 => header(PackedKind::Nf4, amax, 0.0),
            Scheme::Fp4 => header(PackedKind::Fp4, amax / E2M1_MAX, 0.0),
            Scheme::Fp8E4M3 => header(PackedKind::Fp8E4M3, amax / E4M3_MAX, 0.0),
            Scheme::Fp8E5M2 => header(PackedKind::Fp8E5M2, amax / E5M2_MAX, 0.0),
            Scheme::Q8_0 => Grid { scheme, d: f16(amax / 127.0), z: 0.0 },
            Scheme::Q4_0 => Grid { scheme, d: f16(signed / -8.0), z: 0.0 },
            Scheme::Q4_1 => Grid { scheme, d: f16((hi - lo) / 15.0), z: f16(lo) },
            Scheme::Q5_0 => Grid { scheme, d: f16(signed / -16.0), z: 0.0 },
            Scheme::Q4_K | Scheme::Q6_K => {
                unreachable!("{scheme:?} is fitted per super-block (quant::kquant)")
            }
            Scheme::Mxfp4 => {
                let e = if amax > 0.0 { (amax.log2().floor() - 2.0 + 127.0).clamp(0.0, 254.0) } else { 0.0 };
                Grid { scheme, d: packed::e8m0_half(e as u8), z: e }
            }
        }
    }

    /// The code `x` rounds to.
    pub fn code(&self, x: f32) -> u8 {
        let inv = |d: f32| if d != 0.0 { 1.0 / d } else { 0.0 };
        match self.scheme {
            Scheme::Int { bits, sym } => {
                let maxq = ((1u32 << bits) - 1) as f32;
                // z inside the rounding: the nearest level also when z is not an integer (HQQ).
                let z = if sym { (1u32 << (bits - 1)) as f32 } else { self.z };
                (x * inv(self.d) + z).round().clamp(0.0, maxq) as u8
            }
            Scheme::Nf4 => packed::nearest_code(PackedKind::Nf4, x * inv(self.d)),
            Scheme::Fp4 => packed::nearest_code(PackedKind::Fp4, x * inv(self.d)),
            Scheme::Fp8E4M3 => packed::nearest_code(PackedKind::Fp8E4M3, x * inv(self.d)),
            Scheme::Fp8E5M2 => packed::nearest_code(PackedKind::Fp8E5M2, x * inv(self.d)),
            Scheme::Q8_0 => ((x * inv(self.d)).round().clamp(-127.0, 127.0) as i8) as u8,
            Scheme::Q4_0 => (x * inv(self.d) + 8.5).floor().clamp(0.0, 15.0) as u8,
            Scheme::Q4_1 => ((x - self.z) * inv(self.d) + 0.5).floor().clamp(0.0, 15.0) as u8,
            Scheme::Q5_0 => (x * inv(self.d) + 16.5).floor().clamp(0.0, 31.0) as u8,
            Scheme::Q4_K | Scheme::Q6_K => unreachable!("{:?} codes come from quant::kquant", self.scheme),
            Scheme::Mxfp4 => {
                // Nearest level of E2M1 at 2^(e−127), with the sign bit as ggml's table orders them.
                let q = packed::nearest_code(PackedKind::Fp4, x / (2.0 * self.d));
                if q == 8 {
                    0
                } else {
                    q
                }
            }
        }
    }

    /// The value `code` decodes to, computed as the decoders compute it.
    pub fn value(&self, code: u8) -> f32 {
        let h = BlockHeader { d: self.d, z: self.z };
        match self.scheme {
            Scheme::Int { bits, sym: true } => packed::code_value(PackedKind::IntSym, bits, h, code),
            Scheme::Int { bits, sym: false } => packed::code_value(PackedKind::IntAsym, bits, h, code),
            Scheme::Nf4 => packed::code_value(PackedKind::Nf4, 4, h, code),
            Scheme::Fp4 => packed::code_value(PackedKind::Fp4, 4, h, code),
            Scheme::Fp8E4M3 => packed::code_value(PackedKind::Fp8E4M3, 8, h, code),
            Scheme::Fp8E5M2 => packed::code_value(PackedKind::Fp8E5M2, 8, h, code),
            Scheme::Q8_0 => (code as i8) as f32 * self.d,
            Scheme::Q4_0 => (code as i32 - 8) as f32 * self.d,
            Scheme::Q4_1 => code as f32 * self.d + self.z,
            Scheme::Q5_0 => (code as i32 - 16) as f32 * self.d,
            Scheme::Q4_K | Scheme::Q6_K => unreachable!("{:?} values come from quant::kquant", self.scheme),
            Scheme::Mxfp4 => 2.0 * packed::E2M1[code as usize] * self.d,
        }
    }

    /// `x` rounded onto the grid.
    pub fn round(&self, x: f32) -> f32 {
        self.value(self.code(x))
    }
}

/// A (rows, cols) matrix's blocks in storage order: each row cut into groups of `group`, the last one
/// shorter when `group` does not divide the row.
pub fn blocks<T>(matrix: &[T], cols: usize, group: usize) -> impl Iterator<Item = &[T]> {
    matrix.chunks_exact(cols).flat_map(move |row| row.chunks(group))
}

/// A matrix stored in a quantised format, with the values it decodes to.
pub struct Quantized {
    pub dtype: DType,
    pub bytes: Vec<u8>,
    /// The decoded weights, (rows, cols) row-major: what the kernels will compute with.
    pub values: Vec<f32>,
}

/// Store a (rows, cols) matrix given each element's code and each block's grid (row-major, as
/// `Format::fit_all` orders them).
pub fn pack(format: &Format, rows: usize, cols: usize, grids: &[Grid], codes: &[u8]) -> Result<Quantized> {
    let dtype = format.grid_dtype(cols)?;
    let group = format.group_len(cols);
    let mut bytes = Vec::with_capacity(dtype.bytes_for((rows * cols) as u64).unwrap_or(0) as usize);
    let mut values = Vec::with_capacity(rows * cols);
    for (b, (codes, grid)) in blocks(codes, cols, group).zip(grids).enumerate() {
        values.extend(codes.iter().map(|&c| grid.value(c)));
        let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
        let nibbles =
            |out: &mut Vec<u8>| out.extend((0..16).map(|j| (codes[j] & 0x0F) | (codes[j + 16] << 4)));
        match dtype {
            DType::Packed(p) => {
                packed::encode_block(p, BlockHeader { d: grid.d, z: grid.z }, codes, &mut bytes)
            }
            DType::Q8_0 => {
                bytes.extend(f16(grid.d));
                bytes.extend_from_slice(codes);
            }
            DType::Q4_0 => {
                bytes.extend(f16(grid.d));
                nibbles(&mut bytes);
            }
            DType::Q4_1 => {
                bytes.extend(f16(grid.d));
                bytes.extend(f16(grid.z));
                nibbles(&mut bytes);
            }
            DType::Q5_0 => {
                bytes.extend(f16(grid.d));
                // The fifth bit of element j is bit j of qh.
                let qh = codes.iter().enumerate().fold(0u32, |qh, (j, &c)| qh | (c as u32 >> 4) << j);
                bytes.extend(qh.to_le_bytes());
                nibbles(&mut bytes);
            }
            DType::MXFP4 => {
                bytes.push(grid.z as u8);
                nibbles(&mut bytes);
            }
            _ => unreachable!("block {b}: {dtype} is not a quantised format"),
        }
    }
    Ok(Quantized { dtype, bytes, values })
}

/// Round-to-nearest: fit every block's grid and round each weight onto it; K-quants fit each
/// super-block with a search (`kquant`), rows not a multiple of 256 take llama.cpp's fallback.
pub fn quantize_rtn(format: &Format, w: &[f32], rows: usize, cols: usize) -> Result<Quantized> {
    let format = format.for_row(cols);
    if format.scheme.super_blocks() {
        return kquant::quantize(format.scheme, w, rows, cols, Fit::Searched);
    }
    format.dtype(cols)?; // before fit_all, which needs whole blocks
    quantize_with_grids(w, rows, cols, &format, &format.fit_all(w, rows, cols))
}

/// Round each weight of a (rows, cols) matrix onto its block's grid from `grids` (one per block,
/// row-major), chosen by the caller (RTN, AWQ's clip search, HQQ).
pub fn quantize_with_grids(
    w: &[f32],
    rows: usize,
    cols: usize,
    format: &Format,
    grids: &[Grid],
) -> Result<Quantized> {
    format.grid_dtype(cols)?;
    let group = format.group_len(cols);
    if w.len() != rows * cols || grids.len() != rows * cols.div_ceil(group) {
        return Err(Error::Invalid(format!(
            "a ({rows}, {cols}) matrix in blocks of {group} needs {} weights and {} grids, not {} and {}",
            rows * cols,
            rows * cols.div_ceil(group),
            w.len(),
            grids.len()
        )));
    }
    let codes: Vec<u8> = blocks(w, cols, group)
        .zip(grids)
        .flat_map(|(values, grid)| values.iter().map(|&v| grid.code(v)))
        .collect();
    pack(format, rows, cols, grids, &codes)
}
