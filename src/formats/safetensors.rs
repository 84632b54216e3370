//! Hugging Face model directories: safetensors shards (only their JSON headers are read), the optional
//! `model.safetensors.index.json` (checked against the shards given), `config.json`, `tokenizer.json` and `tokenizer_config.json`. Files Squeeze exported carry their quantised
//! tensors as bytes with the real format in `__metadata__` (see `safetensors_write`), and those three JSON
//! files there too, so one file opens alone.

use super::safetensors_write::{FORMATS_KEY, NATIVE};
use super::{ArchSummary, ByteSource, Container, DType, ModelHeader, TensorInfo};
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The `__metadata__` key of an exported file's config.json (its text).
pub const CONFIG_KEY: &str = "config.json";
/// The `__metadata__` key of an exported file's tokenizer.json (its text).
pub const TOKENIZER_KEY: &str = "tokenizer.json";
/// The `__metadata__` key of an exported file's tokenizer_config.json (its text).
pub const TOKENIZER_CONFIG_KEY: &str = "tokenizer_config.json";
/// The safetensors library refuses headers above 100 MB; so do we.
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// config.json, the index and tokenizer.json are read whole; real ones are well under this.
const MAX_TEXT_FILE_BYTES: u64 = 100_000_000;

/// What a file in the directory is, judged by its name.
enum Role {
    Shard,
    Index,
    Config,
    Tokenizer,
    TokenizerConfig,
    Ignored,
}

fn role(name: &str) -> Role {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".safetensors") {
        Role::Shard
    } else if lower.ends_with(".safetensors.index.json") {
        Role::Index
    } else if lower == "config.json" {
        Role::Config
    } else if lower == "tokenizer.json" {
        Role::Tokenizer
    } else if lower == "tokenizer_config.json" {
        Role::TokenizerConfig
    } else {
        Role::Ignored
    }
}

/// Open the files of a Hugging Face model directory. `ModelHeader::files` lists every source in the
/// order given, so `TensorInfo::file` indexes `sources` directly.
pub async fn open_dir<S: ByteSource>(sources: &[S]) -> Result<ModelHeader> {
    let files: Vec<String> = sources.iter().map(|s| s.name().to_string()).collect();
    if !sources.iter().any(|s| matches!(role(s.name()), Role::Shard)) {
        return Err(Error::Invalid(format!("no .safetensors file among [{}]", files.join(", "))));
    }
    let mut tensors: Vec<TensorInfo> = Vec::new();
    let mut where_is: HashMap<String, usize> = HashMap::new();
    let mut index = None;
    let mut config = None;
    let mut tokenizer_json = None;
    let mut embedded_config = None;
    let mut embedded_tokenizer = None;
    let mut tokenizer_config = None;
    let mut embedded_tokenizer_config = None;
    for (i, src) in sources.iter().enumerate() {
        match role(src.name()) {
            Role::Shard => {
                let (shard_tensors, metadata) = read_shard(src, i).await?;
                // An exported file carries its JSON side files as text in __metadata__.
                let embedded_json = |key: &str| -> Result<Option<Value>> {
                    match metadata.get(key) {
                        Some(Value::String(text)) => serde_json::from_str(text).map(Some).map_err(|e| {
                            Error::bad_file(src.name(), format!("__metadata__ {key} is not valid JSON: {e}"))
                        }),
                        _ => Ok(None),
                    }
                };
                if let Some(parsed) = embedded_json(CONFIG_KEY)? {
                    embedded_config.get_or_insert(parsed);
                }
                if let Some(parsed) = embedded_json(TOKENIZER_CONFIG_KEY)? {
                    embedded_tokenizer_config.get_or_insert(parsed);
                }
                if let Some(Value::String(text)) = metadata.get(TOKENIZER_KEY) {
                    embedded_tokenizer.get_or_insert(text.clone());
                }
                for t in shard_tensors {
                    if let Some(&first) = where_is.get(&t.name) {
                        return Err(Error::bad_file(
                            src.name(),
                            format!(
                                "tensor {} is also in {}; each tensor must be in one shard",
                                t.name,
                                sources[first].name()
                            ),
                        ));
                    }
                    where_is.insert(t.name.clone(), i);
                    tensors.push(t);
                }
            }
            Role::Index => index = Some((src.name(), read_json(src).await?)),
            Role::Config => config = Some(read_json(src).await?),
            Role::Tokenizer => tokenizer_json = Some(read_text(src).await?),
            Role::TokenizerConfig => tokenizer_config = Some(read_json(src).await?),
            Role::Ignored => {}
        }
    }
    if let Some((index_name, index)) = &index {
        check_index(index_name, index, &files, &where_is)?;
    }
    // A config.json given beside the file wins over the one an exported file carries.
    let config = config.or(embedded_config);
    let tokenizer_json = tokenizer_json.or(embedded_tokenizer);
    let tokenizer_config = tokenizer_config.or(embedded_tokenizer_config);
    let summary = ArchSummary::from_config(config.as_ref(), &tensors);
    Ok(ModelHeader {
        container: Container::Safetensors,
        files,
        metadata: BTreeMap::new(),
        config,
        tokenizer_json,
        tokenizer_config,
        tensors,
        summary,
    })
}

