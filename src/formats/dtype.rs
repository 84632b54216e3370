//! Tensor element types as GGUF numbers them (ggml_type), with their block geometry.
//! Safetensors dtypes map onto the same enum (F32, F16, BF16). Squeeze's own packed formats (integer
//! grids of any width, NF4, FP8, FP4 — see `formats::packed`) live here too, as `DType::Packed`, so a
//! compressed tensor is just another stored tensor that the kernels decode.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[allow(non_camel_case_types)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    I8,
    I16,
    I32,
    I64,
    F64,
    MXFP4,
    Packed(Packed),
}

/// A Squeeze block format: `group` elements (a multiple of 32; a whole row for per-channel scales)
/// share a header (scale, zero point) followed by their `bits`-wide codes. Blocks never span rows: a
/// row of `cols` elements is ⌈cols/group⌉ blocks, the last one shorter when `group` does not divide
/// `cols` (groups of 128 on SmolLM2's 576-wide rows end in a block of 64), so the type carries the row
/// length. Layouts in `formats::packed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Packed {
    pub kind: PackedKind,
    pub bits: u8,
    pub group: u32,
    /// Elements per row (a multiple of 32).
    pub cols: u32,
}

impl Packed {
    /// Stored bytes of `n` elements of one block.
    pub fn block_bytes(&self, n: u64) -> u64 {
        self.kind.header_bytes() + n * self.bits as u64 / 8
    }

    /// Stored bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        let (cols, group) = (self.cols as u64, self.group as u64);
        let tail = cols % group;
        cols / group * self.block_bytes(group) + if tail > 0 { self.block_bytes(tail) } else { 0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PackedKind {
    /// value = d·(q − 2^(bits−1)); header d f16.
    IntSym,
    /// value = d·(q − z); header d f16, z f16 (z need not be an integer: HQQ's zero points).
    IntAsym,
    /// value = NF4[q]·d; header d f16 (the block absmax). bits = 4.
    Nf4,
    /// value = e4m3(q)·d; header d f32. bits = 8.
    Fp8E4M3,
    /// value = e5m2(q)·d; header d f32. bits = 8.
    Fp8E5M2,
    /// value = e2m1(q)·d; header d f16. bits = 4.
    Fp4,
}

impl PackedKind {
    /// Bytes of the per-block header.
    pub fn header_bytes(self) -> u64 {
        match self {
            PackedKind::IntSym | PackedKind::Nf4 | PackedKind::Fp4 => 2,
            PackedKind::IntAsym | PackedKind::Fp8E4M3 | PackedKind::Fp8E5M2 => 4,
        }
    }

    /// The shader's FORMAT number (outside ggml's range).
    pub fn format_id(self) -> u32 {
        match self {
            PackedKind::IntSym => 100,
            PackedKind::IntAsym => 101,
            PackedKind::Nf4 => 102,
            PackedKind::Fp8E4M3 => 103,
            PackedKind::Fp8E5M2 => 104,
            PackedKind::Fp4 => 105,
        }
    }
}

use DType::*;

impl DType {
    /// All types this build knows, in ggml id order of appearance.
    pub const ALL: [DType; 21] = [
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, I8, I16, I32,
        I64, F64, MXFP4,
    ];

    /// The ggml_type number stored in GGUF tensor infos.
    pub fn ggml_id(self) -> u32 {
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
            MXFP4 => 39,
            Packed(p) => p.kind.format_id(),
        }
    }

    pub fn from_ggml_id(id: u32) -> Option<DType> {
        Self::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// Elements per block (1 for plain scalar types).
    pub fn block_size(self) -> u64 {
        match self {
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => 256,
            MXFP4 => 32,
            Packed(p) => p.group as u64,
            _ => 1,
        }
    }

    /// Bytes per block (per element for scalar types).
    pub fn block_bytes(self) -> u64 {
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            MXFP4 => 17,
            Packed(p) => p.block_bytes(p.group as u64),
        }
    }

    /// Bytes needed for `n` elements; None when `n` is not a whole number of blocks or overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        if let Packed(p) = self {
            return n.is_multiple_of(p.cols as u64).then(|| n / p.cols as u64 * p.row_bytes());
        }
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.block_bytes())
    }

    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_size() as f64
    }

    /// Whether Squeeze can turn this type into f32 values (CPU codec and GPU dequantisation kernel).
    pub fn decodable(self) -> bool {
        matches!(
            self,
            F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q4_K | Q5_K | Q6_K | MXFP4 | Packed(_)
        )
    }

    /// Whether GGUF has a type number for this format (llama.cpp can load it).
    pub fn in_gguf(self) -> bool {
        !matches!(self, Packed(_))
    }

    /// The constants a shader including `blocks.wgsl` needs to decode this format.
    pub fn shader_constants(self) -> Vec<(&'static str, u32)> {
        let bits = match self {
            Packed(p) => p.bits as u32,
            _ => 0,
        };
        vec![
            ("FORMAT", self.ggml_id()),
            ("BLOCK_SIZE", self.block_size() as u32),
            ("BLOCK_BYTES", self.block_bytes() as u32),
            ("BITS", bits),
        ]
    }

    /// The name GGUF tooling uses (`Q4_K`, `BF16` …); Squeeze's packed formats read like `INT4_G128`,
    /// `UINT3_G64` (asymmetric), `NF4_G64`, `FP8_E4M3_G576`, `FP4_G32`.
    pub fn name(self) -> String {
        let fixed = match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            MXFP4 => "MXFP4",
            Packed(p) => {
                let kind = match p.kind {
                    PackedKind::IntSym => format!("INT{}", p.bits),
                    PackedKind::IntAsym => format!("UINT{}", p.bits),
                    PackedKind::Nf4 => "NF4".into(),
                    PackedKind::Fp8E4M3 => "FP8_E4M3".into(),
                    PackedKind::Fp8E5M2 => "FP8_E5M2".into(),
                    PackedKind::Fp4 => "FP4".into(),
                };
                return format!("{kind}_G{}", p.group);
            }
        };
        fixed.to_string()
    }
}

