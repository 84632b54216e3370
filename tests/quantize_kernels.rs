//! GPU round-to-nearest quantisation (`kernels::quantize`) against its CPU twin
//! (`compress::quant::grid::quantize_rtn`): the same stored bytes for every scheme, granularity and
//! awkward shape, on weights with outliers, all-zero, one-signed, tiny and grid-aligned groups, on a GPU
//! whose small bindings force row chunks; hand-computed blocks for ties (round half away from zero,
//! f16 round to nearest even, MXFP4's exponent at powers of two); and the errors for bad arguments.
//! Native runs use lavapipe: `WGPU_BACKEND=vulkan cargo test --test quantize_kernels`.

mod common;

use common::{small_gpu, Rng};
use squeeze::compress::quant::grid::{pack, quantize_rtn, Format, Granularity, Grid, Scheme};
use squeeze::error::Error;
use squeeze::formats::DType;
use squeeze::gpu::Gpu;
use squeeze::kernels::quantize::quantize;

fn schemes() -> Vec<Scheme> {
    let ints = (2..=8).flat_map(|bits| [true, false].map(|sym| Scheme::Int { bits, sym }));
    let others = [
        Scheme::Nf4,
        Scheme::Fp4,
        Scheme::Fp8E4M3,
        Scheme::Fp8E5M2,
        Scheme::Mxfp4,
        Scheme::Q8_0,
        Scheme::Q4_0,
        Scheme::Q4_1,
    ];
    ints.chain(others).collect()
}

/// Groups of 32 and of the largest other multiple of 32 below `cols` that divides it, per channel, per
/// tensor.
fn granularities(cols: usize) -> Vec<Granularity> {
    let mut g = vec![Granularity::Group(32)];
    if let Some(wide) = (64..cols).step_by(32).rev().find(|&g| cols.is_multiple_of(g)) {
        g.push(Granularity::Group(wide as u32));
    }
    g.extend([Granularity::Channel, Granularity::Tensor]);
    g
}

/// Rows at scales from 0.01 to 10, each 32-element group one of: plain, one outlier 50× (or 10^6,
/// past f16's range once divided by the scale), all zero (with a −0), one sign only, tiny (scales that
/// round to 0 in f16), or k/16 multiples of a power of two (codes exactly halfway between two levels).
/// Row 3 is all zero.
fn weights(rows: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    let mut w = Vec::with_capacity(rows * cols);
    for row in 0..rows {
        let scale = 10f32.powf(1.5 * rng.uniform() - 0.5);
        for _ in 0..cols / 32 {
            let mut g: Vec<f32> = (0..32).map(|_| rng.uniform() * scale).collect();
            match (rng.next_u64() % 10, row) {
                (_, 3) | (0, _) => {
                    g.iter_mut().enumerate().for_each(|(i, x)| *x = if i == 5 { -0.0 } else { 0.0 })
                }
                (1, _) => g[(rng.next_u64() % 32) as usize] *= 50.0,
                (2, _) => g[(rng.next_u64() % 32) as usize] = -1e6,
                (3, _) => g.iter_mut().for_each(|x| *x = x.abs()),
                (4, _) => g.iter_mut().for_each(|x| *x = -x.abs()),
                (5, _) => g.iter_mut().for_each(|x| *x *= 1e-7),
                (6, _) => {
                    let unit = 2f32.powi((rng.next_u64() % 7) as i32 - 3);
                    g.iter_mut().for_each(|x| *x = ((rng.next_u64() % 32) as f32 - 16.0) / 16.0 * unit);
                    g[0] = -unit;
                }
                _ => {}
            }
            w.extend(g);
        }
    }
    w
}

/// Upload `w`, quantise it on the GPU and read the stored bytes back.
async fn gpu_bytes(gpu: &Gpu, w: &[f32], rows: usize, cols: usize, format: &Format) -> (DType, Vec<u8>) {
    let bytes: Vec<u8> = bytemuck::cast_slice(w).to_vec();
    let input = gpu.upload_tensor("w", &[rows as u64, cols as u64], DType::F32, &bytes).unwrap();
    let t = quantize(gpu, &input.buffer, rows as u64, cols as u64, format, "q").await.unwrap();
    (t.dtype, gpu.read_bytes(&t.buffer, 0, t.n_bytes).await.unwrap())
}

fn describe(format: &Format, rows: usize, cols: usize) -> String {
    format!("{}{} ({rows}, {cols})", format.describe(), if format.search { " searched" } else { "" })
}

