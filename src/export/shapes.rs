//! The hyperparameters a model's tensors imply. An export writes these instead of copying the source's
//! numbers, so a model whose blocks were made narrower or fewer (structured pruning) says what its
//! tensors are.

use crate::error::{Error, Result};
use crate::formats::ModelHeader;
use crate::model::config::{Family, ModelConfig, Role};

#[derive(Debug, Clone, PartialEq)]
pub struct Shapes {
    pub n_layers: usize,
    pub d_model: u64,
    pub vocab: u64,
    /// Per block.
    pub d_ffn: Vec<u64>,
    pub n_heads: Vec<u64>,
    pub n_kv_heads: Vec<u64>,
}

impl Shapes {
    pub fn of(header: &ModelHeader, cfg: &ModelConfig) -> Result<Shapes> {
        let has = |name: &str| header.tensors.iter().any(|t| t.name == name);
        let rows = |name: &str| header.tensor(name).map(|t| t.shape[0]);
        let embedding = header.tensor(cfg.embedding_name())?;
        let n_layers = (0..).take_while(|&l| has(&cfg.layer_name(l, Role::AttnNorm))).count();
        let heads = |name: String, per_head: u64| -> Result<u64> {
            let r = rows(&name)?;
            match r.is_multiple_of(per_head) {
                true => Ok(r / per_head),
                false => Err(Error::Invalid(format!(
                    "{name} has {r} rows, not a whole number of heads of {per_head}"
                ))),
            }
        };
        let head_dim = cfg.head_dim as u64;
        let (mut d_ffn, mut n_heads, mut n_kv_heads) = (Vec::new(), Vec::new(), Vec::new());
        for l in 0..n_layers {
            d_ffn.push(rows(&cfg.layer_name(l, Role::Up))?);
            match cfg.family {
                Family::Llama => {
                    n_heads.push(heads(cfg.layer_name(l, Role::Q), head_dim)?);
                    n_kv_heads.push(heads(cfg.layer_name(l, Role::K), head_dim)?);
                }
                Family::Gpt2 => {
                    let h = heads(cfg.layer_name(l, Role::Qkv), 3 * head_dim)?;
                    n_heads.push(h);
                    n_kv_heads.push(h);
                }
            }
        }
        Ok(Shapes {
            n_layers,
            d_model: embedding.cols(),
            vocab: embedding.shape[0],
            d_ffn,
            n_heads,
            n_kv_heads,
        })
    }
}

/// The value every block shares, None when they differ (or there are no blocks).
pub fn uniform(per_block: &[u64]) -> Option<u64> {
    let first = *per_block.first()?;
    per_block.iter().all(|&v| v == first).then_some(first)
}
