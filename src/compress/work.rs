//! The model being compressed: a copy of the loaded model that shares every untouched tensor's GPU
//! buffer, the f32 values of the tensors steps have read or rewritten, and the report so far.

use super::lowrank::product;
use super::quant::grid::Quantized;
use super::recipe::Recipe;
use super::report::{CompressReport, StepReport, TensorReport};
use super::Compressed;
use crate::error::{Error, Result};
use crate::formats::DType;
use crate::gpu::Gpu;
use crate::kernels::dequant::dequantize_to_vec;
use crate::kernels::sparse::SparseRows;
use crate::model::config::{ModelConfig, Role};
use crate::model::linear::{LinearExtras, LowRank};
use crate::model::LoadedModel;
use std::collections::HashMap;

pub(super) struct Work<'a> {
    pub gpu: &'a Gpu,
    pub cfg: ModelConfig,
    pub model: LoadedModel,
    /// The model the recipe was given, for its size.
    original: &'a LoadedModel,
    /// Each tensor's stored type before the first step that rewrote it.
    dtypes_before: Vec<DType>,
    /// Blocks removed by drop_layers, in the original's numbering.
    pub blocks_dropped: Vec<usize>,
    recipe: Recipe,
    /// Current f32 values of tensors a step has read.
    values: HashMap<usize, Vec<f32>>,
    /// Rewritten tensors not yet on the GPU: stored type and bytes.
    pending: Vec<(usize, DType, Vec<u8>)>,
    pub steps: Vec<StepReport>,
    tensors: Vec<TensorReport>,
}

/// What one method produced for one matrix.
pub(super) struct Rewrite {
    /// The stored matrix and the values it decodes to (for a low-rank one: no bytes, values A·B).
    pub quantized: Quantized,
    /// (row, col, value − decoded) kept in 16 bit.
    pub corrections: Vec<(u32, u32, f32)>,
    pub act_bits: Option<u32>,
    pub act_threshold: Option<f32>,
    /// The matrix stored as A (rows, rank) and B (rank, cols) instead.
    pub factors: Option<(Quantized, Quantized)>,
}

impl Rewrite {
    pub fn plain(quantized: Quantized) -> Rewrite {
        Rewrite { quantized, corrections: Vec::new(), act_bits: None, act_threshold: None, factors: None }
    }

    /// A (rows, cols) matrix stored as the factors `a` (rows, rank) and `b` (rank, cols): its own tensor
    /// keeps no bytes, and it computes with the product of the stored factors.
    pub fn low_rank(a: Quantized, b: Quantized, rows: usize, cols: usize) -> Rewrite {
        let rank = b.values.len() / cols;
        let values = product(&a.values, &b.values, rows, rank, cols);
        let quantized = Quantized { dtype: a.dtype, bytes: Vec::new(), values };
        Rewrite { factors: Some((a, b)), ..Rewrite::plain(quantized) }
    }
}

