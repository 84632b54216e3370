//! The wasm-bindgen surface the page's Web Worker drives: one `Squeeze` object owning the GPU and the
//! loaded model. Results cross to JavaScript as plain JSON-like objects; errors as `Error`s whose message
//! is the human-readable problem.

use crate::error::{Error, Result};
use crate::eval::weight_stats::tensor_stats;
use crate::formats::ByteSource;
use crate::gpu::{Gpu, GpuOptions};
use crate::model::{self, LoadedModel};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// A browser Blob or File, read by byte ranges so the whole model never has to sit in wasm memory.
struct BlobSource {
    name: String,
    blob: web_sys::Blob,
}

impl ByteSource for BlobSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.blob.size() as u64
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let io = |e: JsValue| Error::Io { file: self.name.clone(), problem: format!("{e:?}") };
        let part =
            self.blob.slice_with_f64_and_f64(offset as f64, (offset + len as u64) as f64).map_err(io)?;
        let buffer = JsFuture::from(part.array_buffer()).await.map_err(io)?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }
}

fn to_js<T: Serialize>(value: &T) -> std::result::Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

fn js_err(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen]
pub struct Squeeze {
    gpu: Rc<Gpu>,
    model: RefCell<Option<Rc<LoadedModel>>>,
}

#[wasm_bindgen]
impl Squeeze {
    /// Open the WebGPU device. Fails with an explanation when the browser offers no adapter.
    pub async fn create() -> std::result::Result<Squeeze, JsError> {
        let gpu = Gpu::new(GpuOptions::default()).await.map_err(js_err)?;
        Ok(Squeeze { gpu: Rc::new(gpu), model: RefCell::new(None) })
    }

    pub fn gpu_info(&self) -> std::result::Result<JsValue, JsError> {
        to_js(&self.gpu.info)
    }

    /// Parse and upload a model from Blobs/Files with their names (one .gguf, or the files of a
    /// Hugging Face model directory). `on_progress(phase, done, total)` reports parse and upload.
    /// A failure leaves the previously loaded model in place.
    pub async fn open(
        &self,
        blobs: js_sys::Array,
        names: js_sys::Array,
        on_progress: js_sys::Function,
    ) -> std::result::Result<JsValue, JsError> {
        let sources: Vec<BlobSource> = blobs
            .iter()
            .zip(names.iter())
            .map(|(blob, name)| BlobSource {
                name: name.as_string().unwrap_or_default(),
                blob: blob.unchecked_into(),
            })
            .collect();
        let mut progress = |phase: &str, done: u64, total: u64| {
            let _ = on_progress.call3(
                &JsValue::NULL,
                &phase.into(),
                &(done as f64).into(),
                &(total as f64).into(),
            );
        };
        let loaded = model::load(&self.gpu, &sources, &mut progress).await.map_err(js_err)?;
        let view = loaded.view();
        self.model.replace(Some(Rc::new(loaded)));
        to_js(&view)
    }

    /// Histogram, quantiles, moments and per-output-channel max|w| of one tensor, computed on the GPU.
    pub async fn tensor_stats(
        &self,
        name: String,
        bins: u32,
        top_k: u32,
    ) -> std::result::Result<JsValue, JsError> {
        let model = self.model.borrow().clone().ok_or_else(|| JsError::new("no model is loaded"))?;
        let tensor = model.tensor(&name).map_err(js_err)?;
        let stats = tensor_stats(&self.gpu, tensor, bins, top_k as usize).await.map_err(js_err)?;
        to_js(&stats)
    }

    /// Free the loaded model's GPU memory.
    pub fn close(&self) {
        self.model.replace(None);
    }
}
