// The block decoders: stored weights to f32, shared by every kernel that reads weights as stored
// (dequant, matmul, embed): F32, F16, BF16, the GGUF blocks Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
// Q6_K and MXFP4, and Squeeze's packed formats (integer 2–8 bit symmetric and asymmetric, NF4, FP8
// E4M3/E5M2, FP4; layouts in src/formats/packed.rs). The including shader declares the binding
//     var<storage, read> packed: array<u32>;
// and the launcher prepends FORMAT (the ggml type id, or PackedKind::format_id), BLOCK_SIZE,
// BLOCK_BYTES and BITS (the code width of a packed format, else 0), so the other formats' branches fold
// away. Byte addresses count from the start of the binding. Layouts and the order of operations follow
// llama.cpp's dequantize_row_* and formats::packed exactly (the CPU twin is src/cpu/dequant.rs).

const F32: u32 = 0u;
const F16: u32 = 1u;
const Q4_0: u32 = 2u;
const Q4_1: u32 = 3u;
const Q5_0: u32 = 6u;
const Q5_1: u32 = 7u;
const Q8_0: u32 = 8u;
const Q4_K: u32 = 12u;
const Q5_K: u32 = 13u;
const Q6_K: u32 = 14u;
const BF16: u32 = 30u;
const MXFP4: u32 = 39u;
// Squeeze's packed kinds (PackedKind::format_id).
const INT_SYM: u32 = 100u;
const INT_ASYM: u32 = 101u;
const NF4: u32 = 102u;
const FP8_E4M3: u32 = 103u;
const FP8_E5M2: u32 = 104u;
const FP4: u32 = 105u;

// Blocks are 17, 18, 20, 22 … bytes long, so their fields sit at any byte offset: every read goes
// through these helpers.
fn byte_at(a: u32) -> u32 {
    return (packed[a >> 2u] >> ((a & 3u) * 8u)) & 0xFFu;
}

// 16-bit fields (f16 scales, F16/BF16 elements) always start at an even byte: the blocks that have
// them are even-sized with even field offsets, and so is every row start. So they never straddle two
// words. (MXFP4's blocks are 17 bytes, but its only field wider than a byte is qs, read by `words`.)
fn u16_at(a: u32) -> u32 {
    return (packed[a >> 2u] >> ((a & 2u) * 8u)) & 0xFFFFu;
}

// Four bytes from any offset: two aligned words shifted together.
fn u32_at(a: u32) -> u32 {
    let s = (a & 3u) * 8u;
    let lo = packed[a >> 2u];
    if (s == 0u) {
        return lo;
    }
    return (lo >> s) | (packed[(a >> 2u) + 1u] << (32u - s));
}

fn f16_at(a: u32) -> f32 {
    return unpack2x16float(u16_at(a)).x;
}

// 32 consecutive elements, the unit every loader decodes: one Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/MXFP4 block,
// one 32-element sub-block of Q4_K/Q5_K or of a packed block, two 16-element sub-blocks of Q6_K, or
// 32 scalars.
alias Chunk = array<vec4<f32>, 8>;

// `n` (≤ 8) consecutive little-endian words from any byte: n + 1 aligned loads shifted together.
fn words(a: u32, n: u32) -> array<u32, 8> {
    let s = (a & 3u) * 8u;
    let w = a >> 2u;
    var out: array<u32, 8>;
    var lo = packed[w];
    for (var i = 0u; i < n; i++) {
        let hi = packed[w + 1u + i];
        out[i] = select((lo >> s) | (hi << (32u - s)), lo, s == 0u);
        lo = hi;
    }
    return out;
}

fn bytes4(w: u32) -> vec4<u32> {
    return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu);
}

fn nibbles4(w: u32, shift: u32) -> vec4<u32> {
    return (bytes4(w) >> vec4<u32>(shift)) & vec4<u32>(15u);
}

// Q5_0/Q5_1: the fifth bits of elements j..j+3 (bits j..j+3 of qh), moved to bit 4.
fn fifth_bits4(qh: u32, j: u32) -> vec4<u32> {
    return ((vec4<u32>(qh >> j) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
}

// Blocks start at byte b. In the 32-element formats, word i of qs holds elements 4i..4i+3 in its low
// nibbles and 16+4i..16+4i+3 in its high nibbles.
fn q8_0(b: u32) -> Chunk {
    let d = f16_at(b);
    let qs = words(b + 2u, 8u);
    var y: Chunk;
    for (var i = 0u; i < 8u; i++) {
        let w = bitcast<i32>(qs[i]);
        let q = vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u), extractBits(w, 24u, 8u));
        y[i] = vec4<f32>(q) * d;
    }
    return y;
}

