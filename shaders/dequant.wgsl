// Dequantise GGUF tensor bytes to f32: one thread per four consecutive elements. The launcher
// prepends FORMAT (the ggml type id), BLOCK_SIZE and BLOCK_BYTES; the other formats' branches fold
// away. Layouts and the order of operations follow llama.cpp's dequantize_row_* exactly (the CPU
// twin is src/cpu/dequant.rs), so results agree bit for bit up to fused multiply-adds.

struct Shape {
    n: u32,    // elements to decode: whole rows, so whole blocks
    skip: u32, // bytes from the start of the binding to the first row (bindings start aligned)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> packed: array<u32>;    // (skip + stored bytes of the rows) / 4
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // (rows, cols)

const WG: u32 = 256u;

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

// Blocks are 18, 20, 22 … bytes long, so their fields sit at any byte offset: every read goes
// through these helpers, with `at` counted from the first row.
fn byte_at(at: u32) -> u32 {
    let a = shape.skip + at;
    return (packed[a >> 2u] >> ((a & 3u) * 8u)) & 0xFFu;
}

// 16-bit fields (f16 scales, F16/BF16 elements) always start at an even byte: block sizes and field
// offsets are even, and so is every row start, hence `skip`. So they never straddle two words.
fn u16_at(at: u32) -> u32 {
    let a = shape.skip + at;
    return (packed[a >> 2u] >> ((a & 2u) * 8u)) & 0xFFFFu;
}

// Four bytes from any offset: two aligned words shifted together.
fn u32_at(at: u32) -> u32 {
    let a = shape.skip + at;
    let s = (a & 3u) * 8u;
    let lo = packed[a >> 2u];
    if (s == 0u) {
        return lo;
    }
    return (lo >> s) | (packed[(a >> 2u) + 1u] << (32u - s));
}

fn f16_at(at: u32) -> f32 {
    return unpack2x16float(u16_at(at)).x;
}

fn bytes4(w: u32) -> vec4<u32> {
    return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu);
}

// Q4_0/Q4_1/Q5_0/Q5_1 quants of elements j..j+3: elements j < 16 are the low nibbles of qs[j],
// elements j ≥ 16 the high nibbles of qs[j − 16].
fn nibbles4(qs: u32, j: u32) -> vec4<u32> {
    return (bytes4(u32_at(qs + (j & 15u))) >> vec4<u32>((j >> 4u) * 4u)) & vec4<u32>(15u);
}

// Q5_0/Q5_1: the fifth bit of element j is bit j of qh, moved to bit 4.
fn fifth_bits4(qh: u32, j: u32) -> vec4<u32> {
    let bit = (vec4<u32>(qh) >> (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
    return bit << vec4<u32>(4u);
}

// Blocks start at byte b; j is the first of the four elements, relative to the block.
fn q8_0(b: u32, j: u32) -> vec4<f32> {
    let w = bitcast<i32>(u32_at(b + 2u + j));
    let q = vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u), extractBits(w, 24u, 8u));
    return vec4<f32>(q) * f16_at(b);
}

fn q4_0(b: u32, j: u32) -> vec4<f32> {
    let q = vec4<i32>(nibbles4(b + 2u, j)) - vec4<i32>(8);
    return vec4<f32>(q) * f16_at(b);
}

fn q4_1(b: u32, j: u32) -> vec4<f32> {
    return vec4<f32>(nibbles4(b + 4u, j)) * f16_at(b) + f16_at(b + 2u);
}

fn q5_0(b: u32, j: u32) -> vec4<f32> {
    let q = vec4<i32>(nibbles4(b + 6u, j) | fifth_bits4(u32_at(b + 2u), j)) - vec4<i32>(16);
    return vec4<f32>(q) * f16_at(b);
}

