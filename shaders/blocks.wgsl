// The block decoders: stored weights (F32, F16, BF16 or GGUF blocks) to f32, shared by every kernel
// that reads weights as stored (dequant, matmul, embed). The including shader declares the binding
//     var<storage, read> packed: array<u32>;
// and the launcher prepends FORMAT (the ggml type id), BLOCK_SIZE and BLOCK_BYTES, so the other
// formats' branches fold away. Byte addresses count from the start of the binding. Layouts and the
// order of operations follow llama.cpp's dequantize_row_* exactly (the CPU twin is src/cpu/dequant.rs).

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

// Blocks are 18, 20, 22 … bytes long, so their fields sit at any byte offset: every read goes
// through these helpers.
fn byte_at(a: u32) -> u32 {
    return (packed[a >> 2u] >> ((a & 3u) * 8u)) & 0xFFu;
}

// 16-bit fields (f16 scales, F16/BF16 elements) always start at an even byte: block sizes and field
// offsets are even, and so is every row start. So they never straddle two words.
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

// 32 consecutive elements, the unit every loader decodes: one Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 block, one
// 32-element sub-block of Q4_K/Q5_K, two 16-element sub-blocks of Q6_K, or 32 scalars.
alias Chunk = array<vec4<f32>, 8>;

// Eight consecutive little-endian words from any (even) byte: nine aligned loads shifted together.
fn words8(a: u32) -> array<u32, 8> {
    let s = (a & 3u) * 8u;
    let w = a >> 2u;
    var out: array<u32, 8>;
    var lo = packed[w];
    for (var i = 0u; i < 8u; i++) {
        let hi = packed[w + 1u + i];
        out[i] = select((lo >> s) | (hi << (32u - s)), lo, s == 0u);
        lo = hi;
    }
    return out;
}

// The same for four words.
fn words4(a: u32) -> array<u32, 4> {
    let s = (a & 3u) * 8u;
    let w = a >> 2u;
    var out: array<u32, 4>;
    var lo = packed[w];
    for (var i = 0u; i < 4u; i++) {
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
    let qs = words8(b + 2u);
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
    let qs = words4(b + 2u);
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
    let qs = words4(b + 4u);
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
    let qs = words4(b + 6u);
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
    let qs = words4(b + 8u);
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
    let qs = words8(b + 16u + 32u * (s / 2u));
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
    let qs = words8(b + 48u + 32u * (s / 2u));
    let qh = words8(b + 16u);
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
    let ql = words8(b + 64u * h + 32u * (t & 1u));
    let qh = words8(b + 128u + 32u * h);
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
        let w = words8(a + 32u * half);
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
        default: { return q6_k(b, c); }
    }
}

// load1: element e of a scalar-format row (the tails of rows that are not a multiple of 32 long).
fn load1(row: u32, e: u32) -> f32 {
    return scalar_at(row + e * BLOCK_BYTES);
}
