//! Tensor names across containers: GGUF (`blk.3.attn_q.weight`) and Hugging Face
//! (`model.layers.3.self_attn.q_proj.weight`), for the Llama family. llama.cpp's converter also
//! interleaves the two rotary halves of each head's q/k rows for the "llama" architecture, so a change of
//! container reorders those rows one way or the other.

use super::shapes::Shapes;
use crate::error::{Error, Result};
use crate::formats::{Container, ModelHeader};
use crate::model::config::{bias_name, Family, ModelConfig, Role};
use std::collections::HashMap;

/// Each tensor's name in the file, and for reordered q/k tensors the model row each file row comes from.
pub(super) struct Naming {
    pub names: Vec<String>,
    pub rows_from: Vec<Option<Vec<usize>>>,
    /// Why rows were reordered, for the plan.
    pub reorder_reason: &'static str,
}

/// The names `header`'s tensors take in a `to` file. `interleaved`: whether the GGUF side (the source's,
/// or the file's) keeps q/k rows in llama.cpp's interleaved rotary order.
pub(super) fn naming(
    header: &ModelHeader,
    cfg: &ModelConfig,
    shapes: &Shapes,
    to: Container,
    interleaved: bool,
) -> Result<Naming> {
    let (to_name, other) = match to {
        Container::Gguf => ("GGUF", "safetensors"),
        Container::Safetensors => ("Hugging Face", "gguf"),
    };
    if header.container == to {
        return Ok(Naming {
            names: header.tensors.iter().map(|t| t.name.clone()).collect(),
            rows_from: vec![None; header.tensors.len()],
            reorder_reason: "",
        });
    }
    if cfg.family != Family::Llama {
        return Err(Error::Invalid(format!(
            "{}: Squeeze maps {to_name} tensor names for the Llama family only (this is {}); export .{other} \
             instead",
            header.files.join(", "),
            header.summary.architecture
        )));
    }
    let gguf = ModelConfig { container: Container::Gguf, ..cfg.clone() };
    let hf = ModelConfig { container: Container::Safetensors, ..cfg.clone() };
    // (GGUF name, Hugging Face name, heads whose rows are interleaved in GGUF).
    let mut pairs: Vec<(String, String, Option<usize>)> = [
        (gguf.embedding_name(), hf.embedding_name()),
        (gguf.output_norm_name(), hf.output_norm_name()),
        (gguf.output_name(), hf.output_name()),
    ]
    .into_iter()
    .map(|(g, h)| (g.to_string(), h.to_string(), None))
    .collect();
    for l in 0..shapes.n_layers {
        for role in Role::ALL {
            let heads = match (interleaved, role) {
                (true, Role::Q) => Some(shapes.n_heads[l] as usize),
                (true, Role::K) => Some(shapes.n_kv_heads[l] as usize),
                _ => None,
            };
            let (g, h) = (gguf.layer_name(l, role), hf.layer_name(l, role));
            pairs.push((bias_name(&g), bias_name(&h), heads));
            pairs.push((g, h, heads));
        }
    }
    let to_gguf = to == Container::Gguf;
    let map: HashMap<String, (String, Option<usize>)> = pairs
        .into_iter()
        .map(|(g, h, heads)| match to_gguf {
            true => (h, (g, heads)),
            false => (g, (h, heads)),
        })
        .collect();
    let mut naming = Naming {
        names: Vec::new(),
        rows_from: Vec::new(),
        reorder_reason: match to_gguf {
            true => "rows put in llama.cpp's interleaved rotary order",
            false => "rows put back from llama.cpp's interleaved rotary order",
        },
    };
    for t in &header.tensors {
        let (name, heads) = map.get(&t.name).ok_or_else(|| {
            Error::Invalid(format!(
                "tensor {} has no {to_name} name (Squeeze maps the Llama family's weights); export .{other} \
                 instead",
                t.name
            ))
        })?;
        naming.names.push(name.clone());
        naming.rows_from.push(heads.map(|h| {
            let hf_from_gguf = hf_rows_from_gguf(t.shape[0] as usize, h);
            match to_gguf {
                true => inverse(&hf_from_gguf),
                false => hf_from_gguf,
            }
        }));
    }
    Ok(naming)
}

/// llama.cpp's converter interleaves the two rotary halves of each head's q/k rows (Hugging Face row
/// h·d + j·d/2 + i becomes GGUF row h·d + 2i + j); for each Hugging Face row, the GGUF row it is.
pub fn hf_rows_from_gguf(rows: usize, heads: usize) -> Vec<usize> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    (0..rows)
        .map(|r| {
            let (h, k) = (r / head_dim, r % head_dim);
            h * head_dim + 2 * (k % half) + k / half
        })
        .collect()
}

/// The inverse permutation: `inverse(p)[p[i]] = i`.
fn inverse(permutation: &[usize]) -> Vec<usize> {
    let mut out = vec![0; permutation.len()];
    for (i, &p) in permutation.iter().enumerate() {
        out[p] = i;
    }
    out
}
