//! Squeeze's packed formats (integer 2–8 bit, NF4, FP4, FP8) and MXFP4: the CPU codec against the
//! quantisation grids that write them, hand-computed blocks, and the GPU decoders (dequant, matmul,
//! embed) against the CPU codec on awkward shapes, also through small binding windows.
//! Native runs use lavapipe: `WGPU_BACKEND=vulkan cargo test --release --test packed`.

mod common;

use common::{gpu, small_gpu, Rng};
use squeeze::compress::quant::grid::{quantize_rtn, Format, Granularity, Grid, Quantized, Scheme};
use squeeze::cpu;
use squeeze::formats::{DType, Packed, PackedKind};
use squeeze::gpu::Gpu;
use squeeze::kernels::{dequant, embed, matmul};

/// Every scheme the grids write: integers of 2–8 bits both ways, the float grids, MXFP4 and the
/// GGUF blocks (the K-quants' super-blocks are fitted whole: tests/kquant.rs).
fn schemes() -> Vec<Scheme> {
    let mut s: Vec<Scheme> =
        (2..=8).flat_map(|bits| [true, false].map(|sym| Scheme::Int { bits, sym })).collect();
    s.extend([Scheme::Nf4, Scheme::Fp4, Scheme::Fp8E4M3, Scheme::Fp8E5M2, Scheme::Mxfp4]);
    s.extend([Scheme::Q8_0, Scheme::Q4_0, Scheme::Q4_1, Scheme::Q5_0]);
    s
}

/// The schemes stored as `DType::Packed` or MXFP4, which the new GPU decoders read.
fn packed_schemes() -> Vec<Scheme> {
    schemes()
        .into_iter()
        .filter(|s| !matches!(s, Scheme::Q8_0 | Scheme::Q4_0 | Scheme::Q4_1 | Scheme::Q5_0))
        .collect()
}

fn format(scheme: Scheme, granularity: Granularity) -> Format {
    Format { scheme, granularity, search: false }
}

// ---------------------------------------------------------------------------------------------
// The CPU codec against the grids

/// Rows of weights with the cases that break quantisers: ordinary rows, small weights with large
/// outliers, a row starting with 128 zeros (an all-zero group at every group size), an all-zero row,
/// negative-dominant and positive-only rows, zeros scattered among values, and tiny weights (f16
/// scales in the subnormal range).
fn awkward_weights(cols: usize, rng: &mut Rng) -> Vec<f32> {
    let rows: [&dyn Fn(usize, f32) -> f32; 8] = [
        &|_, u| u,
        &|c, u| if c % 61 == 17 { 40.0 * u.signum() } else { 0.05 * u },
        &|c, u| if c < 128 { 0.0 } else { u },
        &|_, _| 0.0,
        &|_, u| 0.55 * u - 0.45,
        &|_, u| 0.25 * (u + 1.0),
        &|c, u| if c % 3 == 0 { 0.0 } else { u },
        &|_, u| 1e-4 * u,
    ];
    rows.iter().flat_map(|f| (0..cols).map(|c| f(c, rng.uniform())).collect::<Vec<_>>()).collect()
}

/// The bits per weight a format stores: code bits plus its header spread over the group.
fn expected_bits_per_weight(scheme: Scheme, group: usize) -> f64 {
    let (bits, header_bits) = match scheme {
        Scheme::Int { bits, sym: true } => (bits as f64, 16.0),
        Scheme::Int { bits, sym: false } => (bits as f64, 32.0),
        Scheme::Nf4 | Scheme::Fp4 => (4.0, 16.0),
        Scheme::Fp8E4M3 | Scheme::Fp8E5M2 => (8.0, 32.0),
        Scheme::Mxfp4 => return 4.25,
        Scheme::Q8_0 => return 8.5,
        Scheme::Q4_0 => return 4.5,
        Scheme::Q4_1 => return 5.0,
        Scheme::Q5_0 => return 5.5,
        Scheme::Q4_K | Scheme::Q6_K => unreachable!("K-quants are tested in tests/kquant.rs"),
    };
    bits + header_bits / group as f64
}

