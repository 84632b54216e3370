//! Squeeze's packed block formats (`DType::Packed`) and ggml's MXFP4: the byte layouts, the value of
//! each code, and the CPU codec in both directions. The GPU decoder (`shaders/blocks.wgsl`) follows
//! the same layouts; `cpu::dequant` decodes through `decode_block` here.
//!
//! A block holds `group` consecutive elements of one row (a multiple of 32; a whole row for per-channel
//! scales): a header, then the codes as one little-endian bit stream, element j at bits j·b … j·b+b−1.
//! Headers: IntSym d f16 · IntAsym d f16, z f16 · Nf4 d f16 · Fp4 d f16 · Fp8 d f32.
//! MXFP4 is ggml's block: e u8 (E8M0), qs[16] with element j in the low and j+16 in the high nibble
//! of qs[j]; value = kvalues[q]·2^(e−128), where kvalues are the E2M1 values doubled.

use super::dtype::{Packed, PackedKind};

/// NF4 levels (QLoRA / bitsandbytes), ascending.
pub const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// FP4 E2M1 values by code: bit 3 is the sign.
pub const E2M1: [f32; 16] =
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

/// The largest finite magnitudes of FP8 E4M3 and E5M2, and of FP4 E2M1.
pub const E4M3_MAX: f32 = 448.0;
pub const E5M2_MAX: f32 = 57344.0;
pub const E2M1_MAX: f32 = 6.0;

/// A block's scale and zero point as stored (already rounded to the header's precision).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BlockHeader {
    pub d: f32,
    pub z: f32,
}

impl BlockHeader {
    /// Round `d` and `z` to the precision `kind` stores them in, so that codes chosen against the
    /// result decode to exactly what was chosen.
    pub fn stored(kind: PackedKind, d: f32, z: f32) -> BlockHeader {
        let h = |v: f32| half::f16::from_f32(v).to_f32();
        match kind {
            PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2 => BlockHeader { d, z: 0.0 },
            PackedKind::IntAsym => BlockHeader { d: h(d), z: h(z) },
            _ => BlockHeader { d: h(d), z: 0.0 },
        }
    }
}

/// The value of FP8 `code`: E4M3 (bias 7, no infinities) or E5M2 (bias 15, IEEE-like).
pub fn fp8_value(kind: PackedKind, code: u8) -> f32 {
    let (mant_bits, bias) = match kind {
        PackedKind::Fp8E5M2 => (2, 15),
        _ => (3, 7),
    };
    let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((code & 0x7F) >> mant_bits) as i32;
    let m = (code & ((1 << mant_bits) - 1)) as f32 / (1 << mant_bits) as f32;
    let magnitude = if e == 0 { m * 2f32.powi(1 - bias) } else { (1.0 + m) * 2f32.powi(e - bias) };
    sign * magnitude
}

/// The value `code` stands for in a block of `kind` with header `h`.
pub fn code_value(kind: PackedKind, bits: u8, h: BlockHeader, code: u8) -> f32 {
    match kind {
        PackedKind::IntSym => h.d * (code as f32 - (1u32 << (bits - 1)) as f32),
        PackedKind::IntAsym => h.d * (code as f32 - h.z),
        PackedKind::Nf4 => NF4[code as usize] * h.d,
        PackedKind::Fp4 => E2M1[code as usize] * h.d,
        PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2 => fp8_value(kind, code) * h.d,
    }
}

