//! Where model bytes come from: a native file, a browser Blob (see `web.rs`), or memory (tests).
//! Readers take byte ranges so a 1 GB model never has to sit whole in memory.

use crate::error::Result;
use std::future::Future;

// A model file is never empty in a way worth asking about: parsers check lengths against what they need.
#[allow(clippy::len_without_is_empty)]
pub trait ByteSource {
    /// The file name shown in messages (`model.safetensors`), not a full path.
    fn name(&self) -> &str;
    fn len(&self) -> u64;
    /// Exactly `len` bytes from `offset`; callers never ask past `self.len()`.
    fn read(&self, offset: u64, len: usize) -> impl Future<Output = Result<Vec<u8>>>;
}

/// Bytes held in memory: synthetic test files and small uploads.
pub struct MemSource {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl ByteSource for MemSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let start = offset as usize;
        Ok(self.bytes[start..start + len].to_vec())
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{open_path, FileSource};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::ByteSource;
    use crate::error::{Error, Result};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// A file on disk, opened read-only: Squeeze never writes to a user's model.
    pub struct FileSource {
        name: String,
        file: std::fs::File,
        len: u64,
    }

    impl FileSource {
        pub fn open(path: &Path) -> Result<Self> {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let io =
                |e: std::io::Error| Error::Io { file: path.display().to_string(), problem: e.to_string() };
            let file = std::fs::File::open(path).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            Ok(FileSource { name, file, len })
        }
    }

    /// The files of a model at `path`: the file itself, or every regular file in a model directory
    /// (config.json, *.safetensors, the shard index, tokenizer.json …), sorted by name.
    pub fn open_path(path: &Path) -> Result<Vec<FileSource>> {
        let io = |e: std::io::Error| Error::Io { file: path.display().to_string(), problem: e.to_string() };
        if !path.is_dir() {
            return Ok(vec![FileSource::open(path)?]);
        }
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files.iter().map(|p| FileSource::open(p)).collect()
    }

    impl ByteSource for FileSource {
        fn name(&self) -> &str {
            &self.name
        }
        fn len(&self) -> u64 {
            self.len
        }
        async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
            let mut buf = vec![0u8; len];
            self.file
                .read_exact_at(&mut buf, offset)
                .map_err(|e| Error::Io { file: self.name.clone(), problem: e.to_string() })?;
            Ok(buf)
        }
    }
}