/// The codes a grid's quantiser may choose (u8 as stored; Q8_0's are i8) and the farthest a value
/// inside the grid's range lies from its nearest level, in units of |d|: half a step for the integer
/// grids, half the widest gap for the float ones (NF4 −1…−0.6962, E2M1 4…6 (doubled for MXFP4), E4M3
/// 416…448, E5M2 49152…57344). FP8 codes past the largest finite value are never chosen.
fn codes_and_half_gap(scheme: Scheme) -> (Vec<u8>, f32) {
    let nibbles = (0..16).collect();
    match scheme {
        Scheme::Int { bits, .. } => ((0..=((1u32 << bits) - 1) as u8).collect(), 0.5),
        Scheme::Q8_0 => ((-127i8..=127).map(|q| q as u8).collect(), 0.5),
        Scheme::Q4_0 | Scheme::Q4_1 => (nibbles, 0.5),
        Scheme::Q5_0 => ((0..32).collect(), 0.5),
        Scheme::Q4_K | Scheme::Q6_K => unreachable!("K-quants are tested in tests/kquant.rs"),
        Scheme::Nf4 => (nibbles, (1.0 - 0.696_192_8) / 2.0),
        Scheme::Fp4 => (nibbles, 1.0),
        Scheme::Mxfp4 => (nibbles, 2.0),
        Scheme::Fp8E4M3 => ((0..=255).filter(|c| c & 0x7F != 0x7F).collect(), 16.0),
        Scheme::Fp8E5M2 => ((0..=255).filter(|c| c & 0x7F < 0x7C).collect(), 4096.0),
    }
}

/// x rounded to v on `grid`: no farther than `codes_and_half_gap` allows when x lies within the grid's
/// levels, exactly the nearest end when it lies beyond them.
fn assert_rounded(what: &str, grid: &Grid, x: f32, v: f32) {
    let (codes, half_gap) = codes_and_half_gap(grid.scheme);
    let levels: Vec<f32> = codes.iter().map(|&q| grid.value(q)).collect();
    let lo = levels.iter().fold(f32::INFINITY, |m, &l| m.min(l));
    let hi = levels.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let tol = 4.0 * f32::EPSILON * (x.abs() + grid.d.abs());
    if x < lo - tol || x > hi + tol {
        let end = if x < lo { lo } else { hi };
        assert_eq!(v, end, "{what}: {x} beyond the grid [{lo}, {hi}] must clamp to its end");
    } else {
        let bound = half_gap * grid.d.abs() + tol;
        assert!((x - v).abs() <= bound, "{what}: {x} → {v}, more than {bound} off (d = {})", grid.d);
    }
}

fn assert_close_f64(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-12 * want, "{what}: {got}, expected {want}");
}

#[test]
fn cpu_codec_decodes_what_every_grid_wrote() {
    let (rows, cols) = (8, 256);
    let w = awkward_weights(cols, &mut Rng::new(1));
    let granularities = [
        Granularity::Group(32),
        Granularity::Group(64),
        Granularity::Group(128),
        Granularity::Channel,
        Granularity::Tensor,
    ];
    for scheme in schemes() {
        for granularity in granularities {
            let f = format(scheme, granularity);
            let what = f.describe();
            let q = quantize_rtn(&f, &w, rows, cols).unwrap();
            let n = rows * cols;
            assert_eq!(q.bytes.len() as u64, q.dtype.bytes_for(n as u64).unwrap(), "{what}: stored bytes");
            let decoded = cpu::dequant::dequantize(q.dtype, &q.bytes, n).unwrap();
            for (i, (d, v)) in decoded.iter().zip(&q.values).enumerate() {
                assert_eq!(d.to_bits(), v.to_bits(), "{what}: element {i} decodes to {d}, the grid said {v}");
            }
            let bpw = q.bytes.len() as f64 * 8.0 / n as f64;
            assert_close_f64(
                &format!("{what}: bits per weight"),
                bpw,
                expected_bits_per_weight(scheme, f.group_len(cols)),
            );
            let group = f.group_len(cols);
            for (i, (grid, x)) in
                f.fit_all(&w, rows, cols).iter().flat_map(|g| vec![g; group]).zip(&w).enumerate()
            {
                assert_rounded(&format!("{what}: element {i}"), grid, *x, q.values[i]);
            }
        }
    }
}

