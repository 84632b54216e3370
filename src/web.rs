//! The wasm-bindgen surface the page's Web Worker drives: one `Squeeze` object owning the GPU and the
//! loaded model. Results cross to JavaScript as plain JSON-like objects; errors as `Error`s whose message
//! is the human-readable problem.

use crate::compress::recipe::{method_views, FORMATS};
use crate::compress::{compress, Calibration, Outcome, Recipe};
use crate::error::{Error, Result};
use crate::eval::activations::activation_stats;
use crate::eval::kld::{compare_models, BaseLogProbs};
use crate::eval::perplexity::{perplexity, Convention};
use crate::eval::sensitivity;
use crate::eval::weight_error::weight_error;
use crate::eval::weight_stats::tensor_stats;
use crate::eval::zero_map::{zero_map, Window};
use crate::export::{Export, ExportFormat};
use crate::formats::ByteSource;
use crate::gpu::{Gpu, GpuOptions};
use crate::model::generate::generate;
use crate::model::runner::Runner;
use crate::model::sampler::{Sampler, SamplingSettings};
use crate::model::{self, LoadedModel, Progress};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
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
    /// The result of the last `compress` and its recipe; the original stays in `model`, unmodified.
    compressed: RefCell<Option<(Rc<LoadedModel>, Recipe)>>,
    /// The export being streamed, with the model it reads.
    export: RefCell<Option<(Export, Rc<LoadedModel>)>>,
    /// Set by `stop()`; long operations check it between tokens or chunks.
    stop: Rc<Cell<bool>>,
}

/// Reports progress to a JS callback and sees the page's stop request.
struct JsProgress<'a> {
    callback: &'a js_sys::Function,
    stop: Rc<Cell<bool>>,
}

impl Progress for JsProgress<'_> {
    fn report(&mut self, phase: &str, done: u64, total: u64) {
        let _ =
            self.callback.call3(&JsValue::NULL, &phase.into(), &(done as f64).into(), &(total as f64).into());
    }
    fn cancelled(&self) -> bool {
        self.stop.get()
    }
}

/// Sensitivity scan options from the page.
#[derive(Deserialize)]
struct ScanOptions {
    text: String,
    ctx: usize,
    /// 0: every chunk of the text.
    chunks: usize,
}

/// Compression options from the page; absent fields take the defaults.
#[derive(Deserialize)]
#[serde(default)]
struct CompressOptions {
    calib_text: Option<String>,
    calib_tokens: usize,
    calib_seq: usize,
    eval_text: Option<String>,
    ctx: usize,
    chunks: usize,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            calib_text: None,
            calib_tokens: 2048,
            calib_seq: 256,
            eval_text: None,
            ctx: 256,
            chunks: 4,
        }
    }
}

/// Generation options from the page; absent fields take the defaults.
#[derive(Deserialize)]
#[serde(default)]
struct GenerateOptions {
    chat: bool,
    /// Run the compressed model instead of the original.
    compressed: bool,
    max_tokens: usize,
    greedy: bool,
    #[serde(flatten)]
    sampling: SamplingSettings,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            chat: true,
            compressed: false,
            max_tokens: 128,
            greedy: false,
            sampling: SamplingSettings::default(),
        }
    }
}

#[wasm_bindgen]
impl Squeeze {
    /// Open the WebGPU device. Fails with an explanation when the browser offers no adapter.
    pub async fn create() -> std::result::Result<Squeeze, JsError> {
        let gpu = Gpu::new(GpuOptions::default()).await.map_err(js_err)?;
        Ok(Squeeze {
            gpu: Rc::new(gpu),
            model: RefCell::new(None),
            compressed: RefCell::new(None),
            export: RefCell::new(None),
            stop: Rc::new(Cell::new(false)),
        })
    }

    /// Why the GPU device was lost, or undefined while it works. A lost device cannot be used again: the
    /// worker then makes a new `Squeeze` and opens the model again.
    pub fn device_lost(&self) -> Option<String> {
        self.gpu.lost()
    }

    /// Destroys the GPU device, as a driver reset would, so the recovery path can be tried (and is
    /// tested) without a crashing driver.
    pub fn lose_device(&self) {
        self.gpu.device.destroy();
    }

    /// The compression methods: name, whether calibrated, a short explanation, parameters with their
    /// defaults (`formats` lists what a step's `format` may name).
    pub fn methods(&self) -> std::result::Result<JsValue, JsError> {
        to_js(&serde_json::json!({ "methods": method_views(), "formats": FORMATS }))
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
        self.export.replace(None);
        self.compressed.replace(None);
        self.model.replace(Some(Rc::new(loaded)));
        to_js(&view)
    }

