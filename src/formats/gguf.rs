//! GGUF v2/v3 reader. The header (metadata and tensor table) is parsed from a prefix of the file, and
//! every count, length, shape and offset is checked against the file length before it is trusted, so
//! a damaged or hostile file gives a message instead of a panic or a huge allocation.

use super::{ArchSummary, ByteSource, Container, DType, MetaValue, ModelHeader, TensorInfo};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet};

/// `open` reads this much first; most headers fit, large vocabularies need one or two more reads.
const FIRST_READ: u64 = 1 << 20;
/// Real headers (a 256k-token vocabulary with its merges) stay under ~20 MiB; a bigger one is refused so
/// that a hostile file cannot make the page read and allocate gigabytes.
pub const MAX_HEADER_BYTES: u64 = 64 << 20;
/// Metadata array elements allowed in one file (real files hold under 2 million). Each element costs far
/// more in memory than in the file (a `MetaValue` is 16–32 bytes), so bytes alone are no bound.
const MAX_ARRAY_ELEMENTS: u64 = 8 << 20;
/// Arrays of arrays are legal; real files nest at most once. The limit keeps recursion shallow.
const MAX_ARRAY_DEPTH: u32 = 8;
/// Data section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Smallest possible tensor info: name length u64, n_dims u32, one dim u64, type u32, offset u64.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;
/// Smallest possible metadata entry: key length u64, value type u32, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Magic, version, tensor count, kv count.
const FIXED_HEADER_BYTES: u64 = 4 + 4 + 8 + 8;

/// The parsed header of a GGUF file. Tensor offsets are absolute file offsets.
#[derive(Debug, Clone)]
pub struct ParsedGguf {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where the data section starts: the header end rounded up to `alignment`.
    pub data_offset: u64,
}

/// Read a GGUF file's header: metadata, tensor table and architecture summary. Tensor data is not read.
pub async fn open<S: ByteSource>(src: &S) -> Result<ModelHeader> {
    let name = src.name();
    let file_len = src.len();
    let mut prefix = src.read(0, to_usize(name, FIRST_READ.min(file_len))?).await?;
    let parsed = loop {
        match parse_header(name, &prefix, file_len) {
            Err(Error::NeedMore { needed }) => {
                let have = prefix.len() as u64;
                // Doubling keeps the number of re-parses logarithmic in the header size.
                let want = needed.max(have * 2).min(file_len).min(MAX_HEADER_BYTES);
                if want <= have {
                    return Err(Error::bad_file(
                        name,
                        format!("header parser asked for {needed} bytes after reading {have}"),
                    ));
                }
                prefix.extend(src.read(have, to_usize(name, want - have)?).await?);
            }
            other => break other?,
        }
    };
    let summary = ArchSummary::from_gguf(&parsed.metadata, &parsed.tensors);
    Ok(ModelHeader {
        container: Container::Gguf,
        files: vec![name.to_string()],
        metadata: parsed.metadata,
        config: None,
        tokenizer_json: None,
        tokenizer_config: None,
        tensors: parsed.tensors,
        summary,
    })
}