#[test]
fn bits_per_weight_of_named_formats() {
    let int = |bits, sym| Scheme::Int { bits, sym };
    let named = [
        (int(4, false), Granularity::Group(128), 256, 4.25),
        (int(4, true), Granularity::Group(32), 256, 4.5),
        (int(3, true), Granularity::Group(64), 256, 3.25),
        (int(8, true), Granularity::Tensor, 256, 8.0625),
        (Scheme::Nf4, Granularity::Group(64), 256, 4.25),
        (Scheme::Fp4, Granularity::Group(32), 256, 4.5),
        (Scheme::Mxfp4, Granularity::Channel, 256, 4.25),
        (Scheme::Fp8E4M3, Granularity::Channel, 576, 8.0 + 32.0 / 576.0),
    ];
    for (scheme, granularity, cols, figure) in named {
        let f = format(scheme, granularity);
        let q = quantize_rtn(&f, &vec![0.5; 3 * cols], 3, cols).unwrap();
        assert_close_f64(&f.describe(), (q.bytes.len() * 8) as f64 / (3 * cols) as f64, figure);
        assert_close_f64(&f.describe(), q.dtype.bits_per_weight(), figure);
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed blocks

fn packed(kind: PackedKind, bits: u8) -> DType {
    DType::Packed(Packed { kind, bits, group: 32, cols: 32 })
}

/// FP8 codes and their values, chosen for the edges: zeros, the smallest and largest subnormals, the
/// smallest normal, ones, the largest finite value, negatives.
#[rustfmt::skip]
const E4M3_CODES: [(u8, f32); 32] = [
    (0x00, 0.0), (0x01, 0.001_953_125), (0x06, 0.011_718_75), (0x07, 0.013_671_875),
    (0x08, 0.015_625), (0x09, 0.017_578_125), (0x10, 0.031_25), (0x2F, 0.468_75),
    (0x30, 0.5), (0x38, 1.0), (0x39, 1.125), (0x3A, 1.25),
    (0x3B, 1.375), (0x3C, 1.5), (0x3F, 1.875), (0x40, 2.0),
    (0x44, 3.0), (0x4B, 5.5), (0x5A, 20.0), (0x60, 32.0),
    (0x70, 128.0), (0x77, 240.0), (0x78, 256.0), (0x7D, 416.0),
    (0x7E, 448.0), (0x80, -0.0), (0x81, -0.001_953_125), (0xA0, -0.125),
    (0xB8, -1.0), (0xC4, -3.0), (0xF8, -256.0), (0xFE, -448.0),
];
// E5M2 from the subnormals 2^−16, 2^−15, 3·2^−16 and the smallest normal 2^−14 (shortest decimals).
#[rustfmt::skip]
const E5M2_CODES: [(u8, f32); 32] = [
    (0x00, 0.0), (0x01, 1.525_878_9e-5), (0x02, 3.051_757_8e-5), (0x03, 4.577_636_7e-5),
    (0x04, 6.103_515_6e-5), (0x05, 7.629_394_5e-5), (0x0B, 2.136_230_5e-4), (0x34, 0.25),
    (0x38, 0.5), (0x3B, 0.875), (0x3C, 1.0), (0x3D, 1.25),
    (0x3E, 1.5), (0x3F, 1.75), (0x40, 2.0), (0x41, 2.5),
    (0x44, 4.0), (0x48, 8.0), (0x5B, 224.0), (0x6A, 3072.0),
    (0x78, 32768.0), (0x79, 40960.0), (0x7A, 49152.0), (0x7B, 57344.0),
    (0x80, -0.0), (0x81, -1.525_878_9e-5), (0xBC, -1.0), (0xC0, -2.0),
    (0xC2, -3.0), (0xDB, -224.0), (0xF8, -32768.0), (0xFB, -57344.0),
];

/// The NF4 levels as QLoRA publishes them (bitsandbytes `create_normal_map`).
#[rustfmt::skip]
const NF4_PUBLISHED: [f64; 16] = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];
const E2M1_VALUES: [f32; 16] =
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

/// Codes 0..15 then 15..0 as a 4-bit little-endian stream: element 2i in the low nibble of byte i.
const NIBBLE_RAMP: [u8; 16] =
    [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE, 0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01];
fn nibble_ramp_codes() -> impl Iterator<Item = usize> {
    (0..16).chain((0..16).rev())
}

/// A hand-written block: its type, bytes (header first) and the 32 values it holds.
struct Known {
    dtype: DType,
    header: usize,
    bytes: Vec<u8>,
    values: Vec<f32>,
}

fn known(dtype: DType, header: &[u8], codes: &[u8], values: Vec<f32>) -> Known {
    Known { dtype, header: header.len(), bytes: [header, codes].concat(), values }
}

fn known_blocks() -> Vec<Known> {
    let fp8 = |kind, d: f32, table: &[(u8, f32)]| {
        let codes: Vec<u8> = table.iter().map(|c| c.0).collect();
        known(packed(kind, 8), &d.to_le_bytes(), &codes, table.iter().map(|c| c.1 * d).collect())
    };
    vec![
        // INT3, d = 0.5 (f16 0x3800): codes 0..7, 7..0, 0 7 1 6 2 5 3 4, 5 5 5 5 2 2 2 2 as a 3-bit
        // stream; codes 2, 5, 10, 13 … straddle bytes. y = 0.5·(q − 4).
        known(
            packed(PackedKind::IntSym, 3),
            &[0x00, 0x38],
            &[0x88, 0xC6, 0xFA, 0x77, 0x39, 0x05, 0x78, 0xAC, 0x8E, 0x6D, 0x2B, 0x49],
            vec![
                -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0, -2.0,
                1.5, -1.5, 1.0, -1.0, 0.5, -0.5, 0.0, 0.5, 0.5, 0.5, 0.5, -1.0, -1.0, -1.0, -1.0,
            ],
        ),
        // UINT4, d = 0.25 (0x3400), z = 3.5 (0x4300): y = 0.25·(q − 3.5).
        known(
            packed(PackedKind::IntAsym, 4),
            &[0x00, 0x34, 0x00, 0x43],
            &NIBBLE_RAMP,
            nibble_ramp_codes().map(|q| 0.25 * q as f32 - 0.875).collect(),
        ),
        // NF4, d = 2 (0x4000): y = 2·NF4[q].
        known(
            packed(PackedKind::Nf4, 4),
            &[0x00, 0x40],
            &NIBBLE_RAMP,
            nibble_ramp_codes().map(|q| 2.0 * NF4_PUBLISHED[q] as f32).collect(),
        ),
        // FP4, d = 1.5 (0x3E00): y = 1.5·E2M1[q].
        known(
            packed(PackedKind::Fp4, 4),
            &[0x00, 0x3E],
            &NIBBLE_RAMP,
            nibble_ramp_codes().map(|q| 1.5 * E2M1_VALUES[q]).collect(),
        ),
        fp8(PackedKind::Fp8E4M3, 0.5, &E4M3_CODES),
        fp8(PackedKind::Fp8E5M2, -2.0, &E5M2_CODES),
        // MXFP4, e = 128 (scale 1): qs[j] = j | (15 − j) << 4, so elements 0..15 are codes 0..15 and
        // 16..31 codes 15..0; ggml's kvalues are the E2M1 values doubled, with +0 for code 8.
        known(DType::MXFP4, &[128], &core::array::from_fn::<u8, 16, _>(|j| j as u8 | (15 - j as u8) << 4), {
            let kv =
                [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0];
            nibble_ramp_codes().map(|q| kv[q]).collect()
        }),
        // MXFP4, e = 0: ggml's scale is the subnormal 2^−128; low nibbles 7 (12), high 9 (−1).
        known(DType::MXFP4, &[0], &[0x97; 16], {
            let d = 2f32.powi(-126) / 4.0;
            [12.0 * d; 16].into_iter().chain([-d; 16]).collect()
        }),
        // MXFP4, e = 254: scale 2^126; low nibbles 1, high 9.
        known(DType::MXFP4, &[254], &[0x91; 16], {
            let d = 2f32.powi(126);
            [d; 16].into_iter().chain([-d; 16]).collect()
        }),
    ]
}

fn decode(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    cpu::dequant::dequantize(dtype, bytes, 32).unwrap()
}

#[test]
fn cpu_codec_known_answers() {
    for k in known_blocks() {
        assert_eq!(k.bytes.len() as u64, k.dtype.block_bytes(), "{}", k.dtype);
        let got = decode(k.dtype, &k.bytes);
        for (j, (g, w)) in got.iter().zip(&k.values).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{} element {j}: decoded {g:e}, by hand {w:e}", k.dtype);
        }
    }
}