    /// Histogram, quantiles, moments and per-output-channel max|w| of one tensor, computed on the GPU
    /// (of the compressed model's tensor when `compressed`).
    pub async fn tensor_stats(
        &self,
        name: String,
        bins: u32,
        top_k: u32,
        compressed: Option<bool>,
    ) -> std::result::Result<JsValue, JsError> {
        let model = if compressed.unwrap_or(false) { self.compressed()? } else { self.loaded()? };
        let tensor = model.matrix(&self.gpu, &name).await.map_err(js_err)?;
        let stats = tensor_stats(&self.gpu, &tensor, bins, top_k as usize).await.map_err(js_err)?;
        to_js(&stats)
    }

    fn loaded(&self) -> std::result::Result<Rc<LoadedModel>, JsError> {
        self.model.borrow().clone().ok_or_else(|| JsError::new("no model is loaded"))
    }

    fn compressed(&self) -> std::result::Result<Rc<LoadedModel>, JsError> {
        self.compressed_with_recipe().map(|(m, _)| m)
    }

    fn compressed_with_recipe(&self) -> std::result::Result<(Rc<LoadedModel>, Recipe), JsError> {
        self.compressed.borrow().clone().ok_or_else(|| JsError::new("nothing has been compressed yet"))
    }

    /// The export of the compressed model as `format` ("gguf" or "safetensors").
    fn plan_export(&self, format: &str) -> std::result::Result<(Export, Rc<LoadedModel>), JsError> {
        let format = ExportFormat::from_file_name(&format!("model.{format}")).map_err(js_err)?;
        let (model, recipe) = self.compressed_with_recipe()?;
        let original = self.loaded()?;
        let export = Export::new(&original, &model, Some(&recipe), format).map_err(js_err)?;
        Ok((export, model))
    }

    /// Apply a recipe (JSON) to the loaded model, keeping the result beside the original, and measure
    /// it: `options` = { calib_text, calib_tokens, calib_seq, eval_text, ctx, chunks } (calibration text
    /// only for calibrated steps; evaluation when `eval_text` is given). `on_progress(phase, done,
    /// total)`; `stop()` cancels between layers and chunks, leaving the previous result in place.
    pub async fn compress(
        &self,
        recipe: String,
        options: JsValue,
        on_progress: js_sys::Function,
    ) -> std::result::Result<JsValue, JsError> {
        let options: CompressOptions = serde_wasm_bindgen::from_value(options)
            .map_err(|e| JsError::new(&format!("compress options: {e}")))?;
        let recipe = Recipe::parse(&recipe).map_err(js_err)?;
        let model = self.loaded()?;
        let tokenizer = model::tokenizer(&model.header).map_err(js_err)?;
        self.stop.set(false);
        let mut progress = JsProgress { callback: &on_progress, stop: self.stop.clone() };
        let mut calib = tokenizer.encode(options.calib_text.as_deref().unwrap_or(""), false, false);
        calib.truncate(options.calib_tokens);
        let calibration = Calibration { tokens: &calib, seq_len: options.calib_seq };
        let compressed =
            compress(&self.gpu, &model, &recipe, Some(calibration), &mut progress).await.map_err(js_err)?;
        let eval = match &options.eval_text {
            Some(text) => {
                let tokens = tokenizer.encode(text, tokenizer.adds_bos(), false);
                let bos = tokenizer.adds_bos().then(|| tokenizer.bos());
                let chunks = (options.chunks > 0).then_some(options.chunks);
                let d = compare_models(
                    &self.gpu,
                    &model,
                    &compressed.model,
                    &tokens,
                    options.ctx,
                    chunks,
                    bos,
                    &mut progress,
                )
                .await
                .map_err(js_err)?;
                Some(d)
            }
            None => None,
        };
        self.compressed.replace(Some((Rc::new(compressed.model), recipe)));
        to_js(&Outcome::new(compressed.report, eval))
    }

