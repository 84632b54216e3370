//! Measuring models: weight and activation statistics, perplexity, agreement with a base model, and
//! how sensitive each block is to compression.

pub mod activations;
pub mod kld;
pub mod perplexity;
pub mod sensitivity;
pub mod weight_error;
pub mod weight_stats;
pub mod zero_map;

/// Milliseconds since an arbitrary origin, for timing: `Instant` natively, `Date.now()` in the
/// browser (where `std::time::Instant` panics).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e3
}

#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