/// A change of layout, made to a block's bytes given the length of its header.
type Mutation = fn(&mut [u8], usize);

/// The known answers pin the layout: the same bytes read with the header's bytes reversed, with each
/// code byte's bits reversed (a most-significant-first stream) or with the two halves of the codes
/// exchanged decode to something else, for every block that the mutation changes.
#[test]
fn mutated_layouts_fail_the_known_answers() {
    let mutations: [(&str, Mutation); 3] = [
        ("header bytes reversed", |b, header| b[..header].reverse()),
        ("code bits reversed", |b, header| b[header..].iter_mut().for_each(|b| *b = b.reverse_bits())),
        ("code halves exchanged", |b, header| {
            let half = (b.len() - header) / 2;
            b[header..].rotate_left(half)
        }),
    ];
    for (name, mutate) in mutations {
        let mut changed = 0;
        for k in known_blocks() {
            let mut bytes = k.bytes.clone();
            mutate(&mut bytes, k.header);
            if bytes == k.bytes {
                continue;
            }
            changed += 1;
            let got = decode(k.dtype, &bytes);
            assert!(got.iter().zip(&k.values).any(|(g, w)| g.to_bits() != w.to_bits()), "{} {name}", k.dtype);
        }
        assert!(changed >= 6, "{name} changed only {changed} blocks");
    }
}

