//! Structured width pruning: remove whole units from every block alike — attention heads (a key/value
//! group with its query heads), MLP neurons, or hidden channels of the residual stream — and leave a
//! physically narrower model (`narrow`). Units are ranked by one of three importances:
//! "activation" (Minitron) — the unit's activation, mean |x| over each calibration sequence, then the L2
//! norm over the sequences (and over a unit's channels); "flap" (FLAP) — the fluctuation of each input
//! channel of the layer that reads the unit, its variance over the calibration tokens × ‖W_col‖²; or
//! "magnitude" — the L2 norm of the unit's weights (no data).
//!
//! The counts are uniform, so the model's metadata stays one number per hyperparameter: whole KV groups
//! (the nearest count to `ratio`), and for neurons and hidden channels the kept width rounded to the
//! nearest multiple of 32, so 32-wide quantisation groups and ggml blocks still fit.
//!
//! FLAP's bias compensation: the removed channels' mean contribution, Σ_removed W_col·E[x], is folded
//! into a bias of the layer that read them — a new `attn_output.bias` or `ffn_down.bias`, which the
//! forward pass (and llama.cpp) adds. Hidden channels get none: every block's RMSNorm divides by the
//! whole stream, so the removed channels' mean is no fixed offset.
//!
//! The statistics come from one calibration pass on the GPU (`calib`: Σ|x|, Σx, Σx² at each linear's
//! input); the scores are computed on the CPU from them and the weights.

use super::narrow::{narrow, Cut, Widths};
use crate::compress::calib::{Calibrator, Capture, Site, SiteStats};
use crate::compress::Calibration;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::dequant::dequantize_to_vec;
use crate::model::config::{bias_name, Family, ModelConfig, Role};
use crate::model::{LoadedModel, Progress};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a width-pruning step removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A key/value head with the query heads that share it.
    Heads,
    /// An MLP intermediate channel.
    Neurons,
    /// A hidden channel of the residual stream.
    Embedding,
}

impl Unit {
    pub fn of_method(method: &str) -> Option<Unit> {
        match method {
            "prune_heads" => Some(Unit::Heads),
            "prune_neurons" => Some(Unit::Neurons),
            "prune_embedding" => Some(Unit::Embedding),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Heads => "KV group",
            Unit::Neurons => "neuron",
            Unit::Embedding => "hidden channel",
        }
    }
}

/// How a unit's importance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    Activation,
    Flap,
    Magnitude,
}

impl Importance {
    pub fn parse(name: &str) -> Result<Importance> {
        match name {
            "activation" => Ok(Importance::Activation),
            "flap" => Ok(Importance::Flap),
            "magnitude" => Ok(Importance::Magnitude),
            _ => Err(Error::Invalid(format!(
                "importance must be \"activation\", \"flap\" or \"magnitude\", not \"{name}\""
            ))),
        }
    }
}

/// Per-channel statistics of one linear layer's input over the calibration text.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    tokens: f64,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    /// Σ over sequences of (mean over the sequence of |x|)².
    seq_mean_abs_sq: Vec<f64>,
}

impl Channels {
    /// Add the statistics of one whole sequence.
    pub fn add_sequence(&mut self, s: &SiteStats) {
        if self.sum.is_empty() {
            *self =
                Channels { tokens: 0.0, sum: vec![0.0; s.k], sum_sq: vec![0.0; s.k], ..Default::default() };
            self.seq_mean_abs_sq = vec![0.0; s.k];
        }
        self.tokens += s.tokens as f64;
        for c in 0..s.k {
            self.sum[c] += s.sum[c] as f64;
            self.sum_sq[c] += s.sum_sq[c] as f64;
            self.seq_mean_abs_sq[c] += (s.mean_abs[c] as f64).powi(2);
        }
    }

    /// Minitron's activation: mean |x| over each sequence, then the L2 norm over the sequences.
    pub fn activation(&self, c: usize) -> f64 {
        self.seq_mean_abs_sq[c].sqrt()
    }

    pub fn mean(&self, c: usize) -> f64 {
        self.sum[c] / self.tokens.max(1.0)
    }

    /// FLAP's fluctuation of the channel: its variance over the calibration tokens.
    pub fn variance(&self, c: usize) -> f64 {
        (self.sum_sq[c] / self.tokens.max(1.0) - self.mean(c).powi(2)).max(0.0)
    }
}

