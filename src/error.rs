//! One error type for the whole crate. Every message names the file, tensor or limit involved and the
//! numbers that disagreed, because the page shows it to a user who needs to know what to change.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The file is not what it claims to be: wrong magic, truncated, impossible counts or offsets.
    BadFile { file: String, problem: String },
    /// The file is well formed but uses something Squeeze does not handle (architecture, dtype, version).
    Unsupported { file: String, what: String },
    /// A header parser ran off the end of the bytes it was given; the loader retries with `needed` bytes.
    NeedMore { needed: u64 },
    /// The GPU cannot hold or bind what was asked of it.
    DeviceLimit(String),
    /// Adapter, device or kernel failure.
    Gpu(String),
    /// Reading a file failed.
    Io { file: String, problem: String },
    /// A bad argument from the caller (unknown tensor name, bad option).
    Invalid(String),
    /// The user cancelled a long operation.
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad_file(file: &str, problem: impl Into<String>) -> Self {
        Error::BadFile { file: file.to_string(), problem: problem.into() }
    }
    pub fn unsupported(file: &str, what: impl Into<String>) -> Self {
        Error::Unsupported { file: file.to_string(), what: what.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadFile { file, problem } => write!(f, "{file}: {problem}"),
            Error::Unsupported { file, what } => write!(f, "{file}: unsupported: {what}"),
            Error::NeedMore { needed } => write!(f, "header needs {needed} bytes"),
            Error::DeviceLimit(m) => write!(f, "GPU limit: {m}"),
            Error::Gpu(m) => write!(f, "GPU error: {m}"),
            Error::Io { file, problem } => write!(f, "{file}: cannot read: {problem}"),
            Error::Invalid(m) => write!(f, "{m}"),
            Error::Cancelled => write!(f, "cancelled"),
        }
    }
}

impl std::error::Error for Error {}