// ---------------------------------------------------------------------------------------------
// GPU decoders against the CPU codec

/// Every packed type in blocks of `group` on rows of `cols`: integers of 2–8 bits both ways, NF4, FP4,
/// both FP8s.
fn packed_dtypes(group: u32, cols: u32) -> Vec<DType> {
    let p = |kind, bits| DType::Packed(Packed { kind, bits, group, cols });
    let ints = (2..=8).flat_map(|b| [p(PackedKind::IntSym, b), p(PackedKind::IntAsym, b)]);
    let floats =
        [p(PackedKind::Nf4, 4), p(PackedKind::Fp4, 4), p(PackedKind::Fp8E4M3, 8), p(PackedKind::Fp8E5M2, 8)];
    ints.chain(floats).collect()
}

/// An f16 scale or zero point: zero, subnormal, the largest finite, or normal; either sign.
fn f16_field(rng: &mut Rng) -> [u8; 2] {
    let sign = if rng.next_u64() & 1 == 0 { 0 } else { 0x8000u16 };
    let mantissa = (rng.next_u64() % 1024) as u16;
    let bits = sign
        | match rng.next_u64() % 6 {
            0 => 0,
            1 => mantissa.max(1),
            2 => 0x7BFF,
            _ => ((1 + rng.next_u64() % 30) as u16) << 10 | mantissa,
        };
    bits.to_le_bytes()
}