/// Parse a GGUF header from the first `prefix.len()` bytes of a file of `file_len` bytes.
/// Returns `Error::NeedMore` when the header runs past the prefix but not past the file.
pub fn parse_header(file_name: &str, prefix: &[u8], file_len: u64) -> Result<ParsedGguf> {
    let mut c = Cursor { file: file_name, buf: prefix, pos: 0, file_len, array_elements: 0 };
    let bad = |problem: String| Error::bad_file(file_name, problem);
    if file_len < 4 {
        return Err(bad(format!("the file has only {file_len} bytes; a GGUF file starts with \"GGUF\"")));
    }
    let magic: [u8; 4] = c.bytes()?;
    if &magic != b"GGUF" {
        return Err(bad(format!(
            "the first 4 bytes are \"{}\" ({magic:02x?}); a GGUF file starts with \"GGUF\"",
            magic.escape_ascii()
        )));
    }
    let version = c.u32()?;
    check_version(file_name, version)?;
    let tensor_count = c.u64()?;
    let kv_count = c.u64()?;
    check_count(file_name, "tensor", tensor_count, MIN_TENSOR_INFO_BYTES, file_len)?;
    check_count(file_name, "metadata", kv_count, MIN_KV_BYTES, file_len)?;

    let metadata = read_metadata(&mut c, kv_count)?;
    let mut raw = Vec::new();
    for i in 0..tensor_count {
        raw.push(read_tensor_info(&mut c, i, tensor_count)?);
    }
    let alignment = alignment(file_name, &metadata)?;
    // The header end is below MAX_HEADER_BYTES, so rounding up cannot overflow.
    let data_offset = c.pos.next_multiple_of(alignment);
    let tensors = place_tensors(file_name, raw, data_offset, alignment, file_len)?;
    Ok(ParsedGguf { version, metadata, tensors, alignment, data_offset })
}

fn check_version(file: &str, version: u32) -> Result<()> {
    match version {
        2 | 3 => Ok(()),
        1 => Err(Error::unsupported(
            file,
            "GGUF version 1 (the 2023 draft format); only versions 2 and 3 can be read: \
             re-convert the model with a current llama.cpp",
        )),
        v if matches!(v.swap_bytes(), 2 | 3) => Err(Error::unsupported(
            file,
            format!("big-endian GGUF (version field {v:#010x}); only little-endian files can be read"),
        )),
        v => Err(Error::unsupported(file, format!("GGUF version {v}; only versions 2 and 3 can be read"))),
    }
}

/// Refuse counts the file cannot possibly hold, before anything is allocated for them.
fn check_count(file: &str, what: &str, count: u64, min_bytes: u64, file_len: u64) -> Result<()> {
    let room = file_len.saturating_sub(FIXED_HEADER_BYTES);
    if count.checked_mul(min_bytes).is_none_or(|need| need > room) {
        return Err(Error::bad_file(
            file,
            format!(
                "{what} count {count} is impossible: each {what} entry takes at least {min_bytes} bytes \
                 and the file has only {file_len} bytes"
            ),
        ));
    }
    Ok(())
}