fn q4_0(b: u32) -> Chunk {
    let d = f16_at(b);
    let qs = words(b + 2u, 4u);
    var y: Chunk;
    for (var i = 0u; i < 4u; i++) {
        y[i] = vec4<f32>(vec4<i32>(nibbles4(qs[i], 0u)) - vec4<i32>(8)) * d;
        y[i + 4u] = vec4<f32>(vec4<i32>(nibbles4(qs[i], 4u)) - vec4<i32>(8)) * d;
    }
    return y;
}

fn q4_1(b: u32) -> Chunk {
    let d = f16_at(b);
    let m = f16_at(b + 2u);
    let qs = words(b + 4u, 4u);
    var y: Chunk;
    for (var i = 0u; i < 4u; i++) {
        y[i] = vec4<f32>(nibbles4(qs[i], 0u)) * d + m;
        y[i + 4u] = vec4<f32>(nibbles4(qs[i], 4u)) * d + m;
    }
    return y;
}

fn q5_0(b: u32) -> Chunk {
    let d = f16_at(b);
    let qh = u32_at(b + 2u);
    let qs = words(b + 6u, 4u);
    var y: Chunk;
    for (var i = 0u; i < 4u; i++) {
        let lo = nibbles4(qs[i], 0u) | fifth_bits4(qh, 4u * i);
        let hi = nibbles4(qs[i], 4u) | fifth_bits4(qh, 16u + 4u * i);
        y[i] = vec4<f32>(vec4<i32>(lo) - vec4<i32>(16)) * d;
        y[i + 4u] = vec4<f32>(vec4<i32>(hi) - vec4<i32>(16)) * d;
    }
    return y;
}

fn q5_1(b: u32) -> Chunk {
    let d = f16_at(b);
    let m = f16_at(b + 2u);
    let qh = u32_at(b + 4u);
    let qs = words(b + 8u, 4u);
    var y: Chunk;
    for (var i = 0u; i < 4u; i++) {
        y[i] = vec4<f32>(nibbles4(qs[i], 0u) | fifth_bits4(qh, 4u * i)) * d + m;
        y[i + 4u] = vec4<f32>(nibbles4(qs[i], 4u) | fifth_bits4(qh, 16u + 4u * i)) * d + m;
    }
    return y;
}

// llama.cpp's get_scale_min_k4: (scale, min) of sub-block s from the 12 packed bytes at `at`.
// Sub-blocks 0–3 use the low 6 bits of bytes s and s+4; 4–7 take their low 4 bits from byte s+4 and
// their top 2 bits from the spare top bits of bytes s−4 (scale) and s (min).
fn scale_min_k4(at: u32, s: u32) -> vec2<f32> {
    if (s < 4u) {
        return vec2<f32>(f32(byte_at(at + s) & 63u), f32(byte_at(at + s + 4u) & 63u));
    }
    let low = byte_at(at + s + 4u);
    let scale = (low & 15u) | ((byte_at(at + s - 4u) >> 6u) << 4u);
    let m = (low >> 4u) | ((byte_at(at + s) >> 6u) << 4u);
    return vec2<f32>(f32(scale), f32(m));
}

// Q4_K: d, dmin, scales[12], qs[128]. Sub-block s (32 elements) is the low (s even) or high nibbles
// of qs[32·(s/2) ..]; y = (d·scale)·q − dmin·min.
fn q4_k(b: u32, s: u32) -> Chunk {
    let sm = scale_min_k4(b + 4u, s);
    let scale = f16_at(b) * sm.x;
    let offset = f16_at(b + 2u) * sm.y;
    let qs = words(b + 16u + 32u * (s / 2u), 8u);
    var y: Chunk;
    for (var i = 0u; i < 8u; i++) {
        y[i] = scale * vec4<f32>(nibbles4(qs[i], 4u * (s & 1u))) - offset;
    }
    return y;
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]: Q4_K's nibbles plus bit s of qh[l] as bit 4.
fn q5_k(b: u32, s: u32) -> Chunk {
    let sm = scale_min_k4(b + 4u, s);
    let scale = f16_at(b) * sm.x;
    let offset = f16_at(b + 2u) * sm.y;
    let qs = words(b + 48u + 32u * (s / 2u), 8u);
    let qh = words(b + 16u, 8u);
    var y: Chunk;
    for (var i = 0u; i < 8u; i++) {
        let high = ((bytes4(qh[i]) >> vec4<u32>(s)) & vec4<u32>(1u)) << vec4<u32>(4u);
        y[i] = scale * vec4<f32>(nibbles4(qs[i], 4u * (s & 1u)) | high) - offset;
    }
    return y;
}