/// The first stored block where two byte strings differ, with both blocks.
fn first_difference(dtype: DType, got: &[u8], want: &[u8]) -> Option<String> {
    let size = dtype.block_bytes() as usize;
    let b = got.chunks(size).zip(want.chunks(size)).position(|(g, w)| g != w)?;
    Some(format!("block {b}: GPU {:02x?}\n CPU {:02x?}", &got[b * size..][..size], &want[b * size..][..size]))
}

/// The shapes every format is checked on: 1, 7 and 37 rows (37×576 f32 is two 64 KiB chunks) of
/// 32 to 576 columns.
const SHAPES: [(usize, usize); 12] = [
    (1, 32),
    (7, 32),
    (37, 32),
    (1, 96),
    (7, 96),
    (37, 96),
    (1, 160),
    (7, 160),
    (37, 160),
    (1, 576),
    (7, 576),
    (37, 576),
];

/// Quantise `w` on both sides; fail unless the stored bytes agree (searched formats: see
/// [`assert_near_ties`]). Returns the number of blocks and of blocks where a search took a near tie.
async fn check(gpu: &Gpu, format: &Format, w: &[f32], rows: usize, cols: usize) -> (usize, usize) {
    let what = describe(format, rows, cols);
    let want = quantize_rtn(format, w, rows, cols).unwrap();
    let (dtype, got) = gpu_bytes(gpu, w, rows, cols, format).await;
    assert_eq!(dtype, want.dtype, "{what}");
    assert_eq!(got.len(), want.bytes.len(), "{what}");
    let blocks = got.len() / dtype.block_bytes() as usize;
    if got == want.bytes {
        return (blocks, 0);
    }
    let difference = first_difference(dtype, &got, &want.bytes).unwrap();
    assert!(format.search, "{what}: {difference}");
    (blocks, assert_near_ties(format, w, rows, cols, &got, &what))
}

/// The stored bytes of `values` on grid `g`, as `quantize_rtn` writes them.
fn packed(format: &Format, values: &[f32], rows: usize, g: Grid) -> Vec<u8> {
    let codes: Vec<u8> = values.iter().map(|&v| g.code(v)).collect();
    pack(format, rows, values.len() / rows, &vec![g; rows], &codes).unwrap().bytes
}

/// `Format::fit`'s candidate grids for `values` (the full range, then 79 shrunk ones) with their
/// Σ|err|^2.4 as the CPU computes it.
fn candidates(format: &Format, values: &[f32]) -> Vec<(f32, Grid)> {
    let lo = values.iter().fold(0f32, |m, &v| m.min(v));
    let hi = values.iter().fold(0f32, |m, &v| m.max(v));
    (0..80)
        .map(|i| {
            let p = 1.0 - i as f32 / 100.0;
            let g = Grid::for_range(format.scheme, p * lo, p * hi);
            (values.iter().map(|&v| (g.round(v) - v).abs().powf(2.4)).sum::<f32>(), g)
        })
        .collect()
}

/// A searched grid compares Σ|err|^2.4 between candidate ranges, and the GPU's pow() need not round
/// like the CPU's powf: WGSL only bounds it as exp2(2.4·log2 e), a few dozen ULP for these errors (on
/// lavapipe the two agreed on every block tested). Where two candidates' sums lie that close, the two
/// sides may keep different ones. So each block (the whole tensor for per-tensor grids) that differs
/// must be exactly one candidate's packing whose CPU error is within 10⁻⁴ (relative) of the best one's.
/// Returns how many blocks took such a tie.
fn assert_near_ties(format: &Format, w: &[f32], rows: usize, cols: usize, got: &[u8], what: &str) -> usize {
    let per_tensor = format.granularity == Granularity::Tensor
        && !matches!(format.scheme, Scheme::Q8_0 | Scheme::Q4_0 | Scheme::Q4_1 | Scheme::Mxfp4);
    let (group, rows_per_block) = if per_tensor { (rows * cols, rows) } else { (format.group_len(cols), 1) };
    let size = got.len() / (w.len() / group);
    let mut ties = 0;
    for (b, (values, block)) in w.chunks(group).zip(got.chunks(size)).enumerate() {
        let grids = candidates(format, values);
        let best = grids.iter().map(|c| c.0).fold(f32::INFINITY, f32::min);
        let fit = format.fit(values);
        if block == packed(format, values, rows_per_block, fit) {
            continue;
        }
        let taken = grids.iter().find(|c| block == packed(format, values, rows_per_block, c.1));
        let Some(&(err, _)) = taken else { panic!("{what}: block {b} is none of the candidate grids") };
        assert!(err <= best * (1.0 + 1e-4), "{what}: block {b} took error {err:e}, the best is {best:e}");
        ties += 1;
    }
    ties
}