impl<'a> Work<'a> {
    /// Work on `first` (`original`, or the model structural steps made of it).
    pub fn new(gpu: &'a Gpu, original: &'a LoadedModel, first: &LoadedModel, recipe: &Recipe) -> Work<'a> {
        let model = LoadedModel {
            header: first.header.clone(),
            tensors: first.tensors.clone(),
            timings: first.timings,
            extras: first.extras.clone(),
        };
        let steps = recipe
            .steps
            .iter()
            .map(|s| StepReport {
                method: s.method.clone(),
                tensors: 0,
                seconds: 0.0,
                notes: Vec::new(),
                sparsity: 0.0,
                zeros_lost: 0,
                removed: Vec::new(),
                params: 0,
                zeros: 0,
                factor_params: 0,
            })
            .collect();
        Work {
            gpu,
            cfg: ModelConfig::from_header(&first.header).expect("checked by the caller"),
            dtypes_before: first.header.tensors.iter().map(|t| t.dtype).collect(),
            blocks_dropped: Vec::new(),
            model,
            original,
            recipe: recipe.clone(),
            values: HashMap::new(),
            pending: Vec::new(),
            steps,
            tensors: Vec::new(),
        }
    }

    /// The index of block `l`'s tensor of `role`, if the model has it.
    pub fn index_of(&self, l: usize, role: Role) -> Option<usize> {
        let name = self.cfg.layer_name(l, role);
        self.model.header.tensors.iter().position(|t| t.name == name)
    }

    pub fn name(&self, i: usize) -> &str {
        &self.model.header.tensors[i].name
    }

    /// The stored type of tensor `i` before any step rewrote it.
    pub fn original_dtype(&self, i: usize) -> DType {
        self.dtypes_before[i]
    }

    /// (rows, cols) of tensor `i`.
    pub fn shape(&self, i: usize) -> (usize, usize) {
        let t = &self.model.header.tensors[i];
        (t.rows() as usize, t.cols() as usize)
    }

    /// Refuse to rewrite tensor `i` with `method` when an earlier step stored it as low-rank factors:
    /// only another factorisation reads it then (quantising the factors is not supported).
    pub fn check_dense(&self, i: usize, method: &str) -> Result<()> {
        match self.model.extras.get(&i).and_then(|e| e.low_rank.as_ref()) {
            Some(f) if method != "svd" && method != "asvd" => Err(Error::Invalid(format!(
                "{method} on {}: an earlier step stored it as two rank-{} factors, which {method} cannot \
                 rewrite (quantising or rescaling low-rank factors is not supported); leave it out of \
                 {method}'s target or factorise after",
                self.name(i),
                f.rank()
            ))),
            _ => Ok(()),
        }
    }

    /// The current values of tensor `i` as f32 (decoded from the GPU the first time).
    pub async fn values(&mut self, i: usize) -> Result<Vec<f32>> {
        if let Some(v) = self.values.get(&i) {
            return Ok(v.clone());
        }
        let v = dequantize_to_vec(self.gpu, &self.model.tensors[i]).await?;
        self.values.insert(i, v.clone());
        Ok(v)
    }

    /// Replace tensor `i` by f32 `values` (a norm weight or matrix with scales folded in; a later step
    /// may still quantise it).
    pub fn set_f32(&mut self, i: usize, values: Vec<f32>) {
        self.pending.retain(|p| p.0 != i);
        self.pending.push((i, DType::F32, bytemuck::cast_slice(&values).to_vec()));
        self.values.insert(i, values);
    }

    /// Replace matrix `i` by what a method made of it, and report it against `before` (its values
    /// before the step) and, when calibration measured it, the Hessian of its input.
    pub fn store(
        &mut self,
        step: usize,
        i: usize,
        rewrite: Rewrite,
        before: &[f32],
        hessian: Option<&[f32]>,
        seconds: f64,
    ) -> Result<()> {
        let (rows, cols) = self.shape(i);
        let Rewrite { quantized, corrections, act_bits, act_threshold, factors } = rewrite;
        let sparse = match corrections.is_empty() {
            true => None,
            false => {
                Some(SparseRows::upload(self.gpu, self.name(i), rows as u64, cols as u64, &corrections)?)
            }
        };
        let low_rank = match factors {
            Some((a, b)) => {
                let rank = (b.values.len() / cols) as u64;
                let upload = |part: &str, shape: [u64; 2], f: &Quantized| {
                    self.gpu.upload_tensor(&format!("{}.{part}", self.name(i)), &shape, f.dtype, &f.bytes)
                };
                Some(LowRank {
                    a: upload("lowrank_a", [rows as u64, rank], &a)?,
                    b: upload("lowrank_b", [rank, cols as u64], &b)?,
                })
            }
            None => None,
        };
        let extras = LinearExtras { act_bits, act_threshold, sparse, corrections, low_rank };
        let mut after = quantized.values;
        extras.add_corrections(&mut after, cols);
        let bytes = quantized.bytes.len() as u64 + extras.stored_bytes();
        let params = (rows * cols) as u64;
        let zeros = after.iter().filter(|&&v| v == 0.0).count() as u64;
        let zeros_lost = before.iter().zip(&after).filter(|&(&b, &a)| b == 0.0 && a != 0.0).count() as u64;
        self.tensors.push(TensorReport {
            name: self.name(i).to_string(),
            method: self.steps[step].method.clone(),
            layer: self.layer_of(i),
            dtype_before: self.model.header.tensors[i].dtype.name(),
            dtype_after: quantized.dtype.name(),
            params,
            bytes,
            bpw: bytes as f64 * 8.0 / params as f64,
            rel_mse: rel_mse(before, &after),
            output_err: hessian.map(|h| output_error(before, &after, rows, cols, h)),
            outliers: extras.corrections.len() as u64,
            sparsity: zeros as f64 / params as f64,
            rank: extras.low_rank.as_ref().map(LowRank::rank),
            seconds,
        });
        let report = &mut self.steps[step];
        report.tensors += 1;
        report.seconds += seconds;
        report.params += params;
        report.zeros += zeros;
        report.zeros_lost += zeros_lost;
        report.sparsity = report.zeros as f64 / report.params as f64;
        report.factor_params += extras.low_rank.as_ref().map_or(0, |f| f.rank() * (rows + cols) as u64);
        if extras.act_bits.is_some() || extras.sparse.is_some() || extras.low_rank.is_some() {
            self.model.extras.insert(i, extras);
        } else {
            self.model.extras.remove(&i);
        }
        self.pending.retain(|p| p.0 != i);
        self.pending.push((i, quantized.dtype, quantized.bytes));
        self.values.insert(i, after);
        Ok(())
    }

    fn layer_of(&self, i: usize) -> Option<usize> {
        let name = self.name(i);
        (0..self.cfg.n_layers)
            .find(|&l| super::plan::LINEAR_ROLES.iter().any(|&r| self.cfg.layer_name(l, r) == name))
    }

    /// Put every rewritten tensor on the GPU (the next block's calibration runs on them).
    pub fn upload_pending(&mut self) -> Result<()> {
        for (i, dtype, bytes) in std::mem::take(&mut self.pending) {
            let info = &mut self.model.header.tensors[i];
            info.dtype = dtype;
            info.n_bytes = bytes.len() as u64;
            self.model.tensors[i] = self.gpu.upload_tensor(&info.name, &info.shape, dtype, &bytes)?;
        }
        Ok(())
    }

    pub fn finish(mut self, calib_tokens: u64, calib_seconds: f64, seconds: f64) -> Compressed {
        let size = |m: &LoadedModel| {
            m.header.tensors.iter().map(|t| t.n_bytes).sum::<u64>()
                + m.extras.values().map(LinearExtras::stored_bytes).sum::<u64>()
        };
        let count = |m: &LoadedModel| m.header.tensors.iter().map(|t| t.n_elements()).sum::<u64>();
        let params = count(&self.model);
        // A matrix stored as factors holds rank·(rows + cols) parameters, not rows·cols.
        let factored: Vec<(u64, u64)> = self
            .model
            .extras
            .iter()
            .filter_map(|(&i, e)| {
                let f = e.low_rank.as_ref()?;
                let t = &self.model.header.tensors[i];
                Some((t.n_elements(), f.rank() * (t.rows() + t.cols())))
            })
            .collect();
        let params_stored = params - factored.iter().map(|(dense, kept)| dense - kept).sum::<u64>();
        for step in self.steps.iter_mut().filter(|s| s.factor_params > 0) {
            step.notes.push(format!(
                "{} matrices as two low-rank factors each: {:.3}M parameters → {:.3}M ({:.1}%), factors \
                 stored F16, run as two matmuls",
                step.tensors,
                step.params as f64 / 1e6,
                step.factor_params as f64 / 1e6,
                100.0 * step.factor_params as f64 / step.params as f64
            ));
        }
        let size_bytes = size(&self.model);
        // A tensor two steps rewrote (pruned, then quantised) is stored as the last one left it.
        let last: HashMap<&str, &TensorReport> = self.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let (c_bytes, c_params) = last.values().fold((0, 0), |(b, p), t| (b + t.bytes, p + t.params));
        let zeros = last.values().fold(0.0, |z, t| z + t.sparsity * t.params as f64);
        let report = CompressReport {
            recipe: self.recipe,
            steps: self.steps,
            tensors: self.tensors,
            calib_tokens,
            calib_seconds,
            seconds,
            params,
            params_original: count(self.original),
            params_stored,
            size_bytes,
            size_bytes_original: size(self.original),
            bpw: size_bytes as f64 * 8.0 / params as f64,
            bpw_compressed: c_bytes as f64 * 8.0 / c_params.max(1) as f64,
            allotments: Vec::new(),
            blocks_dropped: self.blocks_dropped,
            sparsity: zeros / c_params.max(1) as f64,
        };
        Compressed { model: self.model, report }
    }
}

