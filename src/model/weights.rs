//! Finding a family's weights in a loaded model by name, with the checks every family needs: present,
//! of the expected shape, in a format the kernels decode; and biases as the f32 vectors matmul adds.

use super::LoadedModel;
use crate::error::{Error, Result};
use crate::formats::DType;
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::dequant::dequantize;

/// Looks weights up in `model` and answers with their indices into `LoadedModel::tensors`.
pub(super) struct Weights<'m> {
    model: &'m LoadedModel,
    file: String,
}

impl<'m> Weights<'m> {
    pub fn new(model: &'m LoadedModel) -> Weights<'m> {
        Weights { model, file: model.header.files.first().cloned().unwrap_or_default() }
    }

    /// The tensor `name`, which must exist with `shape` (outermost first) in a decodable format.
    pub fn find(&self, name: &str, shape: &[usize]) -> Result<usize> {
        let tensors = &self.model.header.tensors;
        let i = tensors
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| Error::bad_file(&self.file, format!("tensor {name} is missing")))?;
        let got: Vec<usize> = tensors[i].shape.iter().map(|&d| d as usize).collect();
        if got != shape {
            return Err(Error::bad_file(
                &self.file,
                format!("tensor {name} has shape {got:?}, expected {shape:?}"),
            ));
        }
        if !tensors[i].dtype.decodable() {
            return Err(Error::unsupported(&self.file, format!("tensor {name} is {}", tensors[i].dtype)));
        }
        Ok(i)
    }

    /// Like [`Weights::find`], but None when the model has no tensor `name`.
    pub fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<usize>> {
        match self.model.header.tensors.iter().any(|t| t.name == name) {
            true => self.find(name, shape).map(Some),
            false => Ok(None),
        }
    }
}

/// A bias as the f32 buffer matmul adds. F32 biases (all that llama.cpp's converters write) are bound
/// as stored; others (BF16 in Hugging Face Qwen2 files) are decoded on the GPU into a new buffer, once
/// per forward pass, because the model keeps every tensor as stored.
pub(super) async fn f32_bias(gpu: &Gpu, bias: &GpuTensor) -> Result<wgpu::Buffer> {
    match bias.dtype {
        DType::F32 => Ok(bias.buffer.clone()),
        _ => dequantize(gpu, bias, 0..bias.rows()).await,
    }
}

/// [`f32_bias`] of a bias the model may lack.
pub(super) async fn optional_f32_bias(gpu: &Gpu, bias: Option<&GpuTensor>) -> Result<Option<wgpu::Buffer>> {
    match bias {
        Some(b) => f32_bias(gpu, b).await.map(Some),
        None => Ok(None),
    }
}