async fn check_every_format(search: bool) {
    let gpu = small_gpu();
    let mut rng = Rng::new(if search { 11 } else { 7 });
    let (mut blocks, mut ties) = (0, 0);
    for (rows, cols) in SHAPES {
        let w = weights(rows, cols, &mut rng);
        for scheme in schemes() {
            for granularity in granularities(cols) {
                let (b, t) = check(&gpu, &Format { scheme, granularity, search }, &w, rows, cols).await;
                blocks += b;
                ties += t;
            }
        }
    }
    assert!(ties * 100 <= blocks, "{ties} of {blocks} searched blocks took a near tie");
}

#[test]
fn gpu_quantize_matches_cpu_bytes_for_every_scheme_granularity_and_shape() {
    pollster::block_on(check_every_format(false));
}

#[test]
fn gpu_search_matches_cpu_for_every_scheme_granularity_and_shape() {
    pollster::block_on(check_every_format(true));
}

/// Rows of 576 in 64 KiB bindings are chunks of 28 rows: 150 rows are six dispatches, each starting
/// mid-word for MXFP4 (17-byte blocks) and Q4_0 (18), and the per-tensor range and search sums run
/// across all six. Besides `weights`, whose −10⁶ outliers overflow some scales to f16 infinity (and
/// so make many candidates' errors NaN), plain uniform weights with a few 20× outliers, where every
/// candidate competes.
#[test]
fn gpu_quantize_matches_cpu_across_row_chunks() {
    pollster::block_on(async {
        let gpu = small_gpu();
        let (rows, cols) = (150, 576);
        let mut rng = Rng::new(3);
        let edge_cases = weights(rows, cols, &mut rng);
        let plain: Vec<f32> =
            (0..rows * cols).map(|i| rng.uniform() * if i % 1000 == 7 { 20.0 } else { 1.0 }).collect();
        let int4 = Scheme::Int { bits: 4, sym: false };
        for w in [&edge_cases, &plain] {
            for (scheme, granularity, search) in [
                (Scheme::Mxfp4, Granularity::Group(32), false),
                (Scheme::Q4_0, Granularity::Channel, true),
                (Scheme::Int { bits: 3, sym: true }, Granularity::Group(64), false),
                (Scheme::Nf4, Granularity::Group(64), true),
                (int4, Granularity::Tensor, false),
                (int4, Granularity::Tensor, true),
                (Scheme::Fp8E4M3, Granularity::Tensor, true),
            ] {
                let format = Format { scheme, granularity, search };
                check(&gpu, &format, w, rows, cols).await;
                if search && w == &plain {
                    let unsearched = Format { search: false, ..format };
                    let bytes = |f| quantize_rtn(f, w, rows, cols).unwrap().bytes;
                    assert_ne!(bytes(&format), bytes(&unsearched), "{format:?}: the search changed nothing");
                }
            }
        }
    });
}

/// One block of `values` quantised on the GPU, checked against the CPU.
async fn one_block(gpu: &Gpu, scheme: Scheme, values: &[f32]) -> Vec<u8> {
    let format = Format { scheme, granularity: Granularity::Channel, search: false };
    let (_, got) = gpu_bytes(gpu, values, 1, values.len(), &format).await;
    assert_eq!(got, quantize_rtn(&format, values, 1, values.len()).unwrap().bytes, "{scheme:?} {values:?}");
    got
}

/// k/16 for k = −16 … 15: the symmetric 4-bit scale is 1/8, so x/d = k/2 and every odd k is a tie.
/// The zero point 8 is added before Rust's round (and the kernel's), so k/2 + 8 ≥ 0 rounds away from
/// zero, which is up: code ⌈k/2⌉ + 8, clamped to 15, as Q4_0's ⌊x/d + 8.5⌋ would. Element 2i is the low
/// nibble of code byte i.
#[test]
fn ties_round_to_the_higher_code() {
    pollster::block_on(async {
        let values: Vec<f32> = (-16..16).map(|k| k as f32 / 16.0).collect();
        let got = one_block(&small_gpu(), Scheme::Int { bits: 4, sym: true }, &values).await;
        let want = [
            0x00, 0x30, // d = 0.125 as f16
            0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE, 0xFF,
        ];
        assert_eq!(got, want);
    });
}