/// Every block's input statistics, by site, over the calibration text: one pass of the model, each
/// sequence through its own calibrator so that each sequence's mean |x| is seen.
pub async fn channel_stats(
    gpu: &Gpu,
    model: &LoadedModel,
    calibration: Calibration<'_>,
    progress: &mut impl Progress,
) -> Result<Vec<BTreeMap<Site, Channels>>> {
    let n_layers = ModelConfig::from_header(&model.header)?.n_layers;
    let mut blocks = vec![BTreeMap::<Site, Channels>::new(); n_layers];
    let sequences: Vec<&[u32]> =
        calibration.tokens.chunks(calibration.seq_len.max(2)).filter(|s| s.len() >= 2).collect();
    for (i, seq) in sequences.iter().enumerate() {
        let mut cal = Calibrator::new(gpu, model, seq, seq.len()).await?;
        let widths = cal.site_widths()?;
        for (l, block) in blocks.iter_mut().enumerate() {
            progress.report(
                "width importance",
                (i * n_layers + l) as u64,
                (sequences.len() * n_layers) as u64,
            );
            let capture = Capture::new(gpu, &widths, false)?;
            cal.run_block(gpu, model, l, Some(&capture), true, progress).await?;
            for (site, s) in capture.read(gpu, cal.tokens).await? {
                block.entry(site).or_default().add_sequence(&s);
            }
        }
    }
    Ok(blocks)
}

/// Σ_r w[r, c]² for each column c of a (rows, cols) matrix.
pub fn col_sq_norms(w: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0f64; cols];
    for row in w.chunks_exact(cols).take(rows) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o += (x as f64).powi(2);
        }
    }
    out
}

/// Σ_c w[r, c]² for each row r of a (rows, cols) matrix.
pub fn row_sq_norms(w: &[f32], cols: usize) -> Vec<f64> {
    w.chunks_exact(cols).map(|row| row.iter().map(|&x| (x as f64).powi(2)).sum()).collect()
}

fn stats_of(importance: Importance, stats: Option<&Channels>) -> Result<&Channels> {
    stats.ok_or_else(|| Error::Invalid(format!("{importance:?} importance needs calibration statistics")))
}

/// Each MLP neuron's importance in one block: gate, up (f, d), down (d, f); `down_in`, the statistics
/// of down's input (the neurons' activations).
pub fn neuron_scores(
    importance: Importance,
    (gate, up, down): (&[f32], &[f32], &[f32]),
    d: usize,
    f: usize,
    down_in: Option<&Channels>,
) -> Result<Vec<f64>> {
    Ok(match importance {
        Importance::Activation => {
            let s = stats_of(importance, down_in)?;
            (0..f).map(|n| s.activation(n)).collect()
        }
        Importance::Flap => {
            let s = stats_of(importance, down_in)?;
            col_sq_norms(down, d, f).iter().enumerate().map(|(n, w)| s.variance(n) * w).collect()
        }
        Importance::Magnitude => {
            let (g, u, dn) = (row_sq_norms(gate, d), row_sq_norms(up, d), col_sq_norms(down, d, f));
            (0..f).map(|n| (g[n] + u[n] + dn[n]).sqrt()).collect()
        }
    })
}

/// Each KV group's importance in one block: q (heads·hd, d), k and v (kv_heads·hd, d), attn_out
/// (d, heads·hd); `out_in`, the statistics of the output projection's input (the heads' outputs).
/// Query head h reads KV head h / (heads / kv_heads), as the attention kernel groups them.
pub fn group_scores(
    importance: Importance,
    cfg: &ModelConfig,
    (q, k, v, attn_out): (&[f32], &[f32], &[f32], &[f32]),
    out_in: Option<&Channels>,
) -> Result<Vec<f64>> {
    let (d, hd, kv) = (cfg.d_model, cfg.head_dim, cfg.n_kv_heads);
    let per_group = hd * cfg.n_heads / kv;
    let q_dim = cfg.n_heads * hd;
    // Output-projection input channel c belongs to group c / per_group.
    let mut scores = vec![0f64; kv];
    match importance {
        Importance::Activation => {
            let s = stats_of(importance, out_in)?;
            (0..q_dim).for_each(|c| scores[c / per_group] += s.activation(c).powi(2));
            scores.iter_mut().for_each(|x| *x = x.sqrt());
        }
        Importance::Flap => {
            let s = stats_of(importance, out_in)?;
            let w = col_sq_norms(attn_out, d, q_dim);
            (0..q_dim).for_each(|c| scores[c / per_group] += s.variance(c) * w[c]);
        }
        Importance::Magnitude => {
            let cols = col_sq_norms(attn_out, d, q_dim);
            let q_rows = row_sq_norms(q, d);
            (0..q_dim).for_each(|c| scores[c / per_group] += cols[c] + q_rows[c]);
            for m in [k, v] {
                row_sq_norms(m, d).iter().enumerate().for_each(|(r, x)| scores[r / hd] += x);
            }
            scores.iter_mut().for_each(|x| *x = x.sqrt());
        }
    }
    Ok(scores)
}

