//! Allotment by sensitivity: a step's bits (target-bpw mode) or its sparsity (pruning with allot
//! "sensitivity") differ per block, the blocks whose compression hurts the model most getting the most
//! bits or the fewest zeros.
//!
//! Sensitivity is measured, not guessed: each block alone is compressed with the step's data-free twin
//! (round-to-nearest on the step's grid at the floor bits, or magnitude pruning at the mean sparsity — a
//! calibrated method would need the model calibrated once per block) and the KL divergence of the
//! model's predictions on the calibration text is taken against the original (`eval::sensitivity`).
//!
//! Bits: wider grids are predicted from the block's weight error, KLD_l(b) ≈ KLD_l(floor) · e_l(b) /
//! e_l(floor), first order in the weight noise, where e is the relative squared rounding error at b bits.
//! Then a greedy knapsack: every block starts at the floor, and the block whose next bit buys the largest
//! predicted KLD drop per extra stored byte gets it, as long as the total stays within the budget.
//!
//! Sparsity: the blocks are ranked by their measured KLD and their shares spread linearly over the ranks,
//! from sparsity + spread for the least sensitive to sparsity − spread for the most (OWL's layer-wise
//! spread, λ = 0.08 by default, with measured sensitivity in place of its outlier ratio), then shifted so
//! that the parameter-weighted mean is the step's sparsity.

use super::quant::grid::quantize_rtn;
use super::recipe::Step;
use super::{plan, Calibration};
use crate::error::{Error, Result};
use crate::eval::kld::BaseLogProbs;
use crate::eval::now_ms;
use crate::eval::sensitivity::{scan, LayerSensitivity};
use crate::gpu::Gpu;
use crate::kernels::dequant::dequantize_to_vec;
use crate::model::runner::Runner;
use crate::model::{LoadedModel, Muted, Progress};
use serde::Serialize;
use std::collections::BTreeMap;

/// Chunks of the calibration text the sensitivity of each block is measured on: one forward pass of
/// this many chunks per block.
const SENSITIVITY_CHUNKS: usize = 2;

/// One block's share of the bit budget.
#[derive(Debug, Clone, Serialize)]
pub struct LayerBits {
    pub layer: usize,
    pub bits: u8,
    /// Measured: KLD with only this block quantised at the floor.
    pub kld_floor: f64,
    /// Predicted KLD contribution at the allotted bits.
    pub kld_predicted: f64,
    pub params: u64,
    /// Stored bytes at the allotted bits.
    pub bytes: u64,
}

/// One block's share of the zeros.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSparsity {
    pub layer: usize,
    pub sparsity: f64,
    /// Measured: KLD with only this block pruned at the step's mean sparsity.
    pub kld: f64,
    pub params: u64,
}

/// What was allotted, and the outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Allotted {
    Bits {
        target_bpw: f64,
        /// Bits per weight of the step's tensors as allotted (corrections a method keeps come on top).
        bpw: f64,
        floor: u8,
        max_bits: u8,
        layers: Vec<LayerBits>,
    },
    Sparsity {
        /// The step's sparsity, which the blocks' shares average (weighted by parameters).
        mean: f64,
        spread: f64,
        layers: Vec<LayerSparsity>,
    },
}

/// What an allotment chose for one step.
#[derive(Debug, Clone, Serialize)]
pub struct Allotment {
    /// The recipe step it applies to.
    pub step: usize,
    #[serde(flatten)]
    pub allotted: Allotted,
    pub sensitivity: Vec<LayerSensitivity>,
    pub seconds: f64,
}

impl Allotment {
    /// Block `layer`'s step: `step` at its allotted bits or sparsity (unchanged outside the allotment).
    pub fn step_for(allotments: &[Allotment], index: usize, step: &Step, layer: usize) -> Step {
        let Some(a) = allotments.iter().find(|a| a.step == index) else { return step.clone() };
        match &a.allotted {
            Allotted::Bits { layers, .. } => layers
                .iter()
                .find(|b| b.layer == layer)
                .map_or_else(|| step.clone(), |b| step.with_bits(b.bits)),
            Allotted::Sparsity { layers, .. } => layers
                .iter()
                .find(|b| b.layer == layer)
                .map_or_else(|| step.clone(), |b| step.with_sparsity(b.sparsity)),
        }
    }