    /// Layer sensitivity: compress each block alone with `step` (one recipe step as JSON, data-free) and
    /// measure the KL divergence against the loaded model on `options` = { text, ctx, chunks }.
    /// Returns [{ layer, kld, top1, bpw, seconds }]; `stop()` cancels between blocks and chunks.
    pub async fn sensitivity(
        &self,
        step: String,
        options: JsValue,
        on_progress: js_sys::Function,
    ) -> std::result::Result<JsValue, JsError> {
        let options: ScanOptions = serde_wasm_bindgen::from_value(options)
            .map_err(|e| JsError::new(&format!("sensitivity options: {e}")))?;
        let recipe = Recipe::parse(&format!(r#"{{"steps":[{step}]}}"#)).map_err(js_err)?;
        sensitivity::check_step(&recipe.steps[0]).map_err(js_err)?;
        let model = self.loaded()?;
        let tokenizer = model::tokenizer(&model.header).map_err(js_err)?;
        self.stop.set(false);
        let mut progress = JsProgress { callback: &on_progress, stop: self.stop.clone() };
        let tokens = tokenizer.encode(&options.text, tokenizer.adds_bos(), false);
        let bos = tokenizer.adds_bos().then(|| tokenizer.bos());
        let chunks = (options.chunks > 0).then_some(options.chunks);
        let mut runner = Runner::new(&self.gpu, &model, options.ctx, options.ctx).map_err(js_err)?;
        let base = BaseLogProbs::compute(&mut runner, &tokens, options.ctx, chunks, bos, &mut progress)
            .await
            .map_err(js_err)?;
        let layers = sensitivity::scan(&self.gpu, &model, &recipe.steps[0], &base, &mut progress)
            .await
            .map_err(js_err)?;
        to_js(&layers)
    }

    /// Activation outliers: run `text` (at most `max_tokens` tokens, in sequences of `seq_len`) through
    /// the loaded model and return per block and input site the per-channel max|x| and mean|x|:
    /// [{ layer, sites: [{ site, max_abs, mean_abs }] }]; progress('activations', block, blocks).
    pub async fn activation_stats(
        &self,
        text: String,
        max_tokens: u32,
        seq_len: u32,
        on_progress: js_sys::Function,
    ) -> std::result::Result<JsValue, JsError> {
        let model = self.loaded()?;
        let tokenizer = model::tokenizer(&model.header).map_err(js_err)?;
        let mut tokens = tokenizer.encode(&text, tokenizer.adds_bos(), false);
        tokens.truncate(max_tokens as usize);
        self.stop.set(false);
        let mut progress = JsProgress { callback: &on_progress, stop: self.stop.clone() };
        let layers = activation_stats(&self.gpu, &model, &tokens, seq_len as usize, &mut progress)
            .await
            .map_err(js_err)?;
        to_js(&layers)
    }

    /// Where compressing changed one tensor: a histogram of Ŵ − W and the positions kept as outliers.
    pub async fn weight_error(&self, name: String, bins: u32) -> std::result::Result<JsValue, JsError> {
        let (original, compressed) = (self.loaded()?, self.compressed()?);
        let e =
            weight_error(&self.gpu, &original, &compressed, &name, bins as usize).await.map_err(js_err)?;
        to_js(&e)
    }

    /// Where tensor `name` of the compressed model is zero: the share of zeros per cell of a grid of at
    /// most `grid_rows × grid_cols` over `window` ({row0, col0, rows, cols}; null for the whole matrix).
    pub async fn zero_map(
        &self,
        name: String,
        window: JsValue,
        grid_rows: u32,
        grid_cols: u32,
    ) -> std::result::Result<JsValue, JsError> {
        let window: Option<Window> = serde_wasm_bindgen::from_value(window)
            .map_err(|e| JsError::new(&format!("zero map window: {e}")))?;
        let model = self.compressed()?;
        let map = zero_map(&self.gpu, &model, &name, window, grid_rows as usize, grid_cols as usize)
            .await
            .map_err(js_err)?;
        to_js(&map)
    }

    /// What exporting the compressed model as `format` ("gguf" or "safetensors") would write: per tensor
    /// stored or decoded (and why), the file's name and size. Writes nothing.
    pub fn export_plan(&self, format: String) -> std::result::Result<JsValue, JsError> {
        to_js(self.plan_export(&format)?.0.plan())
    }

    /// Start streaming the export as `format` (replacing any export under way); answers the plan. Then
    /// call `export_next` until it answers undefined.
    pub fn export_begin(&self, format: String) -> std::result::Result<JsValue, JsError> {
        let (export, model) = self.plan_export(&format)?;
        let plan = to_js(export.plan())?;
        self.export.replace(Some((export, model)));
        Ok(plan)
    }

    /// The next piece of the file being exported (header, then one tensor at a time), or undefined when
    /// it is complete.
    pub async fn export_next(&self) -> std::result::Result<Option<js_sys::Uint8Array>, JsError> {
        // Taken out while a piece is made, so that no RefCell borrow is held across the GPU readback.
        let Some((mut export, model)) = self.export.take() else {
            return Err(JsError::new("no export is under way"));
        };
        let piece = export.next_piece(&self.gpu, &model).await.map_err(js_err)?;
        if piece.is_some() {
            self.export.replace(Some((export, model)));
        }
        Ok(piece.map(|p| js_sys::Uint8Array::from(p.as_slice())))
    }

    /// Drop the export under way.
    pub fn export_cancel(&self) {
        self.export.replace(None);
    }

    /// Token ids of `text` (BOS only when the model adds one).
    pub fn tokenize(&self, text: String, parse_special: bool) -> std::result::Result<Vec<u32>, JsError> {
        let model = self.loaded()?;
        let tokenizer = model::tokenizer(&model.header).map_err(js_err)?;
        Ok(tokenizer.encode(&text, tokenizer.adds_bos(), parse_special))
    }

    /// Generate a continuation of `prompt` (wrapped in the model's chat template when `options.chat`),
    /// calling `on_text(piece, tokens, ms)` as text arrives. `stop()` ends it early.
    pub async fn generate(
        &self,
        prompt: String,
        options: JsValue,
        on_text: js_sys::Function,
    ) -> std::result::Result<JsValue, JsError> {
        let options: GenerateOptions = if options.is_undefined() || options.is_null() {
            GenerateOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("generate options: {e}")))?
        };
        let model = if options.compressed { self.compressed()? } else { self.loaded()? };
        let tokenizer = model::tokenizer(&model.header).map_err(js_err)?;
        let text = if options.chat {
            tokenizer.apply_chat_template(&[("user".to_string(), prompt)], true).map_err(js_err)?
        } else {
            prompt
        };
        let ids = tokenizer.encode(&text, tokenizer.adds_bos(), true);
        let mut runner =
            Runner::new(&self.gpu, &model, ids.len() + options.max_tokens + 1, 256).map_err(js_err)?;
        let settings = if options.greedy { SamplingSettings::greedy() } else { options.sampling };
        self.stop.set(false);
        let noop = js_sys::Function::new_no_args("");
        let mut progress = JsProgress { callback: &noop, stop: self.stop.clone() };
        let mut stream = |piece: &str, tokens: usize, ms: f64| {
            let _ = on_text.call3(&JsValue::NULL, &piece.into(), &(tokens as f64).into(), &ms.into());
        };
        let mut sampler = Sampler::new(settings);
        let g = generate(
            &mut runner,
            &tokenizer,
            &ids,
            options.max_tokens,
            &mut sampler,
            &mut progress,
            &mut stream,
        )
        .await
        .map_err(js_err)?;
        to_js(&g)
    }