/// One block's share of each hidden channel's importance (summed over blocks, plus the embedding's and
/// output head's columns for magnitude; then the square root for activation and magnitude, L2 norms).
/// `readers`: q, k, v, gate, up (each (·, d)); `writers`: attn_out, down (each (d, ·)); `attn_in` and
/// `ffn_in`, the statistics of the two norms' outputs.
pub fn hidden_block_scores(
    importance: Importance,
    d: usize,
    readers: [&[f32]; 5],
    writers: [&[f32]; 2],
    (attn_in, ffn_in): (Option<&Channels>, Option<&Channels>),
) -> Result<Vec<f64>> {
    let mut scores = vec![0f64; d];
    let col_norms = |m: &[f32]| col_sq_norms(m, m.len() / d, d);
    match importance {
        Importance::Activation => {
            for s in [stats_of(importance, attn_in)?, stats_of(importance, ffn_in)?] {
                (0..d).for_each(|j| scores[j] += s.activation(j).powi(2));
            }
        }
        Importance::Flap => {
            // q, k, v read the attention norm's output; gate and up the MLP norm's.
            for (i, m) in readers.iter().enumerate() {
                let s = stats_of(importance, if i < 3 { attn_in } else { ffn_in })?;
                col_norms(m).iter().enumerate().for_each(|(j, w)| scores[j] += s.variance(j) * w);
            }
        }
        Importance::Magnitude => {
            for m in readers {
                col_norms(m).iter().enumerate().for_each(|(j, w)| scores[j] += w);
            }
            for m in writers {
                row_sq_norms(m, m.len() / d).iter().enumerate().for_each(|(j, w)| scores[j] += w);
            }
        }
    }
    Ok(scores)
}

/// The `keep` units of highest score, in increasing order; of equal scores the lower index stays.
pub fn most_important(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = order[..keep.min(order.len())].to_vec();
    kept.sort();
    kept
}

/// How many of `total` units a step removing the share `ratio` keeps: whole KV groups (the nearest
/// count), or a width rounded to the nearest multiple of 32.
pub fn kept_count(unit: Unit, ratio: f64, total: usize) -> Result<usize> {
    let kept = match unit {
        Unit::Heads => total - (ratio * total as f64).round() as usize,
        Unit::Neurons | Unit::Embedding => ((total as f64 * (1.0 - ratio)) / 32.0).round() as usize * 32,
    };
    if kept == 0 || kept >= total {
        let step = match unit {
            Unit::Heads => format!("whole KV groups of {total}"),
            _ => format!("multiples of 32 of {total}"),
        };
        return Err(Error::Invalid(format!(
            "ratio {ratio} would keep {kept} of the {total} {}s (counts are {step}); choose a ratio that \
             removes some but not all",
            unit.name()
        )));
    }
    Ok(kept)
}

/// Indices as compact ranges: "0-3,7,9-12".
pub fn ranges(indices: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        out.push(match j > i {
            true => format!("{}-{}", indices[i], indices[j]),
            false => indices[i].to_string(),
        });
        i = j + 1;
    }
    out.join(",")
}

/// The units a width-pruning step removed from one block (or, for hidden channels, from all).
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub unit: &'static str,
    /// None: the same in every block.
    pub layer: Option<usize>,
    /// Of how many.
    pub of: usize,
    /// Compact ranges of the removed indices (`ranges`).
    pub indices: String,
}

/// What a width-pruning step made: the narrower model, what it removed, and notes for the report.
pub struct Narrowed {
    pub model: LoadedModel,
    pub removed: Vec<Removed>,
    pub notes: Vec<String>,
}

/// The complement of sorted `kept` in 0..total.
fn removed_of(kept: &[usize], total: usize) -> Vec<usize> {
    (0..total).filter(|i| kept.binary_search(i).is_err()).collect()
}