// Q6_K: ql[128], qh[64], i8 scales[16], d (last). Chunk c is quarter t = c mod 4 of half h = c / 4:
// the low (t < 2) or high nibble of ql[64h + 32·(t mod 2) + l] and bits 2t, 2t+1 of qh[32h + l];
// y = (d·scale)·(q − 32) with one i8 scale per 16 elements, scales[8h + 2t] then scales[8h + 2t + 1].
fn q6_k(b: u32, c: u32) -> Chunk {
    let h = c / 4u;
    let t = c % 4u;
    let ql = words(b + 64u * h + 32u * (t & 1u), 8u);
    let qh = words(b + 128u + 32u * h, 8u);
    let d = f16_at(b + 208u);
    let at = b + 192u + 8u * h + 2u * t;
    let first = d * f32(extractBits(i32(byte_at(at)), 0u, 8u));
    let second = d * f32(extractBits(i32(byte_at(at + 1u)), 0u, 8u));
    var y: Chunk;
    for (var i = 0u; i < 8u; i++) {
        let high = ((bytes4(qh[i]) >> vec4<u32>(2u * t)) & vec4<u32>(3u)) << vec4<u32>(4u);
        let q = vec4<i32>(nibbles4(ql[i], 4u * (t >> 1u)) | high) - vec4<i32>(32);
        y[i] = select(second, first, i < 4u) * vec4<f32>(q);
    }
    return y;
}

// FP4 E2M1 values by code, bit 3 the sign (formats::packed::E2M1).
const E2M1: array<f32, 16> =
    array(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0);

fn e2m1(q: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(E2M1[q.x], E2M1[q.y], E2M1[q.z], E2M1[q.w]);
}

// MXFP4 (ggml's block_mxfp4): e u8 (E8M0), qs[16] split into nibbles as in Q4_0; y = kvalue·2^(e−128),
// ggml's kvalues being the E2M1 values doubled.
fn mxfp4(b: u32) -> Chunk {
    let e = byte_at(b);
    // 2^(e−128) built as ggml's ggml_e8m0_to_fp32_half builds it (subnormal for e < 2).
    let d = bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u));
    let qs = words(b + 1u, 4u);
    var y: Chunk;
    for (var i = 0u; i < 4u; i++) {
        y[i] = (2.0 * e2m1(nibbles4(qs[i], 0u))) * d;
        y[i + 4u] = (2.0 * e2m1(nibbles4(qs[i], 4u))) * d;
    }
    return y;
}

// NF4 levels (formats::packed::NF4).
const NF4_LEVELS: array<f32, 16> = array(
    -1.0, -0.6961928, -0.52507305, -0.3949175, -0.28444138, -0.18477343, -0.091050036, 0.0,
    0.0795803, 0.1609302, 0.2461123, 0.33791524, 0.44070983, 0.562617, 0.72295684, 1.0,
);

fn nf4(q: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(NF4_LEVELS[q.x], NF4_LEVELS[q.y], NF4_LEVELS[q.z], NF4_LEVELS[q.w]);
}

// FP8 codes as formats::packed::fp8_value reads them: E4M3 (3 mantissa bits, bias 7) or E5M2 (2, 15),
// no infinities or NaNs; exponent field 0 is subnormal, m·2^(1−bias−mantissa bits). Built from bits,
// so exact.
fn fp8(q: vec4<u32>) -> vec4<f32> {
    let mant = select(3u, 2u, FORMAT == FP8_E5M2);
    let bias = select(7u, 15u, FORMAT == FP8_E5M2);
    let sign = (q & vec4<u32>(0x80u)) << vec4<u32>(24u);
    let e = (q & vec4<u32>(0x7Fu)) >> vec4<u32>(mant);
    let m = q & vec4<u32>((1u << mant) - 1u);
    let normal = sign | ((e + vec4<u32>(127u - bias)) << vec4<u32>(23u)) | (m << vec4<u32>(23u - mant));
    let subnormal = sign | bitcast<vec4<u32>>(vec4<f32>(m) * bitcast<f32>((128u - bias - mant) << 23u));
    return bitcast<vec4<f32>>(select(subnormal, normal, e != vec4<u32>(0u)));
}

// Code j (0..31) of the 32 codes in `w`: BITS-wide fields of one little-endian bit stream, so a code
// straddles words i and i + 1 when BITS is 3, 5, 6 or 7. (x << 1) << (31 − o) is x << (32 − o)
// without an out-of-range shift at o = 0; its bits land at or above BITS unless the code straddles.
fn code_at(w: array<u32, 8>, j: u32) -> u32 {
    let bit = j * BITS;
    let i = bit / 32u;
    let o = bit % 32u;
    let next = (w[min(i + 1u, 7u)] << 1u) << (31u - o);
    return ((w[i] >> o) | next) & ((1u << BITS) - 1u);
}