fn rel_mse(before: &[f32], after: &[f32]) -> f64 {
    let (mut err, mut norm) = (0f64, 0f64);
    for (&b, &a) in before.iter().zip(after) {
        err += ((a - b) as f64).powi(2);
        norm += (b as f64).powi(2);
    }
    err / norm.max(f64::MIN_POSITIVE)
}

/// Σ_r Δ_r H Δ_rᵀ / Σ_r W_r H W_rᵀ over at most 32 evenly spaced rows (the full sum costs a matmul).
pub(super) fn output_error(before: &[f32], after: &[f32], rows: usize, cols: usize, h: &[f32]) -> f64 {
    let stride = rows.div_ceil(32).max(1);
    let quad = |v: &dyn Fn(usize) -> f64| {
        let mut hv = vec![0f64; cols];
        for (i, hv) in hv.iter_mut().enumerate() {
            *hv = (0..cols).map(|j| h[i * cols + j] as f64 * v(j)).sum();
        }
        (0..cols).map(|i| v(i) * hv[i]).sum::<f64>()
    };
    let (mut err, mut norm) = (0f64, 0f64);
    for r in (0..rows).step_by(stride) {
        let row = r * cols;
        err += quad(&|j| (after[row + j] - before[row + j]) as f64);
        norm += quad(&|j| before[row + j] as f64);
    }
    err / norm.max(f64::MIN_POSITIVE)
}
