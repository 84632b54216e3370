//! A linear layer as the forward pass runs it: out = x·Wᵀ (+ bias) with W as stored, plus what some
//! compression methods add around the matmul — the per-token quantisation of its input (SmoothQuant
//! W8A8, LLM.int8()) and a sparse 16-bit correction (weights SpQR and OWQ keep exact) — or instead of
//! it: two low-rank factors W ≈ A·B (SVD, ASVD), run as two matmuls.

use super::LoadedModel;
use crate::compress::lowrank::product;
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::{
    actquant::quantize_activations, dequant::dequantize_to_vec, matmul::matmul, sparse::add_sparse,
    sparse::SparseRows,
};

/// Run-time parts of a compressed linear layer beyond its stored weight.
#[derive(Default, Clone)]
pub struct LinearExtras {
    /// Quantise the input per token to this many bits first.
    pub act_bits: Option<u32>,
    /// With `act_bits`: input columns where some |x| reaches this stay unquantised (LLM.int8()).
    pub act_threshold: Option<f32>,
    /// Weights kept in 16 bit, added as corrections after the matmul.
    pub sparse: Option<SparseRows>,
    /// The same corrections on the CPU, (row, col, value): for the page's error view and export.
    pub corrections: Vec<(u32, u32, f32)>,
    /// The weight stored as two factors instead (its own tensor then holds no bytes).
    pub low_rank: Option<LowRank>,
}

/// A weight W (out, in) stored as A (out, rank) · B (rank, in) and run as x → (x·Bᵀ)·Aᵀ: rank·(out + in)
/// parameters instead of out·in, and as many multiply-adds per token.
#[derive(Clone)]
pub struct LowRank {
    /// (out, rank)
    pub a: GpuTensor,
    /// (rank, in)
    pub b: GpuTensor,
}

impl LowRank {
    pub fn rank(&self) -> u64 {
        self.b.rows()
    }

    /// A·B decoded, (out, in): the matrix the layer computes with.
    pub async fn product(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let (a, b) = (dequantize_to_vec(gpu, &self.a).await?, dequantize_to_vec(gpu, &self.b).await?);
        Ok(product(&a, &b, self.a.rows() as usize, self.rank() as usize, self.b.cols() as usize))
    }
}

impl LinearExtras {
    /// Bytes stored beyond the weight tensor (for a low-rank layer: both factors, all it stores).
    pub fn stored_bytes(&self) -> u64 {
        self.sparse.as_ref().map_or(0, SparseRows::stored_bytes)
            + self.low_rank.as_ref().map_or(0, |f| f.a.n_bytes + f.b.n_bytes)
    }

    /// Add the kept weights, rounded to f16 as the GPU stores them, to a (rows, `cols`) matrix of the
    /// decoded stored weight: the values the layer computes with.
    pub fn add_corrections(&self, values: &mut [f32], cols: usize) {
        for &(r, c, v) in &self.corrections {
            values[r as usize * cols + c as usize] += half::f16::from_f32(v).to_f32();
        }
    }
}

/// What every linear layer of one forward pass shares.
pub(super) struct Linear<'a> {
    pub gpu: &'a Gpu,
    pub model: &'a LoadedModel,
    /// Room for a quantised copy of any layer's input, or a low-rank layer's (t, rank) middle.
    pub scratch: &'a wgpu::Buffer,
    pub t: u32,
}

impl Linear<'_> {
    /// Record out = x·Wᵀ (+ bias) for the weight at index `w` of the model's tensors.
    pub async fn run(
        &self,
        enc: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        w: usize,
        bias: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let (gpu, weight) = (self.gpu, &self.model.tensors[w]);
        let Some(extras) = self.model.extras.get(&w) else {
            return matmul(gpu, enc, x, weight, bias, out, self.t).await;
        };
        if let Some(f) = &extras.low_rank {
            matmul(gpu, enc, x, &f.b, None, self.scratch, self.t).await?;
            return matmul(gpu, enc, self.scratch, &f.a, bias, out, self.t).await;
        }
        let input = match extras.act_bits {
            Some(bits) => {
                let k = weight.cols() as u32;
                quantize_activations(gpu, enc, x, self.scratch, self.t, k, bits, extras.act_threshold)
                    .await?;
                self.scratch
            }
            None => x,
        };
        matmul(gpu, enc, input, weight, bias, out, self.t).await?;
        match &extras.sparse {
            Some(s) => add_sparse(gpu, enc, input, s, out, self.t).await,
            None => Ok(()),
        }
    }
}