/// One header entry as safetensors writes it.
#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Read a shard's header: its tensors in file order, and its `__metadata__`.
async fn read_shard<S: ByteSource>(
    src: &S,
    file_index: usize,
) -> Result<(Vec<TensorInfo>, Map<String, Value>)> {
    let file = src.name();
    let bad = |problem: String| Error::bad_file(file, problem);
    let len = src.len();
    if len < 8 {
        return Err(bad(format!(
            "the file has only {len} bytes; a safetensors file starts with an 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&src.read(0, 8).await?);
    let n = u64::from_le_bytes(n);
    if n > len - 8 {
        return Err(bad(format!(
            "header length {n} is larger than the file ({len} bytes); not a safetensors file?"
        )));
    }
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!("header length {n} is over the {MAX_HEADER_BYTES}-byte limit")));
    }
    // n <= MAX_HEADER_BYTES, so it fits in usize.
    let header = src.read(8, n as usize).await?;
    let mut header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
    let metadata = match header.remove("__metadata__") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("__metadata__ is not an object of strings".to_string())),
    };
    let formats = stored_formats(file, &metadata)?;
    if let Some(missing) = formats.keys().find(|f| !header.contains_key(*f)) {
        return Err(bad(format!("{FORMATS_KEY} names tensor {missing}, which the file does not hold")));
    }
    let data_start = 8 + n;
    let data_len = len - data_start;
    let mut tensors = Vec::new();
    for (name, value) in header {
        let entry: Entry = serde_json::from_value(value)
            .map_err(|e| bad(format!("tensor {name}: bad header entry: {e}")))?;
        let stored = formats.get(&name).cloned();
        tensors.push(tensor_info(file, name, entry, stored, data_start, data_len, file_index)?);
    }
    tensors.sort_by_key(|t| t.offset);
    Ok((tensors, metadata))
}

/// The real format and shape of each tensor an exported file holds as bytes (`FORMATS_KEY`).
fn stored_formats(file: &str, metadata: &Map<String, Value>) -> Result<HashMap<String, (DType, Vec<u64>)>> {
    let bad = |problem: String| Error::bad_file(file, format!("__metadata__ {FORMATS_KEY}: {problem}"));
    let Some(text) = metadata.get(FORMATS_KEY) else { return Ok(HashMap::new()) };
    let entries: HashMap<String, Stored> = text
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| bad("not a JSON object of {\"dtype\", \"shape\"} entries".to_string()))?;
    let mut formats = HashMap::new();
    for (name, s) in entries {
        let cols = s.shape.last().copied().unwrap_or(1);
        let dtype = DType::from_name(&s.dtype, cols)
            .ok_or_else(|| bad(format!("tensor {name}: {} is no format for rows of {cols}", s.dtype)))?;
        formats.insert(name, (dtype, s.shape));
    }
    Ok(formats)
}

/// A `FORMATS_KEY` entry.
#[derive(Deserialize)]
struct Stored {
    dtype: String,
    shape: Vec<u64>,
}