/// Q8_0's scale amax/127 exactly halfway between two f16 values rounds to the even one: 1 + 2^−11 to
/// 1.0 (0x3C00), 1 + 3·2^−11 to 1 + 2^−9 (0x3C02).
#[test]
fn f16_scales_round_to_nearest_even() {
    pollster::block_on(async {
        let gpu = small_gpu();
        for (d, header) in [(1.0 + 2f32.powi(-11), [0x00, 0x3C]), (1.0 + 3.0 * 2f32.powi(-11), [0x02, 0x3C])]
        {
            let mut values = vec![0.0; 32];
            values[7] = 127.0 * d;
            let got = one_block(&gpu, Scheme::Q8_0, &values).await;
            assert_eq!(got[..2], header, "amax 127·{d}");
            assert_eq!(got[2 + 7], 127, "amax 127·{d}");
        }
    });
}

/// MXFP4's exponent is ⌊log2 amax⌋ + 125 with log2 rounded to f32 first: 4 → 127 and 8 → 128, and
/// the f32 just below 8 (8 − 2^−21, log2 = 3 − 8.6·10⁻⁸) also → 128, as its log2 rounds to 3.0,
/// while 8 − 2^−20 (log2 = 3 − 1.7·10⁻⁷) stays at 127.
#[test]
fn mxfp4_exponent_follows_the_rounded_log2() {
    pollster::block_on(async {
        let gpu = small_gpu();
        for (amax, e) in [(4.0, 127), (8.0, 128), (8.0 - 2f32.powi(-21), 128), (8.0 - 2f32.powi(-20), 127)] {
            let mut values: Vec<f32> = (0..32).map(|i| i as f32 / 40.0).collect();
            values[20] = -amax;
            let got = one_block(&gpu, Scheme::Mxfp4, &values).await;
            assert_eq!(got[0], e, "amax {amax}");
        }
    });
}

/// All-zero matrices: integer grids fall back to [−1, 1] or d = 1, the others store d = 0.
#[test]
fn all_zero_matrices_match_cpu() {
    pollster::block_on(async {
        let gpu = small_gpu();
        let w = vec![0.0; 7 * 96];
        for scheme in schemes() {
            for granularity in granularities(96) {
                for search in [false, true] {
                    check(&gpu, &Format { scheme, granularity, search }, &w, 7, 96).await;
                }
            }
        }
    });
}

#[test]
fn bad_arguments_are_clear_errors() {
    pollster::block_on(async {
        let gpu = small_gpu();
        let w = gpu.upload_tensor("w", &[4, 96], DType::F32, &[0u8; 4 * 96 * 4]).unwrap();
        let quantize = |rows, cols, scheme, granularity| {
            let format = Format { scheme, granularity, search: false };
            pollster::block_on(quantize(&gpu, &w.buffer, rows, cols, &format, "blk.0.ffn_up.weight"))
                .err()
                .unwrap()
        };
        let e = quantize(4, 96, Scheme::Nf4, Granularity::Group(64));
        assert!(
            e.to_string().contains("needs groups that divide the row; rows of 96 end in a shorter block"),
            "{e}"
        );
        let e = quantize(4, 96, Scheme::Int { bits: 9, sym: true }, Granularity::Channel);
        assert!(e.to_string().contains("2 to 8 bits, not 9"), "{e}");
        let e = quantize(5, 96, Scheme::Q8_0, Granularity::Channel);
        assert!(matches!(e, Error::Invalid(_)) && e.to_string().contains("480 f32 values"), "{e}");
        let e = quantize(0, 96, Scheme::Q8_0, Granularity::Channel);
        assert!(e.to_string().contains("(0, 96)"), "{e}");
        // Q5_0 and the K-quants (also where Q6_K would fall back to Q8_0) are CPU-only.
        for scheme in [Scheme::Q5_0, Scheme::Q4_K, Scheme::Q6_K] {
            let e = quantize(4, 96, scheme, Granularity::Channel);
            assert!(e.to_string().contains("quantise it on the CPU (grid::quantize_rtn)"), "{e}");
        }
    });
}