    /// In words, for the step's notes: the share per block and what decided it.
    pub fn summary(&self) -> String {
        let most = self.sensitivity.iter().max_by(|a, b| a.kld.total_cmp(&b.kld));
        let most =
            most.map_or(String::new(), |m| format!("; most sensitive: block {} (KLD {:.4})", m.layer, m.kld));
        match &self.allotted {
            Allotted::Bits { target_bpw, bpw, floor, max_bits, layers } => {
                let per_block: Vec<String> =
                    layers.iter().map(|b| format!("{}:{}", b.layer, b.bits)).collect();
                format!(
                    "target {target_bpw} bpw → {bpw:.3} ({floor} to {max_bits} bits by block sensitivity, measured \
                     at {floor} bits in {:.1} s): {}{most}",
                    self.seconds,
                    per_block.join(" ")
                )
            }
            Allotted::Sparsity { mean, spread, layers } => {
                let per_block: Vec<String> =
                    layers.iter().map(|b| format!("{}:{:.3}", b.layer, b.sparsity)).collect();
                format!(
                    "sparsity {mean} ± {spread} by block sensitivity (measured with magnitude pruning at {mean} \
                     in {:.1} s): {}{most}",
                    self.seconds,
                    per_block.join(" ")
                )
            }
        }
    }
}

/// Allot bits or sparsity to the blocks `step` (recipe step `index`) targets.
pub async fn allot(
    gpu: &Gpu,
    original: &LoadedModel,
    index: usize,
    step: &Step,
    calibration: Calibration<'_>,
    progress: &mut impl Progress,
) -> Result<Allotment> {
    let t0 = now_ms();
    let what = format!("recipe step {} ({})", index + 1, step.method);
    let (allotted, sensitivity) = match step.allotted_sparsity() {
        Some((mean, spread)) => {
            let free = step.data_free().with_sparsity(mean);
            let sensitivity = measure(gpu, original, &free, calibration, &what, progress).await?;
            let params = block_params(original, step)?;
            (allot_sparsity(mean, spread, &sensitivity, &params), sensitivity)
        }
        None => allot_bits(gpu, original, step, calibration, &what, progress).await?,
    };
    Ok(Allotment { step: index, allotted, sensitivity, seconds: (now_ms() - t0) / 1000.0 })
}

/// KLD on the calibration text with each block alone compressed by the data-free step `free`.
async fn measure(
    gpu: &Gpu,
    original: &LoadedModel,
    free: &Step,
    calibration: Calibration<'_>,
    what: &str,
    progress: &mut impl Progress,
) -> Result<Vec<LayerSensitivity>> {
    // At least two chunks (the second half of each is scored).
    let ctx = calibration.seq_len.min(calibration.tokens.len() / 2);
    let base = {
        let mut runner = Runner::new(gpu, original, ctx, ctx)?;
        BaseLogProbs::compute(
            &mut runner,
            calibration.tokens,
            ctx,
            Some(SENSITIVITY_CHUNKS),
            None,
            &mut Muted(progress),
        )
        .await
        .map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{what}: sensitivity on the calibration text: {m}")),
            other => other,
        })?
    };
    scan(gpu, original, free, &base, progress).await
}

/// Each block's share: spread linearly over the sensitivity ranks around `mean`, then shifted so the
/// parameter-weighted mean is `mean` (blocks of unequal size would otherwise move it).
pub fn allot_sparsity(
    mean: f64,
    spread: f64,
    sensitivity: &[LayerSensitivity],
    params: &BTreeMap<usize, u64>,
) -> Allotted {
    let mut ranked: Vec<&LayerSensitivity> = sensitivity.iter().collect();
    ranked.sort_by(|a, b| a.kld.total_cmp(&b.kld).then(a.layer.cmp(&b.layer)));
    // A lone block has nothing to trade with: it keeps the mean.
    let offset = |rank: usize| match ranked.len() {
        0 | 1 => 0.0,
        n => spread * (1.0 - 2.0 * rank as f64 / (n - 1) as f64),
    };
    let mut layers: Vec<LayerSparsity> = ranked
        .iter()
        .enumerate()
        .map(|(rank, s)| LayerSparsity {
            layer: s.layer,
            sparsity: mean + offset(rank),
            kld: s.kld,
            params: params.get(&s.layer).copied().unwrap_or(0),
        })
        .collect();
    let total: u64 = layers.iter().map(|l| l.params).sum();
    if total > 0 {
        let weighted = layers.iter().map(|l| l.sparsity * l.params as f64).sum::<f64>() / total as f64;
        layers.iter_mut().for_each(|l| l.sparsity = (l.sparsity + mean - weighted).clamp(0.0, 0.99));
    }
    layers.sort_by_key(|l| l.layer);
    Allotted::Sparsity { mean, spread, layers }
}

/// Parameters of `step`'s targets in each block.
fn block_params(original: &LoadedModel, step: &Step) -> Result<BTreeMap<usize, u64>> {
    let mut params = BTreeMap::new();
    for (layer, t) in plan::block_linears(step, &original.header)? {
        let info = &original.header.tensors[t.index];
        *params.entry(layer).or_insert(0) += info.rows() * info.cols();
    }
    Ok(params)
}

