// Round-to-nearest quantisation of an f32 (rows, cols) matrix into a stored block format: fit each
// block's grid (its min/max range, optionally shrunk in 79 steps while Σ|err|^2.4 falls), choose every
// element's code on it, and write header + codes as the layouts in src/formats/packed.rs and GGUF's
// Q8_0/Q4_0/Q4_1/MXFP4 lay them out. The CPU twin is src/compress/quant/grid.rs (`quantize_rtn`); every
// step below mirrors one of its functions so that both write the same bytes.
//   main:          one invocation per block: fit (and search), choose codes, write the block. A
//                  workgroup per block, its threads sharing the 80 candidate ranges, measured 3–4×
//                  slower on lavapipe (the native test GPU), so each block is one thread's work.
//   tensor_range:  per-tensor grids: the tensor's min and max, folded into `state`.
//   tensor_search: per-tensor search: invocation i sums candidate i's error over the tensor, in the
//                  CPU's order, continuing across the row chunks the launcher dispatches in turn.
// The launcher prepends SCHEME (below), BITS (code width; 4 for the nibble-pair layouts) and SEARCH;
// the block geometry is in the uniform, so one pipeline serves every shape of a format.
//
// Bit-exactness. WGSL promises correctly rounded +, −, ×, but only 2.5 ULP for `/` and nothing about
// f32→f16 rounding in pack2x16float, and drivers may fuse a product and a following add into an fma.
// So divisions go through div_rn (integer long division), f16 rounding through f16_bits (integer
// round to nearest even, as half::f16::from_f32), and every product that feeds an add or a subtraction
// through unfused(). Only the search's pow() is the GPU's own: its last-bit differences can tip a
// near-tie between two candidates (see tests/quantize_kernels.rs).
//
// Writes. Blocks are 17, 18, 20, 34 … bytes, so they start at any byte. Each invocation assembles its
// bytes into words: a word wholly inside its block is stored, a word it shares with the neighbouring
// block (or the neighbouring row chunk's dispatch) is OR-ed in atomically. The output starts zeroed
// and the two share no byte, so no write is lost whatever the order.

const INT_SYM: u32 = 0u;
const INT_ASYM: u32 = 1u;
const NF4: u32 = 2u;
const FP4: u32 = 3u;
const FP8_E4M3: u32 = 4u;
const FP8_E5M2: u32 = 5u;
const MXFP4: u32 = 6u;
const Q8_0: u32 = 7u;
const Q4_0: u32 = 8u;
const Q4_1: u32 = 9u;

// The shrink steps p_i = 1 − i/100, i < 80 (p_0 = 1: the full range).
const CANDIDATES: u32 = 80u;
// Largest finite magnitudes of E2M1, E4M3, E5M2 (formats::packed).
const E2M1_MAX: f32 = 6.0;
const E4M3_MAX: f32 = 448.0;
const E5M2_MAX: f32 = 57344.0;
// x86's default NaN, which the CPU twin's 0/0 produces (the IntAsym zero point of a group whose
// scale rounds to zero in f16).
const DEFAULT_NAN: u32 = 0xFFC00000u;

struct Params {
    blocks: u32,      // main: blocks in this chunk
    in_skip: u32,     // f32 values from the start of the weights binding to the chunk's first row
    out_skip: u32,    // bytes from the start of the output binding to the chunk's first row
    elements: u32,    // tensor passes: f32 values in this chunk
    group: u32,       // elements per block
    block_bytes: u32, // stored bytes per block
    per_tensor: u32,  // 1: every block takes the tensor's grid from `state`
    zero: u32,        // always 0; see unfused()
    levels: array<vec4<f32>, 4>,  // NF4 or E2M1 values by code (formats::packed)
    shrink: array<vec4<f32>, 20>, // p_i, computed on the CPU exactly as Format::fit does
    // MXFP4: per exponent of amax, the first mantissa whose f32::log2 rounds up to the next
    // integer (2^23: none).
    log2_round_up: array<vec4<u32>, 64>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;         // (rows, cols) of this chunk
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>; // stored blocks, zeroed
// [min key, max key, err_0 … err_79 (f32 bits)]: the per-tensor range and search sums.
@group(0) @binding(3) var<storage, read_write> state: array<atomic<u32>>;

const WG: u32 = 64u;
// Elements each tensor_range invocation folds before its two atomics.
const RANGE_SPAN: u32 = 256u;
const SEARCH_WG: u32 = 8u;

// One block's grid as stored: scale d and zero point z (MXFP4: z is the E8M0 exponent e).
struct Grid {
    d: f32,
    z: f32,
}

// ---------------------------------------------------------------------------------------------
// Exact arithmetic.

// `x` as an opaque value: a product passed through here cannot be fused with the add that consumes
// it, so it is rounded to f32 first, as on the CPU.
fn unfused(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | params.zero);
}