fn q5_1(b: u32, j: u32) -> vec4<f32> {
    let q = nibbles4(b + 8u, j) | fifth_bits4(u32_at(b + 4u), j);
    return vec4<f32>(q) * f16_at(b) + f16_at(b + 2u);
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

// Q4_K: d, dmin, scales[12], qs[128]. Sub-block s (32 elements) reads the low (s even) or high
// nibbles of qs[32·(s/2) ..]; y = (d·scale)·q − dmin·min.
fn q4_k(b: u32, j: u32) -> vec4<f32> {
    let s = j / 32u;
    let sm = scale_min_k4(b + 4u, s);
    let q = (bytes4(u32_at(b + 16u + 32u * (s / 2u) + j % 32u)) >> vec4<u32>(4u * (s & 1u))) & vec4<u32>(15u);
    return f16_at(b) * sm.x * vec4<f32>(q) - f16_at(b + 2u) * sm.y;
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]: Q4_K's nibbles plus bit s of qh[j % 32] as bit 4.
fn q5_k(b: u32, j: u32) -> vec4<f32> {
    let s = j / 32u;
    let l = j % 32u;
    let sm = scale_min_k4(b + 4u, s);
    let low = (bytes4(u32_at(b + 48u + 32u * (s / 2u) + l)) >> vec4<u32>(4u * (s & 1u))) & vec4<u32>(15u);
    let high = (bytes4(u32_at(b + 16u + l)) >> vec4<u32>(s)) & vec4<u32>(1u);
    return f16_at(b) * sm.x * vec4<f32>(low | (high << vec4<u32>(4u))) - f16_at(b + 2u) * sm.y;
}

// Q6_K: ql[128], qh[64], i8 scales[16], d (last). Quarter t of half h (32 elements each) takes the
// low (t < 2) or high nibble of ql[64h + 32·(t mod 2) + l] and bits 2t, 2t+1 of qh[32h + l];
// y = d·scale·(q − 32) with one i8 scale per 16 elements.
fn q6_k(b: u32, j: u32) -> vec4<f32> {
    let h = j / 128u;
    let t = (j % 128u) / 32u;
    let l = j % 32u;
    let low = (bytes4(u32_at(b + 64u * h + 32u * (t & 1u) + l)) >> vec4<u32>(4u * (t >> 1u))) & vec4<u32>(15u);
    let high = (bytes4(u32_at(b + 128u + 32u * h + l)) >> vec4<u32>(2u * t)) & vec4<u32>(3u);
    let q = vec4<i32>(low | (high << vec4<u32>(4u))) - vec4<i32>(32);
    let scale = f32(extractBits(i32(byte_at(b + 192u + 8u * h + l / 16u + 2u * t)), 0u, 8u));
    return f16_at(b + 208u) * scale * vec4<f32>(q);
}

fn block4(b: u32, j: u32) -> vec4<f32> {
    switch FORMAT {
        case Q8_0: { return q8_0(b, j); }
        case Q4_0: { return q4_0(b, j); }
        case Q4_1: { return q4_1(b, j); }
        case Q5_0: { return q5_0(b, j); }
        case Q5_1: { return q5_1(b, j); }
        case Q4_K: { return q4_k(b, j); }
        case Q5_K: { return q5_k(b, j); }
        case Q6_K: { return q6_k(b, j); }
        // Scalar formats take the other path in `main`.
        default: { return vec4<f32>(0.0); }
    }
}

// F32 is a bit copy (F32 rows start at multiples of 4 bytes), F16 an exact widening, BF16 a shift.
fn scalar(i: u32) -> f32 {
    switch FORMAT {
        case F32: { return bitcast<f32>(packed[(shape.skip >> 2u) + i]); }
        case F16: { return unpack2x16float(u16_at(2u * i)).x; }
        default: { return bitcast<f32>(u16_at(2u * i) << 16u); }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = 4u * (gid.x + gid.y * groups.x * WG);
    if (e >= shape.n) {
        return;
    }
    if (BLOCK_SIZE == 1u) {
        for (var i = e; i < min(e + 4u, shape.n); i++) {
            out[i] = scalar(i);
        }
        return;
    }
    // Blocks hold a multiple of 4 elements, so the four never straddle two blocks.
    let y = block4(e / BLOCK_SIZE * BLOCK_BYTES, e % BLOCK_SIZE);
    out[e] = y.x;
    out[e + 1u] = y.y;
    out[e + 2u] = y.z;
    out[e + 3u] = y.w;
}