/// `n` elements of `dtype` as random bytes: every code occurs, some blocks' codes are all 0 or all
/// ones, and headers are finite (f16 fields per `f16_field`, FP8 scales normal within 2^±20 or zero,
/// MXFP4 exponents 2..=254, whose scales are normal).
fn random_blocks(dtype: DType, n: u64, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = vec![0u8; dtype.bytes_for(n).unwrap() as usize];
    rng.fill(&mut bytes);
    // Blocks never span rows; a packed row may end in a shorter block.
    let row_bytes = match dtype {
        DType::Packed(p) => p.row_bytes() as usize,
        _ => bytes.len(),
    };
    let blocks: Vec<&mut [u8]> =
        bytes.chunks_mut(row_bytes).flat_map(|row| row.chunks_mut(dtype.block_bytes() as usize)).collect();
    for block in blocks {
        match rng.next_u64() % 5 {
            0 => block.fill(0x00),
            1 => block.fill(0xFF),
            _ => {}
        }
        match dtype {
            DType::MXFP4 => block[0] = (2 + rng.next_u64() % 253) as u8,
            DType::Packed(Packed { kind: PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2, .. }) => {
                let d = match rng.next_u64() % 5 {
                    0 => 0.0,
                    _ => rng.uniform() * 2f32.powi((rng.next_u64() % 41) as i32 - 20),
                };
                block[..4].copy_from_slice(&d.to_le_bytes());
            }
            DType::Packed(p) => {
                for at in (0..p.kind.header_bytes() as usize).step_by(2) {
                    block[at..at + 2].copy_from_slice(&f16_field(rng));
                }
            }
            _ => unreachable!("{dtype} is not a packed format"),
        }
    }
    bytes
}

/// GPU values equal the CPU codec's (zeros of either sign count as equal: WGSL may ignore the sign of
/// a zero).
fn assert_same_values(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: element {i}: GPU {g:e} ({:#010x}), CPU {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// Upload random blocks, dequantise them on the GPU (in chunks where needed) and compare with the CPU
/// codec. Returns the number of chunks.
async fn check_dequant(gpu: &Gpu, dtype: DType, rows: u64, cols: u64, rng: &mut Rng) -> usize {
    let bytes = random_blocks(dtype, rows * cols, rng);
    let t = gpu.upload_tensor("w", &[rows, cols], dtype, &bytes).unwrap();
    let got = dequant::dequantize_to_vec(gpu, &t).await.unwrap();
    let want = cpu::dequant::dequantize(dtype, &bytes, (rows * cols) as usize).unwrap();
    assert_same_values(&format!("{dtype} ({rows}, {cols})"), &got, &want);
    dequant::chunks(gpu, &t).unwrap().len()
}

/// Row lengths and group sizes: 32-element groups, whole rows of 160 (five 32-element runs per block),
/// groups of 64 in rows of 576, and groups of 128 in rows of 576 and of 64 in rows of 160, which end in
/// a shorter block (64 and 32 elements).
const SHAPES: [(u64, u32); 5] = [(96, 32), (160, 160), (576, 64), (576, 128), (160, 64)];

#[test]
fn gpu_dequant_matches_cpu_for_every_packed_format() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(2);
        for (cols, group) in SHAPES {
            for dtype in packed_dtypes(group, cols as u32).into_iter().chain([DType::MXFP4]) {
                check_dequant(&gpu, dtype, 37, cols, &mut rng).await;
            }
        }
    });
}

#[test]
fn gpu_dequant_of_packed_formats_in_windows() {
    pollster::block_on(async {
        // 67 rows of 576 f32 are 151 KiB of output: three 64 KiB windows, the later ones starting
        // mid-buffer, off the binding alignment and (2-byte headers, MXFP4) mid-word.
        let gpu = small_gpu();
        let mut rng = Rng::new(3);
        for dtype in packed_dtypes(64, 576).into_iter().chain([DType::MXFP4]) {
            let chunks = check_dequant(&gpu, dtype, 67, 576, &mut rng).await;
            assert!(chunks >= 3, "{dtype}: {chunks} chunks");
        }
        // MXFP4 rows of 416 are 221 bytes, and windows of 39 rows start at odd bytes.
        let chunks = check_dequant(&gpu, DType::MXFP4, 100, 416, &mut rng).await;
        assert!(chunks >= 3, "MXFP4: {chunks} chunks");
    });
}