// Rust's f32::round: halves away from zero (WGSL's round() goes to even). Values from 2^23 up are
// whole already; they, infinities and NaNs (bits and all) pass through untouched.
fn round_away(v: f32) -> f32 {
    if (!(abs(v) < 8388608.0)) {
        return v;
    }
    let t = trunc(v);
    return select(t, t + sign(v), abs(v - t) >= 0.5);
}

// A finite nonzero f32's significand scaled to [2^23, 2^24) and its biased exponent (≤ 0 for
// subnormals, which are normalised here in integers whatever the GPU does with them).
struct Unpacked {
    m: u32,
    e: i32,
}

fn unpack_finite(u: u32) -> Unpacked {
    let e = i32((u >> 23u) & 0xFFu);
    let m = u & 0x7FFFFFu;
    if (e != 0) {
        return Unpacked(m | 0x800000u, e);
    }
    let shift = countLeadingZeros(m) - 8u;
    return Unpacked(m << shift, 1 - i32(shift));
}

// The f32 of sign × q·2^(e − 127 − 25), q in [2^25, 2^26) holding two bits beyond the significand and
// `sticky` telling whether anything below them was lost: rounded to nearest even, to a subnormal
// when e ≤ 0, to infinity past the largest finite value.
fn round_pack(sign: u32, e: i32, q: u32, sticky: bool) -> f32 {
    if (e >= 255) {
        return bitcast<f32>(sign | 0x7F800000u);
    }
    var bits = q;
    var lost = sticky;
    if (e <= 0) {
        let shift = u32(1 - e);
        if (shift >= 27u) {
            lost = lost || bits != 0u;
            bits = 0u;
        } else {
            lost = lost || (bits & ((1u << shift) - 1u)) != 0u;
            bits = bits >> shift;
        }
    }
    let m = bits >> 2u;
    let half_bit = (bits & 2u) != 0u;
    let up = half_bit && ((bits & 1u) != 0u || lost || (m & 1u) != 0u);
    let rounded = m + select(0u, 1u, up);
    // For normals m carries the hidden bit, which adds one to the exponent field written below it;
    // a subnormal rounding up into 2^23 becomes the smallest normal the same way.
    let magnitude = select(rounded, (u32(e - 1) << 23u) + rounded, e > 0);
    return bitcast<f32>(sign | min(magnitude, 0x7F800000u));
}

// a / b rounded to nearest even, as IEEE (and so the CPU) divides; x86's results for the special cases.
fn div_rn(a: f32, b: f32) -> f32 {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let sign = (ua ^ ub) & 0x80000000u;
    let a_abs = ua & 0x7FFFFFFFu;
    let b_abs = ub & 0x7FFFFFFFu;
    let a_inf = a_abs >= 0x7F800000u;
    let b_inf = b_abs >= 0x7F800000u;
    if (a_abs > 0x7F800000u || b_abs > 0x7F800000u || (a_inf && b_inf) || (a_abs == 0u && b_abs == 0u)) {
        return bitcast<f32>(DEFAULT_NAN);
    }
    if (a_inf || b_abs == 0u) {
        return bitcast<f32>(sign | 0x7F800000u);
    }
    if (b_inf || a_abs == 0u) {
        return bitcast<f32>(sign);
    }
    let x = unpack_finite(a_abs);
    let y = unpack_finite(b_abs);
    // q = ⌊x.m · 2^25 / y.m⌋ by restoring division; x.m / y.m lies in (1/2, 2).
    var r = x.m;
    var q = 0u;
    for (var i = 0u; i < 26u; i++) {
        q = q << 1u;
        if (r >= y.m) {
            r -= y.m;
            q |= 1u;
        }
        r = r << 1u;
    }
    var e = x.e - y.e + 127;
    if (q < 0x2000000u) {
        // Quotient below 1: one more place of significand (the bit shifted in is covered by sticky).
        q = q << 1u;
        e -= 1;
    }
    return round_pack(sign, e, q, r != 0u);
}