    /// Perplexity of `text` at context `ctx` over at most `max_chunks` chunks (0 = all), in llama.cpp's
    /// convention or with every token scored; `on_progress("perplexity", done, total)` per chunk.
    pub async fn perplexity(
        &self,
        text: String,
        ctx: u32,
        max_chunks: u32,
        all_tokens: bool,
        on_progress: js_sys::Function,
    ) -> std::result::Result<JsValue, JsError> {
        let model = self.loaded()?;
        let tokenizer = model::tokenizer(&model.header).map_err(js_err)?;
        let tokens = tokenizer.encode(&text, tokenizer.adds_bos(), false);
        let bos = tokenizer.adds_bos().then(|| tokenizer.bos());
        let ctx = ctx as usize;
        let mut runner = Runner::new(&self.gpu, &model, ctx, ctx).map_err(js_err)?;
        self.stop.set(false);
        let mut progress = JsProgress { callback: &on_progress, stop: self.stop.clone() };
        let chunks = (max_chunks > 0).then_some(max_chunks as usize);
        let convention = if all_tokens { Convention::AllTokens } else { Convention::LlamaCpp };
        let p = perplexity(&mut runner, &tokens, ctx, chunks, bos, convention, &mut progress)
            .await
            .map_err(js_err)?;
        to_js(&p)
    }

    /// Ask a running generation or perplexity to stop after the current token or chunk.
    pub fn stop(&self) {
        self.stop.set(true);
    }

    /// Free the loaded model's GPU memory.
    pub fn close(&self) {
        self.export.replace(None);
        self.compressed.replace(None);
        self.model.replace(None);
    }
}