fn read_metadata(c: &mut Cursor, count: u64) -> Result<BTreeMap<String, MetaValue>> {
    let mut map = BTreeMap::new();
    for i in 0..count {
        let key = c.string().map_err(within(|| format!("metadata entry {i} of {count}")))?;
        let value = c.typed_value().map_err(within(|| format!("metadata key {key}")))?;
        if map.contains_key(&key) {
            return Err(Error::bad_file(c.file, format!("metadata key {key} appears twice")));
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// A tensor info as stored, before the data section's position is known.
struct RawTensor {
    name: String,
    /// Outermost first.
    shape: Vec<u64>,
    dtype: DType,
    /// Relative to the data section.
    offset: u64,
}

fn read_tensor_info(c: &mut Cursor, i: u64, count: u64) -> Result<RawTensor> {
    let name = c.string().map_err(within(|| format!("tensor info {i} of {count}")))?;
    let (shape, dtype, offset) = read_tensor_fields(c, &name).map_err(within(|| format!("tensor {name}")))?;
    Ok(RawTensor { name, shape, dtype, offset })
}

/// What follows a tensor's name: dims (returned outermost first), ggml type, relative offset.
fn read_tensor_fields(c: &mut Cursor, name: &str) -> Result<(Vec<u64>, DType, u64)> {
    let n_dims = c.u32()?;
    if !(1..=4).contains(&n_dims) {
        return Err(Error::bad_file(c.file, format!("has {n_dims} dimensions; GGUF allows 1 to 4")));
    }
    let mut shape = Vec::new();
    for _ in 0..n_dims {
        shape.push(c.u64()?);
    }
    shape.reverse(); // GGUF stores the innermost dimension first.
    if shape.contains(&0) || shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).is_none() {
        return Err(Error::bad_file(
            c.file,
            format!("shape {shape:?} has no valid element count (zero or overflowing)"),
        ));
    }
    let type_id = c.u32()?;
    let dtype = DType::from_ggml_id(type_id).ok_or_else(|| {
        Error::unsupported(c.file, format!("tensor {name} has ggml type {}", describe_ggml_type(type_id)))
    })?;
    Ok((shape, dtype, c.u64()?))
}

/// Names for ggml types that exist but that Squeeze has no DType for, so the message says what the file is.
fn describe_ggml_type(id: u32) -> String {
    let known = match id {
        4 | 5 => Some("Q4_2/Q4_3, removed from ggml in 2023"),
        16 => Some("IQ2_XXS"),
        17 => Some("IQ2_XS"),
        18 => Some("IQ3_XXS"),
        19 => Some("IQ1_S"),
        20 => Some("IQ4_NL"),
        21 => Some("IQ3_S"),
        22 => Some("IQ2_S"),
        23 => Some("IQ4_XS"),
        29 => Some("IQ1_M"),
        34 => Some("TQ1_0"),
        35 => Some("TQ2_0"),
        39 => Some("MXFP4"),
        _ => None,
    };
    match known {
        Some(n) => format!("{id} ({n}), which Squeeze cannot read"),
        None => format!("id {id}, which is not a ggml type Squeeze knows"),
    }
}

fn alignment(file: &str, metadata: &BTreeMap<String, MetaValue>) -> Result<u64> {
    match metadata.get("general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(MetaValue::U32(a)) if a.is_power_of_two() => Ok(u64::from(*a)),
        Some(MetaValue::U32(a)) => {
            Err(Error::bad_file(file, format!("general.alignment is {a}; it must be a power of two")))
        }
        Some(other) => {
            Err(Error::bad_file(file, format!("general.alignment must be a u32, found {other:?}")))
        }
    }
}

/// Turn relative offsets into absolute ones and check each tensor's size, alignment and extent.
fn place_tensors(
    file: &str,
    raw: Vec<RawTensor>,
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<Vec<TensorInfo>> {
    let bad = |problem: String| Error::bad_file(file, problem);
    let mut seen = HashSet::new();
    let mut tensors = Vec::new();
    for t in raw {
        if !seen.insert(t.name.clone()) {
            return Err(bad(format!("tensor {} appears twice in the tensor table", t.name)));
        }
        let (name, dtype) = (&t.name, t.dtype);
        let cols = t.shape.last().copied().unwrap_or(1);
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(bad(format!(
                "tensor {name}: rows of {cols} elements are not a multiple of the {dtype} block size {}",
                dtype.block_size()
            )));
        }
        let n_elements: u64 = t.shape.iter().product(); // checked when the info was read
        let n_bytes = dtype.bytes_for(n_elements).ok_or_else(|| {
            bad(format!("tensor {name}: {n_elements} {dtype} elements overflow a byte count"))
        })?;
        if !t.offset.is_multiple_of(alignment) {
            return Err(bad(format!(
                "tensor {name}: data offset {} is not a multiple of the alignment {alignment}",
                t.offset
            )));
        }
        // u128 so that a hostile offset still gives an honest number in the message.
        let end = u128::from(data_offset) + u128::from(t.offset) + u128::from(n_bytes);
        if end > u128::from(file_len) {
            return Err(bad(format!(
                "tensor {name}: data ends at byte {end} but the file has {file_len} bytes (truncated?)"
            )));
        }
        tensors.push(TensorInfo {
            offset: data_offset + t.offset,
            name: t.name,
            shape: t.shape,
            dtype,
            file: 0,
            n_bytes,
        });
    }
    Ok(tensors)
}

/// Prefix a BadFile problem with where the parser was, leaving other errors (NeedMore) untouched.
fn within(ctx: impl FnOnce() -> String) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        Error::BadFile { file, problem } => Error::BadFile { file, problem: format!("{}: {problem}", ctx()) },
        other => other,
    }
}

