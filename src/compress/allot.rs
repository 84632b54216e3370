//! Target-bpw mode: a step's `bits` is a floor, and the blocks whose compression hurts the model most
//! get more bits, up to `max_bits`, until the step's tensors average `target_bpw` bits per weight.
//!
//! Sensitivity is measured, not guessed: each block alone is quantised at the floor with the step's
//! grid (round-to-nearest for a calibrated method, which would otherwise need the model calibrated once
//! per block) and the KL divergence of the model's predictions on the calibration text is taken against
//! the original (`eval::sensitivity`). Wider grids are predicted from the block's weight error:
//! KLD_l(b) ≈ KLD_l(floor) · e_l(b) / e_l(floor), first order in the weight noise, where e is the
//! relative squared rounding error at b bits. Then a greedy knapsack: every block starts at the floor,
//! and the block whose next bit buys the largest predicted KLD drop per extra stored byte gets it, as
//! long as the total stays within the budget.

use super::quant::grid::quantize_rtn;
use super::recipe::{Recipe, Step};
use super::{plan, Calibration};
use crate::error::{Error, Result};
use crate::eval::kld::BaseLogProbs;
use crate::eval::now_ms;
use crate::eval::sensitivity::{scan, LayerSensitivity};
use crate::gpu::Gpu;
use crate::kernels::dequant::dequantize_to_vec;
use crate::model::config::ModelConfig;
use crate::model::runner::Runner;
use crate::model::{LoadedModel, Muted, Progress};
use serde::Serialize;
use std::collections::BTreeMap;

/// Chunks of the calibration text the sensitivity of each block is measured on: one forward pass of
/// this many chunks per block.
const SENSITIVITY_CHUNKS: usize = 2;

/// One block's share of the budget.
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

/// What target-bpw mode chose for one step.
#[derive(Debug, Clone, Serialize)]
pub struct Allotment {
    /// The recipe step it applies to.
    pub step: usize,
    pub target_bpw: f64,
    /// Bits per weight of the step's tensors as allotted (corrections a method keeps come on top).
    pub bpw: f64,
    pub floor: u8,
    pub max_bits: u8,
    pub layers: Vec<LayerBits>,
    pub sensitivity: Vec<LayerSensitivity>,
    pub seconds: f64,
}

impl Allotment {
    /// Block `layer`'s step: `step` at its allotted bits (unchanged outside the allotment).
    pub fn step_for(allotments: &[Allotment], index: usize, step: &Step, layer: usize) -> Step {
        let bits = allotments
            .iter()
            .find(|a| a.step == index)
            .and_then(|a| a.layers.iter().find(|b| b.layer == layer))
            .map(|b| b.bits);
        match bits {
            Some(b) => step.with_bits(b),
            None => step.clone(),
        }
    }
}

impl Allotment {
    /// In words, for the step's notes: the bits per block and what decided them.
    pub fn summary(&self) -> String {
        let per_block: Vec<String> = self.layers.iter().map(|b| format!("{}:{}", b.layer, b.bits)).collect();
        let most = self.sensitivity.iter().max_by(|a, b| a.kld.total_cmp(&b.kld));
        format!(
            "target {} bpw → {:.3} ({} to {} bits by block sensitivity, measured at {} bits in {:.1} s): {}{}",
            self.target_bpw,
            self.bpw,
            self.floor,
            self.max_bits,
            self.floor,
            self.seconds,
            per_block.join(" "),
            most.map_or(String::new(), |m| format!("; most sensitive: block {} (KLD {:.4})", m.layer, m.kld))
        )
    }
}

/// Per block: its parameters, and at each width from the floor up, stored bytes and relative error.
struct BlockCosts {
    params: u64,
    bytes: Vec<u64>,
    rel_err: Vec<f64>,
}

/// Allot bits to the blocks `step` (recipe step `index`) targets.
pub async fn allot(
    gpu: &Gpu,
    original: &LoadedModel,
    index: usize,
    step: &Step,
    calibration: Calibration<'_>,
    progress: &mut impl Progress,
) -> Result<Allotment> {
    let t0 = now_ms();
    let (target_bpw, max_bits) = step.allotted().expect("called for target-bpw steps");
    let floor = step.usize("bits") as u8;
    let what = format!("recipe step {} ({}) target_bpw {target_bpw}", index + 1, step.method);

    let costs = block_costs(gpu, original, step, floor, max_bits).await?;
    let params: u64 = costs.values().map(|c| c.params).sum();
    let budget = target_bpw * params as f64 / 8.0;
    let floor_bytes: u64 = costs.values().map(|c| c.bytes[0]).sum();
    if floor_bytes as f64 > budget {
        return Err(Error::Invalid(format!(
            "{what}: {floor} bits already store {:.3} bits per weight; lower \"bits\" or raise the target",
            floor_bytes as f64 * 8.0 / params as f64
        )));
    }

    // Measure on the calibration text, in at least two chunks (the second half of each is scored).
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
    let sensitivity = scan(gpu, original, &step.data_free().with_bits(floor), &base, progress).await?;

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
            params: costs[&l].params,
            bytes: costs[&l].bytes[w],
        })
        .collect();
    Ok(Allotment {
        step: index,
        target_bpw,
        bpw: spent as f64 * 8.0 / params as f64,
        floor,
        max_bits,
        layers,
        sensitivity,
        seconds: (now_ms() - t0) / 1000.0,
    })
}

/// Round each block's targets of `step` to every width from `floor` to `max_bits` on the CPU.
async fn block_costs(
    gpu: &Gpu,
    original: &LoadedModel,
    step: &Step,
    floor: u8,
    max_bits: u8,
) -> Result<BTreeMap<usize, BlockCosts>> {
    let cfg = ModelConfig::from_header(&original.header)?;
    let whole = Recipe { steps: vec![step.clone()], sequential: false };
    let mut costs: BTreeMap<usize, BlockCosts> = BTreeMap::new();
    let widths = (max_bits - floor + 1) as usize;
    let mut norms: BTreeMap<usize, f64> = BTreeMap::new();
    for t in plan::plan(&whole, &cfg, &original.header)?.remove(0) {
        let Some((layer, _)) = t.linear else { continue };
        let info = &original.header.tensors[t.index];
        let (rows, cols) = (info.rows() as usize, info.cols() as usize);
        let w = dequantize_to_vec(gpu, &original.tensors[t.index]).await?;
        let c = costs.entry(layer).or_insert_with(|| BlockCosts {
            params: 0,
            bytes: vec![0; widths],
            rel_err: vec![0.0; widths],
        });
        c.params += (rows * cols) as u64;
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