/// The code of `kind` nearest to `x` (already divided by the block scale): NF4, E2M1 and FP8 grids.
/// Ties go to the smaller magnitude; values beyond the grid saturate at its largest magnitude.
pub fn nearest_code(kind: PackedKind, x: f32) -> u8 {
    match kind {
        PackedKind::Nf4 => nearest_in(&NF4, x) as u8,
        PackedKind::Fp4 => {
            let q = nearest_in(&E2M1[..8], x.abs()) as u8;
            if x < 0.0 && q != 0 {
                q | 8
            } else {
                q
            }
        }
        PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2 => {
            // Positive codes are monotone up to the largest finite one.
            let top = if kind == PackedKind::Fp8E4M3 { 0x7E } else { 0x7B };
            let (mut lo, mut hi) = (0u8, top);
            let a = x.abs();
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if fp8_value(kind, mid) <= a {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let q =
                if lo < top && fp8_value(kind, lo + 1) - a < a - fp8_value(kind, lo) { lo + 1 } else { lo };
            if x < 0.0 && q != 0 {
                q | 0x80
            } else {
                q
            }
        }
        PackedKind::IntSym | PackedKind::IntAsym => unreachable!("integer codes are rounded, not searched"),
    }
}

/// Index of the entry of ascending `levels` nearest to `x` (the lower one on a tie).
fn nearest_in(levels: &[f32], x: f32) -> usize {
    let mut best = 0;
    for (i, &l) in levels.iter().enumerate() {
        if (l - x).abs() < (levels[best] - x).abs() {
            best = i;
        }
    }
    best
}

/// Append one block: `h` as stored, then `codes` (one per element, each < 2^bits) bit-packed.
pub fn encode_block(p: Packed, h: BlockHeader, codes: &[u8], out: &mut Vec<u8>) {
    debug_assert!(codes.len() <= p.group as usize);
    match p.kind {
        PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2 => out.extend_from_slice(&h.d.to_le_bytes()),
        PackedKind::IntAsym => {
            out.extend_from_slice(&half::f16::from_f32(h.d).to_le_bytes());
            out.extend_from_slice(&half::f16::from_f32(h.z).to_le_bytes());
        }
        _ => out.extend_from_slice(&half::f16::from_f32(h.d).to_le_bytes()),
    }
    let b = p.bits as u32;
    let mut acc = 0u64;
    let mut filled = 0u32;
    for &c in codes {
        acc |= (c as u64 & ((1 << b) - 1)) << filled;
        filled += b;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    debug_assert_eq!(filled, 0);
}

/// The header of a stored block.
pub fn read_header(kind: PackedKind, block: &[u8]) -> BlockHeader {
    let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
    match kind {
        PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2 => {
            BlockHeader { d: f32::from_le_bytes([block[0], block[1], block[2], block[3]]), z: 0.0 }
        }
        PackedKind::IntAsym => BlockHeader { d: f16(0), z: f16(2) },
        _ => BlockHeader { d: f16(0), z: 0.0 },
    }
}

/// The `n` codes of a stored block (`p.group`, fewer in a row's last block).
pub fn read_codes(p: Packed, block: &[u8], n: usize) -> Vec<u8> {
    let codes = &block[p.kind.header_bytes() as usize..];
    let b = p.bits as usize;
    (0..n)
        .map(|j| {
            let bit = j * b;
            let word = codes[bit / 8] as u16 | (*codes.get(bit / 8 + 1).unwrap_or(&0) as u16) << 8;
            ((word >> (bit % 8)) & ((1 << b) - 1)) as u8
        })
        .collect()
}

/// Decode one stored block of `p` into `y` (`p.group` values, fewer in a row's last block).
pub fn decode_block(p: Packed, block: &[u8], y: &mut [f32]) {
    let (h, codes) = (read_header(p.kind, block), read_codes(p, block, y.len()));
    for (y, c) in y.iter_mut().zip(codes) {
        *y = code_value(p.kind, p.bits, h, c);
    }
}

/// ggml's kvalues for MXFP4 (encoding is `compress::quant::grid`): E2M1 doubled, so that the E8M0
/// scale is halved (2^(e−128)).
const MXFP4_KVALUES: [f32; 16] = [0., 1., 2., 3., 4., 6., 8., 12., 0., -1., -2., -3., -4., -6., -8., -12.];

/// 2^(e−128) for an E8M0 exponent byte, built from bits as ggml's `ggml_e8m0_to_fp32_half` does:
/// e = 0 and 1 are the subnormals 2^−128 and 2^−127 (`2f32.powi(-128)` would give 0).
pub fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000 << e } else { (e as u32 - 1) << 23 };
    f32::from_bits(bits)
}

/// Decode one 17-byte MXFP4 block into 32 values (ggml `dequantize_row_mxfp4`).
pub fn decode_mxfp4(block: &[u8], y: &mut [f32]) {
    let d = e8m0_half(block[0]);
    for j in 0..16 {
        y[j] = MXFP4_KVALUES[(block[1 + j] & 15) as usize] * d;
        y[j + 16] = MXFP4_KVALUES[(block[1 + j] >> 4) as usize] * d;
    }
}