/// Quantise random weights (n, k) with `f` by round-to-nearest: a packed weight and its decoded values.
fn quantized_weight(f: &Format, n: usize, k: usize, rng: &mut Rng) -> Quantized {
    let w: Vec<f32> = (0..n * k)
        .map(|_| rng.uniform() * if rng.next_u64().is_multiple_of(97) { 8.0 } else { 0.5 })
        .collect();
    quantize_rtn(f, &w, n, k).unwrap()
}

/// GPU matmul of an RTN-quantised weight as stored against cpu::matmul on its decoded values, within
/// (k + 2)·ε·Σ|x||w| (the f32 sum of k products against the twin's f64 one, as in
/// tests/forward_kernels.rs). Returns the number of weight row chunks.
async fn check_matmul(gpu: &Gpu, f: &Format, t: usize, n: usize, k: usize, rng: &mut Rng) -> usize {
    let q = quantized_weight(f, n, k, rng);
    let w = gpu.upload_tensor("w", &[n as u64, k as u64], q.dtype, &q.bytes).unwrap();
    let x: Vec<f32> = (0..t * k).map(|_| rng.uniform()).collect();
    let bias: Option<Vec<f32>> = (t == 3).then(|| (0..n).map(|_| rng.uniform()).collect());
    let want = cpu::matmul::matmul(&x, t, k, &q.values, n, bias.as_deref());

    let x_buf = upload(gpu, &x);
    let b_buf = bias.as_ref().map(|b| upload(gpu, b));
    let out = gpu.storage_buffer("out", 4 * (t * n) as u64, wgpu::BufferUsages::empty()).unwrap();
    let mut enc = gpu.encoder();
    matmul::matmul(gpu, &mut enc, &x_buf, &w, b_buf.as_ref(), &out, t as u32).await.unwrap();
    gpu.queue.submit([enc.finish()]);
    let got = gpu.read_f32(&out, 0, (t * n) as u64).await.unwrap();
    gpu.check().unwrap();

    for (ij, (g, want)) in got.iter().zip(&want).enumerate() {
        let (i, j) = (ij / n, ij % n);
        let magnitude: f32 = (0..k).map(|c| (x[i * k + c] * q.values[j * k + c]).abs()).sum::<f32>()
            + bias.as_ref().map_or(0.0, |b| b[j].abs());
        let tol = (k as f32 + 2.0) * f32::EPSILON * magnitude + f32::MIN_POSITIVE;
        assert!((g - want).abs() <= tol, "{} t={t} out[{i}, {j}]: GPU {g}, CPU {want}", q.dtype);
    }
    let limits = gpu.limits();
    let (align, budget) =
        (limits.min_storage_buffer_offset_alignment as u64, limits.max_storage_buffer_binding_size);
    squeeze::gpu::row_chunks("w", n as u64, w.row_bytes(), align, budget).unwrap().len()
}

fn upload(gpu: &Gpu, values: &[f32]) -> wgpu::Buffer {
    let buffer = gpu.storage_buffer("input", 4 * values.len() as u64, wgpu::BufferUsages::COPY_DST).unwrap();
    gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(values));
    buffer
}

/// The (row length, granularity) each scheme is tested at, cycling through `SHAPES`.
fn shape_for(i: usize) -> (usize, Granularity) {
    let (cols, group) = SHAPES[i % SHAPES.len()];
    (cols as usize, if group as u64 == cols { Granularity::Channel } else { Granularity::Group(group) })
}

#[test]
fn gpu_matmul_reads_every_packed_format() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(4);
        for (i, scheme) in packed_schemes().into_iter().enumerate() {
            let (k, granularity) = shape_for(i);
            for t in [1, 3, 9] {
                check_matmul(&gpu, &format(scheme, granularity), t, 37, k, &mut rng).await;
            }
        }
    });
}

