//! Which tensors each recipe step touches: its `target` expression over the model's tensor names,
//! restricted to matrices, with each block linear's layer and role.

use super::recipe::{Recipe, Step};
use crate::error::{Error, Result};
use crate::formats::ModelHeader;
use crate::model::config::{ModelConfig, Role};
use std::collections::HashMap;

/// The roles of a block's linear layers.
pub const LINEAR_ROLES: [Role; 8] =
    [Role::Q, Role::K, Role::V, Role::Qkv, Role::AttnOut, Role::Gate, Role::Up, Role::Down];

/// One tensor a step applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Index into the model's tensors.
    pub index: usize,
    /// The block and role when it is a block's linear layer.
    pub linear: Option<(usize, Role)>,
}

/// Every step's targets, in recipe order.
pub fn plan(recipe: &Recipe, cfg: &ModelConfig, header: &ModelHeader) -> Result<Vec<Vec<Target>>> {
    let mut linears = HashMap::new();
    for l in 0..cfg.n_layers {
        for role in LINEAR_ROLES {
            linears.insert(cfg.layer_name(l, role), (l, role));
        }
    }
    recipe.steps.iter().enumerate().map(|(i, step)| step_targets(i, step, &linears, header)).collect()
}

/// The block linears `step` alone targets, each with its block: what the per-block measurements
/// (sensitivity scan, allotments) compress one block at a time.
pub fn block_linears(step: &Step, header: &ModelHeader) -> Result<Vec<(usize, Target)>> {
    let cfg = ModelConfig::from_header(header)?;
    let alone = Recipe { steps: vec![step.clone()], sequential: false };
    let targets = plan(&alone, &cfg, header)?.remove(0);
    Ok(targets.into_iter().filter_map(|t| t.linear.map(|(layer, _)| (layer, t))).collect())
}

fn step_targets(
    i: usize,
    step: &Step,
    linears: &HashMap<String, (usize, Role)>,
    header: &ModelHeader,
) -> Result<Vec<Target>> {
    if step.structural() {
        return Ok(Vec::new()); // the model's structure, changed before the other steps
    }
    let pattern = step.target.as_deref().map(|t| regex::Regex::new(t).expect("checked when parsed"));
    let targets: Vec<Target> = header
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.shape.len() == 2)
        .map(|(index, t)| Target { index, linear: linears.get(&t.name).copied() })
        .filter(|t| match &pattern {
            Some(p) => p.is_match(&header.tensors[t.index].name),
            None => t.linear.is_some(),
        })
        .collect();
    let what = format!("recipe step {} ({})", i + 1, step.method);
    if targets.is_empty() {
        return Err(Error::Invalid(format!(
            "{what}: target \"{}\" matches no weight matrix of this model (e.g. {})",
            step.target.as_deref().unwrap_or(""),
            header
                .tensors
                .iter()
                .filter(|t| t.shape.len() == 2)
                .take(3)
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let block_linears_only = matches!(step.method.as_str(), "llm_int8" | "svd");
    if step.info().calibrated || step.allots() || block_linears_only {
        if let Some(t) = targets.iter().find(|t| t.linear.is_none()) {
            return Err(Error::Invalid(format!(
                "{what}: {} is not a linear layer inside a block; {} works on block linears only",
                header.tensors[t.index].name, step.method
            )));
        }
    }
    Ok(targets)
}