// half::f16::from_f32: round to nearest even, infinity past 65504, NaN kept quiet with its top
// mantissa bits. (WGSL leaves pack2x16float's rounding to the implementation.)
fn f16_bits(x: f32) -> u32 {
    let u = bitcast<u32>(x);
    let sign = (u >> 16u) & 0x8000u;
    let exp = (u >> 23u) & 0xFFu;
    let man = u & 0x7FFFFFu;
    if (exp == 0xFFu) {
        return sign | 0x7C00u | select(0u, 0x200u, man != 0u) | (man >> 13u);
    }
    let half_exp = i32(exp) - 112;
    if (half_exp >= 31) {
        return sign | 0x7C00u;
    }
    if (half_exp <= 0) {
        // Subnormal f16: shift the full significand down; round on the bit below, ties to even.
        let shift = u32(14 - half_exp);
        if (shift > 24u) {
            return sign;
        }
        let m = man | 0x800000u;
        let round_bit = 1u << (shift - 1u);
        let up = (m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u;
        return sign | ((m >> shift) + select(0u, 1u, up));
    }
    let up = (man & 0x1000u) != 0u && (man & 0x2FFFu) != 0u;
    return (sign | (u32(half_exp) << 10u) | (man >> 13u)) + select(0u, 1u, up);
}

// The f32 of f16 `h`, exactly (half::f16::to_f32), NaNs included.
fn f16_value(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1Fu;
    let m = h & 0x3FFu;
    if (e == 0x1Fu) {
        return bitcast<f32>(sign | 0x7F800000u | (m << 13u));
    }
    if (e == 0u) {
        let v = ldexp(f32(m), -24);
        return select(v, -v, sign != 0u);
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

fn f16_round(x: f32) -> f32 {
    return f16_value(f16_bits(x));
}

// ---------------------------------------------------------------------------------------------
// Grids (Grid::for_range) and codes (Grid::code, Grid::value).

// The fold Format::fit starts from 0, so lo ≤ 0 ≤ hi. −0 counts as +0, as the CPU's min and max
// return +0 for a pair of zeros.
fn fold_range(r: vec2<f32>, v: f32) -> vec2<f32> {
    let x = select(v, 0.0, v == 0.0);
    return vec2<f32>(select(r.x, x, x < r.x), select(r.y, x, x > r.y));
}

fn level(code: u32) -> f32 {
    return params.levels[code / 4u][code % 4u];
}

fn shrink(i: u32) -> f32 {
    return params.shrink[i / 4u][i % 4u];
}

// MXFP4's shared exponent e = clamp(⌊log2 amax⌋ − 2 + 127, 0, 254) with ⌊log2⌋ as the CPU's log2
// rounds it: the exponent of amax, plus one where log2 rounds up to the next integer.
fn mxfp4_exponent(amax: f32) -> u32 {
    let u = bitcast<u32>(amax);
    let e = u >> 23u;
    if (e == 0u) {
        return 0u;
    }
    if (e == 255u) {
        return 254u;
    }
    let up = (u & 0x7FFFFFu) >= params.log2_round_up[e / 4u][e % 4u];
    return u32(clamp(i32(e + select(0u, 1u, up)) - 2, 0, 254));
}

fn for_range(lo: f32, hi: f32) -> Grid {
    let amax = select(hi, -lo, -lo > hi);
    // The extreme with its sign, which Q4_0 and the symmetric integer grid map to level −2^(b−1).
    let signed = select(hi, lo, -lo > hi);
    switch SCHEME {
        case INT_SYM: {
            let d = select(1.0, div_rn(-signed, f32(1u << (BITS - 1u))), amax > 0.0);
            return Grid(f16_round(d), 0.0);
        }
        case INT_ASYM: {
            let zero = lo == 0.0 && hi == 0.0;
            let l = select(lo, -1.0, zero);
            let h = select(hi, 1.0, zero);
            let d = f16_round(div_rn(h - l, f32((1u << BITS) - 1u)));
            return Grid(d, f16_round(round_away(div_rn(-l, d))));
        }
        case NF4: {
            return Grid(f16_round(amax), 0.0);
        }
        case FP4: {
            return Grid(f16_round(div_rn(amax, E2M1_MAX)), 0.0);
        }
        case FP8_E4M3: {
            return Grid(div_rn(amax, E4M3_MAX), 0.0);
        }
        case FP8_E5M2: {
            return Grid(div_rn(amax, E5M2_MAX), 0.0);
        }
        case Q8_0: {
            return Grid(f16_round(div_rn(amax, 127.0)), 0.0);
        }
        case Q4_0: {
            return Grid(f16_round(div_rn(signed, -8.0)), 0.0);
        }
        case Q4_1: {
            return Grid(f16_round(div_rn(hi - lo, 15.0)), f16_round(lo));
        }
        default: {
            let e = mxfp4_exponent(amax);
            return Grid(ldexp(1.0, i32(e) - 128), f32(e));
        }
    }
}

// What an element is multiplied by before its code is chosen: 1/d (0 for d = 0); MXFP4 divides by
// 2d = 2^(e−127), which is the same as multiplying by 2^(127−e), a normal f32 for every e.
fn code_scale(g: Grid) -> f32 {
    if (SCHEME == MXFP4) {
        return ldexp(1.0, 127 - i32(g.z));
    }
    return select(0.0, div_rn(1.0, g.d), g.d != 0.0);
}

// The index of the nearest of `count` ascending levels, the lower one on a tie (packed::nearest_in).
fn nearest_level(count: u32, x: f32) -> u32 {
    var best = 0u;
    for (var i = 1u; i < count; i++) {
        if (abs(level(i) - x) < abs(level(best) - x)) {
            best = i;
        }
    }
    return best;
}

// The value of FP8 code `c` (packed::fp8_value), exactly.
fn fp8_value(c: u32) -> f32 {
    let mant_bits = select(3u, 2u, SCHEME == FP8_E5M2);
    let bias = select(7, 15, SCHEME == FP8_E5M2);
    let e = i32((c & 0x7Fu) >> mant_bits);
    let m = ldexp(f32(c & ((1u << mant_bits) - 1u)), -i32(mant_bits));
    let magnitude = select(ldexp(1.0 + m, e - bias), ldexp(m, 1 - bias), e == 0);
    return select(magnitude, -magnitude, (c & 0x80u) != 0u);
}

// packed::nearest_code for FP8: binary search up to the largest finite code; ties to the smaller.
fn nearest_fp8(x: f32) -> u32 {
    let top = select(0x7Eu, 0x7Bu, SCHEME == FP8_E5M2);
    let a = abs(x);
    var lo = 0u;
    var hi = top;
    // Seven halvings close any range within [0, 0x7E]. A fixed count keeps lanes together; the same
    // search as a `while` loop wrote wrong codes on lavapipe.
    for (var step = 0u; step < 7u; step++) {
        let mid = lo + (hi - lo + 1u) / 2u;
        if (lo < hi) {
            if (fp8_value(mid) <= a) {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
    }
    let q = select(lo, lo + 1u, lo < top && fp8_value(lo + 1u) - a < a - fp8_value(lo));
    return select(q, q | 0x80u, x < 0.0 && q != 0u);
}

// packed::nearest_code for E2M1: the nearest magnitude, with the sign in bit 3.
fn nearest_e2m1(x: f32) -> u32 {
    let q = nearest_level(8u, abs(x));
    return select(q, q | 8u, x < 0.0 && q != 0u);
}

// f32 → integer code as Rust's `as` does after a clamp: NaN becomes 0.
fn clamped(v: f32, lo: f32, hi: f32) -> i32 {
    return select(i32(clamp(v, lo, hi)), 0, v != v);
}

// Grid::code: the code of `x`, given s = code_scale(g).
fn code_of(g: Grid, s: f32, x: f32) -> u32 {
    let y = unfused(x * s);
    switch SCHEME {
        // The zero point is added before rounding (the nearest level also for HQQ's fractional
        // zero points), so ties go to the higher code, as Q4_0's ⌊y + 8.5⌋ takes them.
        case INT_SYM: {
            return u32(clamped(round_away(y + f32(1u << (BITS - 1u))), 0.0, f32((1u << BITS) - 1u)));
        }
        case INT_ASYM: {
            return u32(clamped(round_away(y + g.z), 0.0, f32((1u << BITS) - 1u)));
        }
        case NF4: {
            return nearest_level(16u, y);
        }
        case FP4, MXFP4: {
            return nearest_e2m1(y);
        }
        case FP8_E4M3, FP8_E5M2: {
            return nearest_fp8(y);
        }
        case Q8_0: {
            return u32(clamped(round_away(y), -127.0, 127.0)) & 0xFFu;
        }
        case Q4_0: {
            return u32(clamped(floor(y + 8.5), 0.0, 15.0));
        }
        default: {
            return u32(clamped(floor(unfused((x - g.z) * s) + 0.5), 0.0, 15.0));
        }
    }
}

// Grid::value: what `code` decodes to, in the decoders' order of operations (MXFP4 is never searched).
fn value_of(g: Grid, code: u32) -> f32 {
    switch SCHEME {
        case INT_SYM: {
            return unfused(g.d * (f32(code) - f32(1u << (BITS - 1u))));
        }
        case INT_ASYM: {
            return unfused(g.d * (f32(code) - g.z));
        }
        case NF4, FP4: {
            return unfused(level(code) * g.d);
        }
        case FP8_E4M3, FP8_E5M2: {
            return unfused(fp8_value(code) * g.d);
        }
        case Q8_0: {
            return unfused(f32(extractBits(i32(code), 0u, 8u)) * g.d);
        }
        case Q4_0: {
            return unfused(f32(i32(code) - 8) * g.d);
        }
        default: {
            return unfused(f32(code) * g.d) + g.z;
        }
    }
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7FFFFFFFu) > 0x7F800000u;
}

// |round(x) − x|^2.4, the search's error term. A scale that overflowed f16 or a zero point of ±∞
// makes it NaN (0·∞) as on the CPU, and NaN makes the block's sum NaN, so that no comparison prefers
// the grid. GPUs' pow need not follow IEEE at 0, ∞ and NaN, so those are passed through by hand.
fn error_term(g: Grid, s: f32, x: f32) -> f32 {
    let e = abs(value_of(g, code_of(g, s, x)) - x);
    if (e == 0.0 || is_nan(e) || (bitcast<u32>(e) == 0x7F800000u)) {
        return e;
    }
    return pow(e, 2.4);
}

// Whether a search prefers error sum `e` to `best`: strictly smaller, and neither NaN.
fn improves(e: f32, best: f32) -> bool {
    return !is_nan(e) && !is_nan(best) && e < best;
}

// Candidate i of a search over [lo, hi] (candidate 0 is the full range: 1·x = x).
fn candidate(i: u32, r: vec2<f32>) -> Grid {
    let p = shrink(i);
    return for_range(unfused(p * r.x), unfused(p * r.y));
}

// ---------------------------------------------------------------------------------------------
// Per-block fitting (Format::fit) and the per-tensor grid.

fn block_error(g: Grid, first: u32) -> f32 {
    let s = code_scale(g);
    var sum = 0.0;
    for (var j = 0u; j < params.group; j++) {
        sum += error_term(g, s, weights[first + j]);
    }
    return sum;
}

// Format::fit: the grid of the block's range, or with SEARCH the candidate with the smallest error
// (the first on a tie).
fn block_grid(first: u32) -> Grid {
    var r = vec2<f32>(0.0);
    for (var j = 0u; j < params.group; j++) {
        r = fold_range(r, weights[first + j]);
    }
    var best = for_range(r.x, r.y);
    if (SEARCH == 0u) {
        return best;
    }
    var best_err = block_error(best, first);
    for (var i = 1u; i < CANDIDATES; i++) {
        let g = candidate(i, r);
        let e = block_error(g, first);
        if (improves(e, best_err)) {
            best = g;
            best_err = e;
        }
    }
    return best;
}

// Order-preserving u32 keys of f32 values, so atomicMin/atomicMax fold floats exactly.
fn key(v: f32) -> u32 {
    let u = bitcast<u32>(v);
    return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

fn from_key(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7FFFFFFFu, (k & 0x80000000u) != 0u));
}

fn tensor_range_read() -> vec2<f32> {
    return vec2<f32>(from_key(atomicLoad(&state[0])), from_key(atomicLoad(&state[1])));
}

fn tensor_error(i: u32) -> f32 {
    return bitcast<f32>(atomicLoad(&state[2u + i]));
}

// The tensor's grid: the candidate with the smallest error, the first on a tie (the full range
// without search).
fn tensor_grid() -> Grid {
    var best = 0u;
    if (SEARCH == 1u) {
        for (var i = 1u; i < CANDIDATES; i++) {
            if (improves(tensor_error(i), tensor_error(best))) {
                best = i;
            }
        }
    }
    return candidate(best, tensor_range_read());
}

// ---------------------------------------------------------------------------------------------
// Writing a block's bytes.

var<private> word: u32;        // the bytes of the current output word assembled so far
var<private> cursor: u32;      // byte address of the next byte
var<private> block_start: u32;
var<private> bit_acc: u32;     // codes not yet written out as whole bytes
var<private> bit_count: u32;

fn flush_word(at: u32) {
    if (at >= block_start && at + 4u <= block_start + params.block_bytes) {
        atomicStore(&out[at >> 2u], word);
    } else {
        atomicOr(&out[at >> 2u], word);
    }
    word = 0u;
}

fn put_byte(v: u32) {
    word |= (v & 0xFFu) << ((cursor & 3u) * 8u);
    cursor += 1u;
    if ((cursor & 3u) == 0u) {
        flush_word(cursor - 4u);
    }
}

fn put_u16(v: u32) {
    put_byte(v);
    put_byte(v >> 8u);
}

// Codes as one little-endian bit stream, element j at bits j·BITS … (encode_block). Fewer than 8
// bits wait, and a code has at most 8, so each code completes at most one byte.
fn put_code(c: u32) {
    bit_acc |= c << bit_count;
    bit_count += BITS;
    if (bit_count >= 8u) {
        put_byte(bit_acc);
        bit_acc = bit_acc >> 8u;
        bit_count -= 8u;
    }
}

fn put_header(g: Grid) {
    switch SCHEME {
        case INT_ASYM, Q4_1: {
            put_u16(f16_bits(g.d));
            put_u16(f16_bits(g.z));
        }
        case FP8_E4M3, FP8_E5M2: {
            let bits = bitcast<u32>(g.d);
            put_u16(bits);
            put_u16(bits >> 16u);
        }
        case MXFP4: {
            put_byte(u32(g.z));
        }
        default: {
            put_u16(f16_bits(g.d));
        }
    }
}

fn write_block(start: u32, first: u32, g: Grid) {
    word = 0u;
    cursor = start;
    block_start = start;
    bit_acc = 0u;
    bit_count = 0u;
    put_header(g);
    let s = code_scale(g);
    if (SCHEME == Q4_0 || SCHEME == Q4_1 || SCHEME == MXFP4) {
        // GGUF's nibble pairs: byte j holds element j low and element j + 16 high.
        for (var j = 0u; j < 16u; j++) {
            put_byte(code_of(g, s, weights[first + j]) | (code_of(g, s, weights[first + j + 16u]) << 4u));
        }
    } else {
        for (var j = 0u; j < params.group; j++) {
            put_code(code_of(g, s, weights[first + j]));
        }
    }
    if ((cursor & 3u) != 0u) {
        flush_word(cursor & ~3u);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let b = gid.x + gid.y * groups.x * WG;
    if (b >= params.blocks) {
        return;
    }
    let first = params.in_skip + b * params.group;
    var g: Grid;
    if (params.per_tensor == 1u) {
        g = tensor_grid();
    } else {
        g = block_grid(first);
    }
    write_block(params.out_skip + b * params.block_bytes, first, g);
}

@compute @workgroup_size(WG)
fn tensor_range(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let start = (gid.x + gid.y * groups.x * WG) * RANGE_SPAN;
    if (start >= params.elements) {
        return;
    }
    var r = vec2<f32>(0.0);
    for (var e = start; e < min(start + RANGE_SPAN, params.elements); e++) {
        r = fold_range(r, weights[params.in_skip + e]);
    }
    atomicMin(&state[0], key(r.x));
    atomicMax(&state[1], key(r.y));
}

@compute @workgroup_size(SEARCH_WG)
fn tensor_search(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= CANDIDATES) {
        return;
    }
    let g = candidate(i, tensor_range_read());
    let s = code_scale(g);
    var sum = tensor_error(i);
    for (var e = 0u; e < params.elements; e++) {
        sum += error_term(g, s, weights[params.in_skip + e]);
    }
    atomicStore(&state[2u + i], bitcast<u32>(sum));
}