// The values of four codes of a packed block with scale d and zero point z, in the operation order of
// formats::packed::code_value.
fn code_values(q: vec4<u32>, d: f32, z: f32) -> vec4<f32> {
    switch FORMAT {
        case INT_SYM: { return d * (vec4<f32>(q) - f32((1u << BITS) >> 1u)); }
        case INT_ASYM: { return d * (vec4<f32>(q) - z); }
        case NF4: { return nf4(q) * d; }
        case FP4: { return e2m1(q) * d; }
        default: { return fp8(q) * d; }
    }
}

// Squeeze's packed kinds: a header (d f16; IntAsym d f16, z f16; FP8 d f32), then the codes as one
// little-endian bit stream, element j at bits j·BITS. Sub-block c (elements 32c..32c+31) is exactly
// BITS words of that stream, from byte header + 4·BITS·c (an even byte: blocks are even-sized).
fn packed_block(b: u32, c: u32) -> Chunk {
    let is_fp8 = FORMAT == FP8_E4M3 || FORMAT == FP8_E5M2;
    var d = f16_at(b);
    var z = 0.0;
    if (is_fp8) {
        d = bitcast<f32>(u32_at(b));
    }
    if (FORMAT == INT_ASYM) {
        z = f16_at(b + 2u);
    }
    let header = select(2u, 4u, is_fp8 || FORMAT == INT_ASYM);
    let w = words(b + header + 4u * BITS * c, BITS);
    var y: Chunk;
    for (var i = 0u; i < 8u; i++) {
        let j = 4u * i;
        let q = vec4<u32>(code_at(w, j), code_at(w, j + 1u), code_at(w, j + 2u), code_at(w, j + 3u));
        y[i] = code_values(q, d, z);
    }
    return y;
}

// One F32, F16 or BF16 element at byte a. F32 is a bit copy (F32 rows start at multiples of 4 bytes),
// F16 an exact widening, BF16 a shift.
fn scalar_at(a: u32) -> f32 {
    switch FORMAT {
        case F32: { return bitcast<f32>(packed[a >> 2u]); }
        case F16: { return unpack2x16float(u16_at(a)).x; }
        default: { return bitcast<f32>(u16_at(a) << 16u); }
    }
}

// 32 scalars from byte a: F32 one word each, F16 and BF16 two to a word.
fn scalars32(a: u32) -> Chunk {
    var y: Chunk;
    if (FORMAT == F32) {
        for (var i = 0u; i < 8u; i++) {
            let w = (a >> 2u) + 4u * i;
            y[i] = bitcast<vec4<f32>>(vec4<u32>(packed[w], packed[w + 1u], packed[w + 2u], packed[w + 3u]));
        }
        return y;
    }
    for (var half = 0u; half < 2u; half++) {
        let w = words(a + 32u * half, 8u);
        for (var i = 0u; i < 4u; i++) {
            let lo = w[2u * i];
            let hi = w[2u * i + 1u];
            if (FORMAT == F16) {
                y[4u * half + i] = vec4<f32>(unpack2x16float(lo), unpack2x16float(hi));
            } else {
                y[4u * half + i] = bitcast<vec4<f32>>(vec4<u32>(lo << 16u, lo & 0xFFFF0000u, hi << 16u, hi & 0xFFFF0000u));
            }
        }
    }
    return y;
}

// The row loaders, over the row whose stored bytes start at byte `row`:
// load32: elements e..e+31, e a multiple of 32 (for scalar formats all 32 must exist).
fn load32(row: u32, e: u32) -> Chunk {
    if (BLOCK_SIZE == 1u) {
        return scalars32(row + e * BLOCK_BYTES);
    }
    let b = row + e / BLOCK_SIZE * BLOCK_BYTES;
    let c = e % BLOCK_SIZE / 32u;
    switch FORMAT {
        case Q8_0: { return q8_0(b); }
        case Q4_0: { return q4_0(b); }
        case Q4_1: { return q4_1(b); }
        case Q5_0: { return q5_0(b); }
        case Q5_1: { return q5_1(b); }
        case Q4_K: { return q4_k(b, c); }
        case Q5_K: { return q5_k(b, c); }
        case MXFP4: { return mxfp4(b); }
        case INT_SYM, INT_ASYM, NF4, FP8_E4M3, FP8_E5M2, FP4: { return packed_block(b, c); }
        default: { return q6_k(b, c); }
    }
}

// load1: element e of a scalar-format row (the tails of rows that are not a multiple of 32 long).
fn load1(row: u32, e: u32) -> f32 {
    return scalar_at(row + e * BLOCK_BYTES);
}