/// Target-bpw mode: the bits of each block, within the step's budget.
async fn allot_bits(
    gpu: &Gpu,
    original: &LoadedModel,
    step: &Step,
    calibration: Calibration<'_>,
    what: &str,
    progress: &mut impl Progress,
) -> Result<(Allotted, Vec<LayerSensitivity>)> {
    let (target_bpw, max_bits) = step.allotted().expect("called for target-bpw steps");
    let floor = step.usize("bits") as u8;
    let what = format!("{what} target_bpw {target_bpw}");

    let costs = block_costs(gpu, original, step, floor, max_bits).await?;
    let block_params = block_params(original, step)?;
    let params: u64 = block_params.values().sum();
    let budget = target_bpw * params as f64 / 8.0;
    let floor_bytes: u64 = costs.values().map(|c| c.bytes[0]).sum();
    if floor_bytes as f64 > budget {
        return Err(Error::Invalid(format!(
            "{what}: {floor} bits already store {:.3} bits per weight; lower \"bits\" or raise the target",
            floor_bytes as f64 * 8.0 / params as f64
        )));
    }
    let sensitivity =
        measure(gpu, original, &step.data_free().with_bits(floor), calibration, &what, progress).await?;

    let mut bits: BTreeMap<usize, usize> = costs.keys().map(|&l| (l, 0)).collect();
    let kld_floor: BTreeMap<usize, f64> = sensitivity.iter().map(|s| (s.layer, s.kld)).collect();
    let predicted = |l: usize, w: usize| {
        let c = &costs[&l];
        match c.rel_err[0] > 0.0 {
            true => kld_floor[&l] * c.rel_err[w] / c.rel_err[0],
            false => 0.0,
        }
    };
    let mut spent = floor_bytes;
    loop {
        let best = bits
            .iter()
            .filter(|(l, &w)| w + 1 < costs[l].bytes.len())
            .filter(|(l, &w)| (spent - costs[l].bytes[w] + costs[l].bytes[w + 1]) as f64 <= budget)
            .map(|(&l, &w)| {
                let gain = predicted(l, w) - predicted(l, w + 1);
                (l, gain / (costs[&l].bytes[w + 1] - costs[&l].bytes[w]).max(1) as f64)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((l, _)) = best else { break };
        let w = bits[&l];
        spent = spent - costs[&l].bytes[w] + costs[&l].bytes[w + 1];
        *bits.get_mut(&l).expect("present") += 1;
    }

    let layers: Vec<LayerBits> = bits
        .iter()
        .map(|(&l, &w)| LayerBits {
            layer: l,
            bits: floor + w as u8,
            kld_floor: kld_floor[&l],
            kld_predicted: predicted(l, w),
            params: block_params[&l],
            bytes: costs[&l].bytes[w],
        })
        .collect();
    let bpw = spent as f64 * 8.0 / params as f64;
    Ok((Allotted::Bits { target_bpw, bpw, floor, max_bits, layers }, sensitivity))
}

/// Per block, at each width from the floor up: stored bytes and relative error.
struct BlockCosts {
    bytes: Vec<u64>,
    rel_err: Vec<f64>,
}

/// Round each block's targets of `step` to every width from `floor` to `max_bits` on the CPU.
async fn block_costs(
    gpu: &Gpu,
    original: &LoadedModel,
    step: &Step,
    floor: u8,
    max_bits: u8,
) -> Result<BTreeMap<usize, BlockCosts>> {
    let mut costs: BTreeMap<usize, BlockCosts> = BTreeMap::new();
    let widths = (max_bits - floor + 1) as usize;
    let mut norms: BTreeMap<usize, f64> = BTreeMap::new();
    for (layer, t) in plan::block_linears(step, &original.header)? {
        let info = &original.header.tensors[t.index];
        let (rows, cols) = (info.rows() as usize, info.cols() as usize);
        let w = dequantize_to_vec(gpu, &original.tensors[t.index]).await?;
        let c = costs
            .entry(layer)
            .or_insert_with(|| BlockCosts { bytes: vec![0; widths], rel_err: vec![0.0; widths] });
        *norms.entry(layer).or_default() += w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        for k in 0..widths {
            let q = quantize_rtn(&step.with_bits(floor + k as u8).format()?, &w, rows, cols)?;
            c.bytes[k] += q.bytes.len() as u64;
            c.rel_err[k] += w.iter().zip(&q.values).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>();
        }
    }
    for (l, c) in costs.iter_mut() {
        let norm = norms[l].max(f64::MIN_POSITIVE);
        c.rel_err.iter_mut().for_each(|e| *e /= norm);
    }
    Ok(costs)
}
