//! The CPU block codec: GGUF tensor bytes to f32, one plain function per block format, following
//! llama.cpp's `dequantize_row_*` (ggml-quants.c) operation for operation, so its results are the
//! reference the GPU kernel (`shaders/dequant.wgsl`) is tested against.

use crate::error::{Error, Result};
use crate::formats::{packed, DType};

/// Decode `n` elements of `dtype` stored in `bytes` (exactly `dtype.bytes_for(n)` bytes).
pub fn dequantize(dtype: DType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let packed_block = |b: &[u8], y: &mut [f32]| match dtype {
        DType::Packed(p) => packed::decode_block(p, b, y),
        _ => unreachable!(),
    };
    let block: &dyn Fn(&[u8], &mut [f32]) = match dtype {
        DType::F32 => &f32_le,
        DType::F16 => &f16_le,
        DType::BF16 => &bf16_le,
        DType::Q8_0 => &q8_0,
        DType::Q4_0 => &q4_0,
        DType::Q4_1 => &q4_1,
        DType::Q5_0 => &q5_0,
        DType::Q5_1 => &q5_1,
        DType::Q4_K => &q4_k,
        DType::Q5_K => &q5_k,
        DType::Q6_K => &q6_k,
        DType::MXFP4 => &packed::decode_mxfp4,
        DType::Packed(_) => &packed_block,
        _ => {
            return Err(Error::unsupported(
                "block codec",
                format!("{dtype} tensors cannot be decoded (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, MXFP4 and Squeeze's packed formats can)"),
            ))
        }
    };
    let expected = dtype.bytes_for(n as u64).ok_or_else(|| {
        Error::Invalid(format!(
            "{n} elements are not a whole number of {dtype} blocks ({} each)",
            dtype.block_size()
        ))
    })?;
    if bytes.len() as u64 != expected {
        return Err(Error::Invalid(format!(
            "{n} {dtype} elements take {expected} bytes, but {} bytes were given",
            bytes.len()
        )));
    }
    let mut out = vec![0f32; n];
    let (block_bytes, block_size) = (dtype.block_bytes() as usize, dtype.block_size() as usize);
    // Packed rows end in a shorter block when the group does not divide them: walk them row by row.
    let (row_bytes, row_len) = match dtype {
        DType::Packed(p) => (p.row_bytes() as usize, p.cols as usize),
        _ => (bytes.len(), n),
    };
    for (row, y_row) in bytes.chunks_exact(row_bytes).zip(out.chunks_exact_mut(row_len)) {
        for (b, y) in row.chunks(block_bytes).zip(y_row.chunks_mut(block_size)) {
            block(b, y);
        }
    }
    Ok(out)
}

/// The IEEE half at byte `at` of `b` (little-endian).
pub fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The bfloat16 at byte `at` of `b` (little-endian).
pub fn bf16(b: &[u8], at: usize) -> f32 {
    half::bf16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn f32_le(b: &[u8], y: &mut [f32]) {
    y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
}

fn f16_le(b: &[u8], y: &mut [f32]) {
    y[0] = f16(b, 0);
}

fn bf16_le(b: &[u8], y: &mut [f32]) {
    y[0] = bf16(b, 0);
}

/// d f16, qs i8[32]: y = qs·d.
pub fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

/// d f16, qs[16]: y[j] = (low nibble − 8)·d, y[j+16] = (high nibble − 8)·d.
pub fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// d f16, m f16, qs[16]: y = q·d + m, nibbles split as in Q4_0.
pub fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// Bit `j` of the little-endian u32 at `at`: the fifth bit of element `j` in Q5_0/Q5_1.
fn high_bit(b: &[u8], at: usize, j: usize) -> u8 {
    let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    ((qh >> j) & 1) as u8
}

/// d f16, qh u32, qs[16]: y = (q5 − 16)·d with q5 = nibble | bit j of qh << 4.
pub fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    let qs = &b[6..22];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) | high_bit(b, 2, j) << 4;
        let hi = (qs[j] >> 4) | high_bit(b, 2, j + 16) << 4;
        y[j] = (lo as i32 - 16) as f32 * d;
        y[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

/// d f16, m f16, qh u32, qs[16]: y = q5·d + m.
pub fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qs = &b[8..24];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) | high_bit(b, 4, j) << 4;
        let hi = (qs[j] >> 4) | high_bit(b, 4, j + 16) << 4;
        y[j] = lo as f32 * d + m;
        y[j + 16] = hi as f32 * d + m;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K
/// (llama.cpp's `get_scale_min_k4`): sub-blocks 0–3 use the low 6 bits of bytes j and j+4; 4–7 take
/// their low 4 bits from byte j+4 and their top 2 bits from the spare top bits of bytes j−4 and j.
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4, (q[j + 4] >> 4) | (q[j] >> 6) << 4)
    }
}

/// d f16, dmin f16, scales[12], qs[128]; eight sub-blocks of 32: y = d·sc·q − dmin·m. Each 64
/// elements share 32 bytes of qs: low nibbles first, then high nibbles.
pub fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    for chunk in 0..4 {
        let q = &b[16 + 32 * chunk..48 + 32 * chunk];
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            y[64 * chunk + l] = d1 * (q[l] & 0x0F) as f32 - min1;
            y[64 * chunk + 32 + l] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

/// d f16, dmin f16, scales[12], qh[32], qs[128]: Q4_K plus a fifth bit; sub-block `s` takes its high
/// bit from bit `s` of qh[l].
pub fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    for chunk in 0..4 {
        let ql = &b[48 + 32 * chunk..80 + 32 * chunk];
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let lo = (ql[l] & 0x0F) + ((qh[l] >> (2 * chunk)) & 1) * 16;
            let hi = (ql[l] >> 4) + ((qh[l] >> (2 * chunk + 1)) & 1) * 16;
            y[64 * chunk + l] = d1 * lo as f32 - min1;
            y[64 * chunk + 32 + l] = d2 * hi as f32 - min2;
        }
    }
}

/// ql[128], qh[64], i8 scales[16], d f16 (last); sixteen sub-blocks of 16: y = d·sc·(q6 − 32).
/// Each half of 128 elements uses 64 ql bytes and 32 qh bytes: quarter t of the half takes the low
/// (t < 2) or high nibble of ql[l + 32·(t mod 2)] and bits 2t..2t+1 of qh[l].
pub fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..160 + 32 * half];
        let sc = &b[192 + 8 * half..200 + 8 * half];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | (qh[l] & 3) << 4) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) as i32 - 32;
            let q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}