/// Prune `unit`s from `model`, the share `ratio` from every block, ranked by `importance`
/// (`calibration` is needed for activation and flap).
pub async fn prune_width(
    gpu: &Gpu,
    model: &LoadedModel,
    unit: Unit,
    importance: Importance,
    ratio: f64,
    calibration: Option<Calibration<'_>>,
    progress: &mut impl Progress,
) -> Result<Narrowed> {
    let cfg = ModelConfig::from_header(&model.header)?;
    if cfg.family != Family::Llama {
        return Err(Error::Invalid(format!(
            "width pruning works on the Llama family (separate q, k, v and SwiGLU), not {:?}",
            cfg.family
        )));
    }
    let total = match unit {
        Unit::Heads => cfg.n_kv_heads,
        Unit::Neurons => cfg.d_ffn,
        Unit::Embedding => cfg.d_model,
    };
    let keep = kept_count(unit, ratio, total)?;
    let stats = match (importance, calibration) {
        (Importance::Magnitude, _) => None,
        (_, Some(c)) => Some(channel_stats(gpu, model, c, progress).await?),
        (_, None) => {
            return Err(Error::Invalid(format!("{importance:?} importance needs calibration text")));
        }
    };
    let site = |l: usize, s: Site| stats.as_ref().and_then(|b| b[l].get(&s));
    let values = async |name: &str| dequantize_to_vec(gpu, model.tensor(name)?).await;
    let layer = |l: usize, role| cfg.layer_name(l, role);
    let (d, hd) = (cfg.d_model, cfg.head_dim);
    let mut cut = Cut::default();
    let mut removed = Vec::new();
    let mut widths = Widths::of(&cfg);
    match unit {
        Unit::Heads => {
            let per_group = cfg.n_heads / cfg.n_kv_heads;
            for l in 0..cfg.n_layers {
                progress.report("prune heads", l as u64, cfg.n_layers as u64);
                let o = values(&layer(l, Role::AttnOut)).await?;
                let (q, k, v) = match importance {
                    Importance::Magnitude => (
                        values(&layer(l, Role::Q)).await?,
                        values(&layer(l, Role::K)).await?,
                        values(&layer(l, Role::V)).await?,
                    ),
                    _ => Default::default(),
                };
                let out_in = site(l, Site::AttnOutIn);
                let scores = group_scores(importance, &cfg, (&q, &k, &v, &o), out_in)?;
                let groups = most_important(&scores, keep);
                let q_rows: Vec<usize> =
                    groups.iter().flat_map(|g| g * per_group * hd..(g + 1) * per_group * hd).collect();
                let kv_rows: Vec<usize> = groups.iter().flat_map(|g| g * hd..(g + 1) * hd).collect();
                cut.rows(&layer(l, Role::Q), &q_rows);
                cut.rows(&layer(l, Role::K), &kv_rows);
                cut.rows(&layer(l, Role::V), &kv_rows);
                for (role, rows) in [(Role::Q, &q_rows), (Role::K, &kv_rows), (Role::V, &kv_rows)] {
                    cut.entries(&bias_name(&layer(l, role)), rows);
                }
                cut.cols(&layer(l, Role::AttnOut), &q_rows);
                if importance == Importance::Flap {
                    let dropped = removed_of(&q_rows, cfg.n_heads * hd);
                    compensate(gpu, model, &mut cut, &layer(l, Role::AttnOut), &o, &dropped, out_in).await?;
                }
                removed.push(Removed {
                    unit: unit.name(),
                    layer: Some(l),
                    of: total,
                    indices: ranges(&removed_of(&groups, total)),
                });
            }
            widths.n_kv_heads = keep;
            widths.n_heads = keep * per_group;
        }
        Unit::Neurons => {
            let f = cfg.d_ffn;
            for l in 0..cfg.n_layers {
                progress.report("prune neurons", l as u64, cfg.n_layers as u64);
                let down = values(&layer(l, Role::Down)).await?;
                let (gate, up) = match importance {
                    Importance::Magnitude => {
                        (values(&layer(l, Role::Gate)).await?, values(&layer(l, Role::Up)).await?)
                    }
                    _ => Default::default(),
                };
                let down_in = site(l, Site::DownIn);
                let scores = neuron_scores(importance, (&gate, &up, &down), d, f, down_in)?;
                let kept = most_important(&scores, keep);
                cut.rows(&layer(l, Role::Gate), &kept);
                cut.rows(&layer(l, Role::Up), &kept);
                cut.cols(&layer(l, Role::Down), &kept);
                let dropped = removed_of(&kept, f);
                if importance == Importance::Flap {
                    compensate(gpu, model, &mut cut, &layer(l, Role::Down), &down, &dropped, down_in).await?;
                }
                removed.push(Removed { unit: unit.name(), layer: Some(l), of: f, indices: ranges(&dropped) });
            }
            widths.d_ffn = keep;
        }
        Unit::Embedding => {
            let mut scores = vec![0f64; d];
            for l in 0..cfg.n_layers {
                progress.report("prune hidden channels", l as u64, cfg.n_layers as u64);
                let readers_needed = importance != Importance::Activation;
                let mut readers: [Vec<f32>; 5] = Default::default();
                let mut writers: [Vec<f32>; 2] = Default::default();
                if readers_needed {
                    for (m, role) in readers.iter_mut().zip([Role::Q, Role::K, Role::V, Role::Gate, Role::Up])
                    {
                        *m = values(&layer(l, role)).await?;
                    }
                }
                if importance == Importance::Magnitude {
                    for (m, role) in writers.iter_mut().zip([Role::AttnOut, Role::Down]) {
                        *m = values(&layer(l, role)).await?;
                    }
                }
                let block = hidden_block_scores(
                    importance,
                    d,
                    readers.each_ref().map(Vec::as_slice),
                    writers.each_ref().map(Vec::as_slice),
                    (site(l, Site::AttnIn), site(l, Site::FfnIn)),
                )?;
                scores.iter_mut().zip(block).for_each(|(s, b)| *s += b);
            }
            let output = cfg.output_name();
            let has_output = model.header.tensors.iter().any(|t| t.name == output);
            if importance == Importance::Magnitude {
                let outside = [Some(cfg.embedding_name()), has_output.then_some(output)];
                for name in outside.into_iter().flatten() {
                    let m = values(name).await?;
                    let norms = col_sq_norms(&m, m.len() / d, d);
                    scores.iter_mut().zip(norms).for_each(|(s, w)| *s += w);
                }
            }
            if importance != Importance::Flap {
                scores.iter_mut().for_each(|s| *s = s.sqrt());
            }
            let kept = most_important(&scores, keep);
            cut.cols(cfg.embedding_name(), &kept);
            cut.cols(output, &kept);
            cut.entries(cfg.output_norm_name(), &kept);
            for l in 0..cfg.n_layers {
                for role in [Role::AttnNorm, Role::FfnNorm] {
                    cut.entries(&layer(l, role), &kept);
                }
                for role in [Role::Q, Role::K, Role::V, Role::Gate, Role::Up] {
                    cut.cols(&layer(l, role), &kept);
                }
                for role in [Role::AttnOut, Role::Down] {
                    cut.rows(&layer(l, role), &kept);
                    cut.entries(&bias_name(&layer(l, role)), &kept);
                }
            }
            removed.push(Removed {
                unit: unit.name(),
                layer: None,
                of: d,
                indices: ranges(&removed_of(&kept, d)),
            });
            widths.d_model = keep;
        }
    }
    progress.report("narrow", 0, 1);
    let narrowed = narrow(gpu, model, &cut, &widths).await?;
    let mut notes = vec![format!(
        "removed {} of {total} {}s {} ({:?} importance), {:.1}% of them",
        total - keep,
        unit.name(),
        match unit {
            Unit::Embedding => "(the same in every block)",
            _ => "in every block",
        },
        importance,
        100.0 * (total - keep) as f64 / total as f64
    )];
    if unit == Unit::Heads {
        let per_block: Vec<String> =
            removed.iter().map(|r| format!("{}: {}", r.layer.unwrap_or(0), r.indices)).collect();
        notes.push(format!("KV group removed per block: {}", per_block.join("; ")));
    }
    notes.push(narrowed.note);
    if importance == Importance::Flap && unit != Unit::Embedding {
        notes.push("FLAP bias compensation: Σ_removed W_col·E[x] added as the layer's bias".into());
    }
    Ok(Narrowed { model: narrowed.model, removed, notes })
}

/// FLAP's bias compensation for the (rows, cols) matrix `name` losing input channels `dropped`: its
/// bias (new, or the one it has) gains Σ_c∈dropped W[:, c]·E[x_c].
async fn compensate(
    gpu: &Gpu,
    model: &LoadedModel,
    cut: &mut Cut,
    name: &str,
    w: &[f32],
    dropped: &[usize],
    stats: Option<&Channels>,
) -> Result<()> {
    let s = stats_of(Importance::Flap, stats)?;
    let cols = s.sum.len();
    let bias_name = bias_name(name);
    let mut bias = match model.header.tensors.iter().any(|t| t.name == bias_name) {
        true => dequantize_to_vec(gpu, model.tensor(&bias_name)?).await?,
        false => vec![0f32; w.len() / cols],
    };
    for (b, row) in bias.iter_mut().zip(w.chunks_exact(cols)) {
        *b += dropped.iter().map(|&c| row[c] as f64 * s.mean(c)).sum::<f64>() as f32;
    }
    cut.set_vector(&bias_name, name, bias);
    Ok(())
}