fn to_usize(file: &str, n: u64) -> Result<usize> {
    usize::try_from(n)
        .map_err(|_| Error::bad_file(file, format!("{n} bytes is more than this platform can read")))
}

/// Little-endian reads over the prefix, bounded by the real file length.
struct Cursor<'a> {
    file: &'a str,
    buf: &'a [u8],
    pos: u64,
    file_len: u64,
    array_elements: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let pos = self.pos;
        let end = pos.checked_add(n).filter(|&end| end <= self.file_len).ok_or_else(|| {
            Error::bad_file(
                self.file,
                format!("truncated: {n} bytes needed at byte {pos} but the file has {} bytes", self.file_len),
            )
        })?;
        if end > MAX_HEADER_BYTES {
            return Err(Error::bad_file(
                self.file,
                format!(
                    "the header runs past {MAX_HEADER_BYTES} bytes (to byte {end}); no real model needs that"
                ),
            ));
        }
        if end > self.buf.len() as u64 {
            return Err(Error::NeedMore { needed: end });
        }
        self.pos = end;
        // pos <= end <= buf.len(), so both fit in usize.
        Ok(&self.buf[pos as usize..end as usize])
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::bad_file(self.file, format!("text at byte {at} is not valid UTF-8 ({e})")))
    }

    /// A value preceded by its u32 type.
    fn typed_value(&mut self) -> Result<MetaValue> {
        let ty = self.u32()?;
        self.value(ty, 0)
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<MetaValue> {
        use MetaValue as V;
        Ok(match ty {
            0 => V::U8(self.u8()?),
            1 => V::I8(i8::from_le_bytes(self.bytes()?)),
            2 => V::U16(u16::from_le_bytes(self.bytes()?)),
            3 => V::I16(i16::from_le_bytes(self.bytes()?)),
            4 => V::U32(self.u32()?),
            5 => V::I32(i32::from_le_bytes(self.bytes()?)),
            6 => V::F32(f32::from_le_bytes(self.bytes()?)),
            7 => V::Bool(match self.u8()? {
                0 => false,
                1 => true,
                b => return Err(Error::bad_file(self.file, format!("boolean byte is {b}, not 0 or 1"))),
            }),
            8 => V::String(self.string()?),
            9 => V::Array(self.array(depth + 1)?),
            10 => V::U64(self.u64()?),
            11 => V::I64(i64::from_le_bytes(self.bytes()?)),
            12 => V::F64(f64::from_le_bytes(self.bytes()?)),
            _ => return Err(unknown_value_type(self.file, ty)),
        })
    }

    fn array(&mut self, depth: u32) -> Result<Vec<MetaValue>> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Error::bad_file(
                self.file,
                format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"),
            ));
        }
        let ty = self.u32()?;
        let n = self.u64()?;
        let min = min_value_bytes(ty).ok_or_else(|| unknown_value_type(self.file, ty))?;
        let remaining = self.file_len - self.pos;
        if n.checked_mul(min).is_none_or(|need| need > remaining) {
            return Err(Error::bad_file(
                self.file,
                format!(
                    "array of {n} elements of type {ty} needs at least {min} bytes each \
                     but only {remaining} bytes remain in the file (truncated?)"
                ),
            ));
        }
        self.array_elements = self.array_elements.saturating_add(n);
        if self.array_elements > MAX_ARRAY_ELEMENTS {
            return Err(Error::bad_file(
                self.file,
                format!("metadata arrays hold more than {MAX_ARRAY_ELEMENTS} elements in all; no real model needs that"),
            ));
        }
        let mut items = Vec::new(); // grows as elements are read: `n` is untrusted
        for _ in 0..n {
            items.push(self.value(ty, depth)?);
        }
        Ok(items)
    }
}

fn unknown_value_type(file: &str, ty: u32) -> Error {
    Error::bad_file(file, format!("unknown metadata value type {ty} (GGUF defines 0 to 12)"))
}

/// The fewest bytes one value of GGUF value type `ty` can take.
fn min_value_bytes(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}