#[test]
fn gpu_matmul_of_packed_weights_in_windows() {
    pollster::block_on(async {
        // (600, 576) weights of 97 KiB (INT2) to 340 KiB (FP8) through 64 KiB bindings.
        let gpu = small_gpu();
        let mut rng = Rng::new(5);
        let cases = [
            (Scheme::Int { bits: 2, sym: false }, Granularity::Group(64)),
            (Scheme::Int { bits: 3, sym: true }, Granularity::Group(64)),
            (Scheme::Int { bits: 7, sym: false }, Granularity::Channel),
            (Scheme::Nf4, Granularity::Group(32)),
            (Scheme::Fp8E5M2, Granularity::Group(64)),
            (Scheme::Mxfp4, Granularity::Group(32)),
        ];
        for (scheme, granularity) in cases {
            let chunks = check_matmul(&gpu, &format(scheme, granularity), 3, 600, 576, &mut rng).await;
            assert!(chunks >= 2, "{scheme:?}: {chunks} weight chunks");
        }
    });
}

/// Token embedding and learned positions from a packed table, against the CPU twins on the decoded
/// table: a copy and one add, so equal.
async fn check_embed(gpu: &Gpu, f: &Format, vocab: usize, d: usize, rng: &mut Rng) {
    let q = quantized_weight(f, vocab, d, rng);
    let table = gpu.upload_tensor("token_embd.weight", &[vocab as u64, d as u64], q.dtype, &q.bytes).unwrap();
    let what = format!("{} ({vocab}, {d})", q.dtype);
    let ids: Vec<u32> =
        (0..7).map(|_| (rng.next_u64() % vocab as u64) as u32).chain([vocab as u32 - 1]).collect();
    let t = ids.len();
    let ids_buf = gpu.storage_buffer("ids", 4 * t as u64, wgpu::BufferUsages::COPY_DST).unwrap();
    gpu.queue.write_buffer(&ids_buf, 0, bytemuck::cast_slice(&ids));
    let out = gpu.storage_buffer("out", 4 * (t * d) as u64, wgpu::BufferUsages::empty()).unwrap();
    let mut enc = gpu.encoder();
    embed::embed(gpu, &mut enc, &table, &ids_buf, &out, t as u32).await.unwrap();
    gpu.queue.submit([enc.finish()]);
    let got = gpu.read_f32(&out, 0, (t * d) as u64).await.unwrap();
    assert_same_values(&format!("embed {what}"), &got, &cpu::embed::embed(&q.values, d, &ids));

    let (t, pos0) = (5, vocab - 5);
    let x: Vec<f32> = (0..t * d).map(|_| rng.uniform()).collect();
    let x_buf = upload(gpu, &x);
    let mut enc = gpu.encoder();
    embed::add_positions(gpu, &mut enc, &x_buf, &table, pos0 as u32, t as u32, d as u32).await.unwrap();
    gpu.queue.submit([enc.finish()]);
    let got = gpu.read_f32(&x_buf, 0, (t * d) as u64).await.unwrap();
    let mut want = x;
    cpu::embed::add_positions(&mut want, &q.values, pos0, t, d);
    assert_same_values(&format!("add_positions {what}"), &got, &want);
    gpu.check().unwrap();
}

#[test]
fn gpu_embed_reads_packed_tables() {
    pollster::block_on(async {
        let mut rng = Rng::new(6);
        let gpu = gpu();
        let schemes = [
            Scheme::Int { bits: 5, sym: false },
            Scheme::Int { bits: 3, sym: true },
            Scheme::Nf4,
            Scheme::Fp8E4M3,
            Scheme::Fp8E5M2,
            Scheme::Fp4,
            Scheme::Mxfp4,
        ];
        for (i, scheme) in schemes.into_iter().enumerate() {
            let (d, granularity) = shape_for(i);
            check_embed(&gpu, &format(scheme, granularity), 37, d, &mut rng).await;
        }
        // Tables of 1200 rows of 576 (215 to 380 KiB) through 64 KiB bindings.
        let small = small_gpu();
        for scheme in [Scheme::Int { bits: 4, sym: false }, Scheme::Mxfp4] {
            check_embed(&small, &format(scheme, Granularity::Group(64)), 1200, 576, &mut rng).await;
        }
    });
}
