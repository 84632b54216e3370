//! Activation outliers: the per-channel max|x| and mean|x| at the inputs of every block's linear layers
//! for one text. A few channels carry activations 10–100× larger than the rest, in the same channels
//! layer after layer; these are what LLM.int8(), SmoothQuant and AWQ are built around. The statistics
//! come from the calibration machinery (`compress::calib`), which runs the text one block at a time.

use crate::compress::calib::{Calibrator, Capture, Site};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::{LoadedModel, Progress};
use serde::Serialize;

/// What one input site of one block saw.
#[derive(Debug, Clone, Serialize)]
pub struct SiteActivations {
    /// attn_in (q, k, v read it), attn_out_in (the output projection), ffn_in (gate, up), down_in.
    pub site: &'static str,
    pub max_abs: Vec<f32>,
    pub mean_abs: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerActivations {
    pub layer: usize,
    pub sites: Vec<SiteActivations>,
}

/// The name the page and tests use for a site.
pub fn site_name(site: Site) -> &'static str {
    match site {
        Site::AttnIn => "attn_in",
        Site::AttnOutIn => "attn_out_in",
        Site::FfnIn => "ffn_in",
        Site::DownIn => "down_in",
    }
}

/// Run `tokens` (cut into sequences of `seq_len`, each from an empty cache) through `model` and return,
/// per block and input site, the per-channel max|x| and mean|x|; progress('activations', block, blocks).
pub async fn activation_stats(
    gpu: &Gpu,
    model: &LoadedModel,
    tokens: &[u32],
    seq_len: usize,
    progress: &mut impl Progress,
) -> Result<Vec<LayerActivations>> {
    if tokens.len() < 2 {
        return Err(Error::Invalid(format!(
            "activation statistics need a text of at least 2 tokens; this one has {}",
            tokens.len()
        )));
    }
    let n_layers = ModelConfig::from_header(&model.header)?.n_layers;
    let mut calibrator = Calibrator::new(gpu, model, tokens, seq_len.max(2)).await?;
    let widths = calibrator.site_widths()?;
    let mut out = Vec::with_capacity(n_layers);
    for layer in 0..n_layers {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        progress.report("activations", layer as u64, n_layers as u64);
        let capture = Capture::new(gpu, &widths, false)?;
        calibrator.run_block(gpu, model, layer, Some(&capture), true, progress).await?;
        let sites = capture
            .read(gpu, calibrator.tokens)
            .await?
            .into_iter()
            .map(|(site, s)| SiteActivations {
                site: site_name(site),
                max_abs: s.max_abs,
                mean_abs: s.mean_abs,
            })
            .collect();
        out.push(LayerActivations { layer, sites });
    }
    progress.report("activations", n_layers as u64, n_layers as u64);
    Ok(out)
}