impl DType {
    /// The type [`DType::name`] calls `name`, in rows of `cols` elements (the packed formats' names
    /// leave the row length out); None for names of no type or an impossible geometry.
    pub fn from_name(name: &str, cols: u64) -> Option<DType> {
        if let Some(d) = Self::ALL.into_iter().find(|d| d.name() == name) {
            return Some(d);
        }
        let (kind, group) = name.rsplit_once("_G")?;
        let group: u32 = group.parse().ok()?;
        let (kind, bits) = match kind {
            "NF4" => (PackedKind::Nf4, 4),
            "FP4" => (PackedKind::Fp4, 4),
            "FP8_E4M3" => (PackedKind::Fp8E4M3, 8),
            "FP8_E5M2" => (PackedKind::Fp8E5M2, 8),
            k => match (k.strip_prefix("UINT"), k.strip_prefix("INT")) {
                (Some(b), _) => (PackedKind::IntAsym, b.parse().ok()?),
                (_, Some(b)) => (PackedKind::IntSym, b.parse().ok()?),
                _ => return None,
            },
        };
        let cols = u32::try_from(cols).ok()?;
        let fits = (2..=8).contains(&bits)
            && group > 0
            && group.is_multiple_of(32)
            && cols.is_multiple_of(32)
            && (cols % group).is_multiple_of(32);
        fits.then_some(Packed(Packed { kind, bits, group, cols }))
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_type() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(&d.name(), 256), Some(d));
        }
        let kinds = [
            (PackedKind::IntSym, 3),
            (PackedKind::IntAsym, 8),
            (PackedKind::Nf4, 4),
            (PackedKind::Fp8E4M3, 8),
            (PackedKind::Fp8E5M2, 8),
            (PackedKind::Fp4, 4),
        ];
        for (kind, bits) in kinds {
            for group in [32, 128, 576] {
                let d = Packed(Packed { kind, bits, group, cols: 576 });
                assert_eq!(DType::from_name(&d.name(), 576), Some(d));
            }
        }
        for bad in ["INT9_G32", "INT4_G48", "NF4_G0", "Q9_9", "UINT4_Gx"] {
            assert_eq!(DType::from_name(bad, 576), None, "{bad}");
        }
        assert_eq!(DType::from_name("INT4_G128", 100), None, "rows must be a multiple of 32");
    }
}