/// One header entry checked against the data section. `stored`: the real format and shape of a
/// tensor held as bytes.
fn tensor_info(
    file: &str,
    name: String,
    e: Entry,
    stored: Option<(DType, Vec<u64>)>,
    data_start: u64,
    data_len: u64,
    file_index: usize,
) -> Result<TensorInfo> {
    let bad = |problem: String| Error::bad_file(file, format!("tensor {name}: {problem}"));
    let elements = |shape: &[u64]| shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let (dtype, shape) = match stored {
        Some((dtype, shape)) => {
            // Held as raw bytes: the header's U8 shape must count exactly the bytes the real one takes.
            let n_bytes = elements(&shape).and_then(|n| dtype.bytes_for(n));
            if e.dtype != "U8" || n_bytes.is_none() || n_bytes != elements(&e.shape) {
                return Err(bad(format!(
                    "{FORMATS_KEY} says {dtype} of shape {shape:?} ({n_bytes:?} bytes), but the header stores \
                     {} of shape {:?}",
                    e.dtype, e.shape
                )));
            }
            (dtype, shape)
        }
        None => {
            let dtype = dtype_from_name(&e.dtype).ok_or_else(|| {
                Error::unsupported(
                    file,
                    format!(
                        "tensor {name} has dtype {}; Squeeze reads F32, F16 and BF16 (and lists I8, I16, I32, \
                         I64, F64)",
                        e.dtype
                    ),
                )
            })?;
            (dtype, e.shape)
        }
    };
    let n_bytes = elements(&shape)
        .and_then(|n| dtype.bytes_for(n))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows a 64-bit byte count")))?;
    let [a, b] = e.data_offsets;
    if b < a {
        return Err(bad(format!("data_offsets [{a}, {b}] run backwards")));
    }
    if b - a != n_bytes {
        return Err(bad(format!(
            "data_offsets [{a}, {b}] hold {} bytes but a {dtype} tensor of shape {shape:?} takes {n_bytes}",
            b - a,
        )));
    }
    if b > data_len {
        return Err(bad(format!(
            "data_offsets end at {b} but the data section has {data_len} bytes (truncated?)"
        )));
    }
    Ok(TensorInfo { name, shape, dtype, file: file_index, offset: data_start + a, n_bytes })
}

fn dtype_from_name(name: &str) -> Option<DType> {
    NATIVE.into_iter().find(|d| d.name() == name)
}

/// The index's weight_map must agree with the shards given: every tensor it names must be in the shard
/// it names, and that shard must have been given (a forgotten shard is the usual mistake).
fn check_index(
    index_name: &str,
    index: &Value,
    files: &[String],
    where_is: &HashMap<String, usize>,
) -> Result<()> {
    let bad = |problem: String| Error::bad_file(index_name, problem);
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("has no \"weight_map\" object".to_string()))?;
    for (tensor, shard) in map {
        let shard =
            shard.as_str().ok_or_else(|| bad(format!("weight_map entry for {tensor} is not a file name")))?;
        if !files.iter().any(|f| f == shard) {
            return Err(bad(format!(
                "tensor {tensor} is in {shard}, which was not given: open all the shard files together"
            )));
        }
        match where_is.get(tensor) {
            None => {
                return Err(bad(format!(
                    "weight_map puts {tensor} in {shard}, but {shard} has no such tensor"
                )))
            }
            Some(&i) if files[i] != shard => {
                return Err(bad(format!("weight_map puts {tensor} in {shard}, but it is in {}", files[i])))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

async fn read_text<S: ByteSource>(src: &S) -> Result<String> {
    let len = src.len();
    if len > MAX_TEXT_FILE_BYTES {
        return Err(Error::bad_file(src.name(), format!("{len} bytes is too large for this kind of file")));
    }
    // len <= MAX_TEXT_FILE_BYTES, so it fits in usize.
    String::from_utf8(src.read(0, len as usize).await?)
        .map_err(|e| Error::bad_file(src.name(), format!("not UTF-8 text: {e}")))
}

async fn read_json<S: ByteSource>(src: &S) -> Result<Value> {
    serde_json::from_str(&read_text(src).await?)
        .map_err(|e| Error::bad_file(src.name(), format!("not valid JSON: {e}")))
}

/// Write a safetensors file (tensors in the order given). For tests; `data` is the little-endian
/// stored bytes.
///
/// # Panics
/// On data of the wrong length for its dtype and shape.
pub fn write(tensors: &[(&str, &[u64], DType, &[u8])]) -> Vec<u8> {
    let mut w = super::safetensors_write::SafetensorsWriter::new();
    for &(name, shape, dtype, data) in tensors {
        w.add_tensor(name, shape, dtype, data.to_vec()).unwrap_or_else(|e| panic!("{e}"));
    }
    w.to_bytes()
}
