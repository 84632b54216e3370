//! A compression recipe: plain data, the same JSON for the page, its URL and the command line.
//!
//! `{"steps": [{"method": "gptq", "bits": 3, "group": 128, "target": "blk\\."}, …], "sequential": true}`
//!
//! Steps apply in order. `target` is a regular expression over the model's own tensor names (default:
//! every linear layer of every block); only matrices are affected. Each method accepts the common
//! parameters it uses (`bits`, `group` — positive: group size along the input dimension, 0: one scale
//! per output channel, −1: one per tensor —, `sym`, `format`, `search`) plus its own knobs with the
//! reference implementations' defaults. Unknown methods or parameters are refused with the valid list.
//!
//! Target-bpw mode: an integer step with `target_bpw` > 0 treats `bits` as a floor and gives blocks more
//! bits, up to `max_bits`, by their measured sensitivity until its tensors average `target_bpw`
//! (`compress::allot`).

use super::prune::depth::Importance;
use super::prune::magnitude::Scope;
use super::prune::width::{self, Unit};
use super::prune::Sparsity;
use super::quant::grid::{Format, Granularity, Scheme};
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// One method: its name, what it needs, a two-sentence explanation, and its parameters' defaults.
pub struct MethodInfo {
    pub name: &'static str,
    /// Whether it runs calibration text through the model first.
    pub calibrated: bool,
    pub about: &'static str,
    defaults: fn() -> Value,
}

/// A method as the page lists it: name, whether it calibrates, explanation, parameters with defaults.
#[derive(Debug, Clone, Serialize)]
pub struct MethodView {
    pub name: &'static str,
    pub calibrated: bool,
    pub about: String,
    pub defaults: Value,
}

/// Every method for the page (explanations on one line).
pub fn method_views() -> Vec<MethodView> {
    METHODS
        .iter()
        .map(|m| MethodView {
            name: m.name,
            calibrated: m.calibrated,
            about: m.about.split_whitespace().collect::<Vec<_>>().join(" "),
            defaults: (m.defaults)(),
        })
        .collect()
}

/// The storage grids a step's `format` may name.
pub const FORMATS: &[&str] =
    &["int", "q8_0", "q4_0", "q4_1", "q5_0", "q4_k", "q6_k", "nf4", "fp4", "fp8_e4m3", "fp8_e5m2", "mxfp4"];

/// Every method, in the order the page lists them.
pub const METHODS: &[MethodInfo] = &[
    MethodInfo {
        name: "rtn",
        calibrated: false,
        about: "Round to nearest: each group of weights gets a scale (and zero point) from its range, and \
                every weight is rounded to the nearest level. Fast and data-free; the baseline every other \
                method is measured against.",
        defaults: || json!({"bits": 4, "group": 128, "sym": false, "format": "int", "search": false,
                   "target_bpw": 0.0, "max_bits": 8}),
    },
    MethodInfo {
        name: "hqq",
        calibrated: false,
        about: "Half-Quadratic Quantization: keeps the scale but optimises each group's zero point so the \
                rounding error is sparse (a robust lp-norm, p < 1). Data-free and fast.",
        defaults: || json!({"bits": 4, "group": 64, "iters": 20, "target_bpw": 0.0, "max_bits": 8}),
    },
    MethodInfo {
        name: "gptq",
        calibrated: true,
        about: "Quantises one input column at a time and spreads each rounding error over the columns not \
                yet quantised, weighted by the inverse Hessian of the layer's inputs (XᵀX). Needs calibration \
                text; much better than rounding at 3–4 bits.",
        defaults: || {
            json!({"bits": 4, "group": 128, "sym": false, "format": "int", "search": false,
                   "damp": 0.01, "block": 128, "act_order": false, "target_bpw": 0.0, "max_bits": 8})
        },
    },
    MethodInfo {
        name: "awq",
        calibrated: true,
        about: "Activation-aware: input channels with large activations matter most, so their weights are \
                scaled up before rounding (s = mean|x|^α, α searched) and the inverse scale is folded into \
                the preceding operation; then each group's clipping range is searched.",
        defaults: || {
            json!({"bits": 4, "group": 128, "sym": false, "format": "int", "grid": 20, "clip": true,
                   "target_bpw": 0.0, "max_bits": 8})
        },
    },
    MethodInfo {
        name: "smoothquant",
        calibrated: true,
        about: "W8A8: moves activation outliers into the weights (x/s, W·s with s = max|x|^α / max|W|^(1−α)) \
                so both can be 8-bit; activations are quantised per token at run time.",
        defaults: || json!({"alpha": 0.8, "bits": 8}),
    },
    MethodInfo {
        name: "llm_int8",
        calibrated: false,
        about: "LLM.int8(): int8 weights per output channel and int8 activations per token, except the \
                input features where some |x| ≥ threshold (systematic outliers), which are multiplied in \
                16-bit precision.",
        defaults: || json!({"threshold": 6.0}),
    },
    MethodInfo {
        name: "spqr",
        calibrated: true,
        about: "GPTQ with small groups that keeps the few weights whose rounding error would be largest \
                (relative to the row's) in 16 bit, stored sparsely beside the low-bit matrix.",
        defaults: || {
            json!({"bits": 3, "group": 32, "sym": false, "damp": 0.01, "block": 128, "act_order": false,
                   "threshold": 0.2, "target_bpw": 0.0, "max_bits": 8})
        },
    },
    MethodInfo {
        name: "owq",
        calibrated: true,
        about: "Outlier-aware weight quantization: the input columns most sensitive to rounding \
                (Hessian diagonal × error) stay in 16 bit; GPTQ quantises the rest.",
        defaults: || {
            json!({"bits": 4, "group": 128, "sym": false, "damp": 0.01, "block": 128, "act_order": false,
                   "keep": 0.01, "target_bpw": 0.0, "max_bits": 8})
        },
    },
    MethodInfo {
        name: "magnitude",
        calibrated: false,
        about: "Pruning by magnitude: the weights of smallest |w| become exactly zero, compared within each \
                output row (scope \"row\") or the whole matrix, either a share of them or all but N of every M \
                consecutive inputs (pattern \"2:4\"). Data-free; the pruned matrix is stored dense, as no \
                kernel reads a sparse layout yet, so it only shrinks when a quantising step follows.",
        defaults: || json!({"sparsity": 0.5, "scope": "row", "pattern": "", "allot": "uniform", "spread": 0.08}),
    },
    MethodInfo {
        name: "wanda",
        calibrated: true,
        about: "Wanda prunes by weights and activations: the score |W_ij|·‖X_j‖₂, the weight times the norm \
                of its input feature over the calibration text, is compared within each output row (or N:M \
                group), so small weights on large activations survive. Nothing is updated after; the matrix \
                is stored dense unless a quantising step follows.",
        defaults: || json!({"sparsity": 0.5, "pattern": "", "allot": "uniform", "spread": 0.08}),
    },
    MethodInfo {
        name: "sparsegpt",
        calibrated: true,
        about: "SparseGPT prunes one input column at a time and updates the weights not yet visited to \
                compensate, through the inverse Hessian of the layer's inputs (XᵀX) as GPTQ does for \
                rounding; each block of columns drops its weights of least saliency w²/[H⁻¹]_jj. Needs \
                calibration text; the matrix is stored dense unless a quantising step follows.",
        defaults: || {
            json!({"sparsity": 0.5, "pattern": "", "damp": 0.01, "block": 128, "allot": "uniform",
                   "spread": 0.08})
        },
    },
    MethodInfo {
        name: "svd",
        calibrated: false,
        about: "Low-rank factorisation: each matrix W becomes A·B of rank r, from its r largest singular \
                values (the best rank-r approximation), r chosen so the two factors hold `keep` of W's \
                parameters. Data-free; the factors are stored F16 and run as two matmuls, so the layer \
                computes r·(in + out) multiply-adds per token instead of in·out.",
        defaults: || json!({"keep": 0.8}),
    },
    MethodInfo {
        name: "asvd",
        calibrated: true,
        about: "Activation-aware SVD: factorises W·S, with S = mean|x|^α per input channel from calibration \
                text, and folds S⁻¹ back into the second factor, so the channels that carry large \
                activations are reproduced best. Same rank, storage and two matmuls as svd.",
        defaults: || json!({"keep": 0.8, "alpha": 0.5}),
    },
    MethodInfo {
        name: "drop_layers",
        calibrated: true,
        about: "Depth pruning: removes the `count` transformer blocks that matter least on the calibration \
                text — by how little each turns the residual stream (importance \"block\": 1 − cos(x_in, x_out), \
                as ShortGPT) or by the perplexity without it (\"ppl\", one forward pass per block). The model \
                becomes physically shallower; it comes before any other step.",
        defaults: || json!({"count": 3, "importance": "block"}),
    },
    MethodInfo {
        name: "prune_heads",
        calibrated: true,
        about: "Width pruning of attention: removes the same share (`ratio`) of whole key/value groups from \
                every block — a KV head with its query heads, their q/k/v rows and the output projection's \
                columns — ranked by importance \"activation\" (Minitron: the heads' output), \"flap\" \
                (fluctuation × ‖W_col‖², the removed mean folded into an output bias) or \"magnitude\". The \
                model becomes physically narrower (fewer heads in its metadata); it comes before other steps.",
        defaults: || json!({"ratio": 0.33, "importance": "activation"}),
    },
    MethodInfo {
        name: "prune_neurons",
        calibrated: true,
        about: "Width pruning of the MLP: removes the same share (`ratio`) of intermediate channels from every \
                block — rows of gate and up, columns of down — ranked by importance \"activation\" (Minitron), \
                \"flap\" (fluctuation × ‖W_col‖², the removed mean folded into a down bias) or \"magnitude\". \
                The FFN width shrinks to a multiple of 32 so that 32-wide quantisation groups still fit.",
        defaults: || json!({"ratio": 0.25, "importance": "activation"}),
    },
    MethodInfo {
        name: "prune_embedding",
        calibrated: true,
        about: "Width pruning of the residual stream: removes the same hidden channels everywhere — columns of \
                every linear that reads the stream and of the embedding, rows of the output and down \
                projections, entries of the norms — ranked by importance \"activation\" (Minitron: the norms' \
                outputs summed over blocks), \"flap\" or \"magnitude\". The width shrinks to a multiple of 32; \
                every block keeps the same channels, since the stream passes through all of them.",
        defaults: || json!({"ratio": 0.25, "importance": "activation"}),
    },
    MethodInfo {
        name: "nf4",
        calibrated: false,
        about: "NormalFloat4 (QLoRA): 16 levels placed at the quantiles of a normal distribution, scaled by \
                each block's absmax — suited to bell-shaped weights.",
        defaults: || json!({"group": 64}),
    },
    MethodInfo {
        name: "fp8_e4m3",
        calibrated: false,
        about: "8-bit floating point with 4 exponent and 3 mantissa bits (max 448), one scale per output \
                channel: relative precision everywhere, no zero point.",
        defaults: || json!({"group": 0}),
    },
    MethodInfo {
        name: "fp8_e5m2",
        calibrated: false,
        about: "8-bit floating point with 5 exponent and 2 mantissa bits: more range, less precision than \
                E4M3.",
        defaults: || json!({"group": 0}),
    },
    MethodInfo {
        name: "fp4",
        calibrated: false,
        about: "4-bit floating point E2M1 (±0, 0.5, 1, 1.5, 2, 3, 4, 6) with an f16 scale per group.",
        defaults: || json!({"group": 32}),
    },
    MethodInfo {
        name: "mxfp4",
        calibrated: false,
        about: "OCP microscaling FP4: blocks of 32 E2M1 values share a power-of-two (E8M0) scale — 4.25 bits \
                per weight, as GGUF's MXFP4 stores it.",
        defaults: || json!({}),
    },
];

#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    pub steps: Vec<Step>,
    /// Calibrate each layer on the outputs of the already-compressed layers before it (GPTQ's
    /// convention); otherwise on the original model's.
    pub sequential: bool,
}

/// One step with every parameter resolved (given or default).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

impl Recipe {
    pub fn parse(json: &str) -> Result<Recipe> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| Error::Invalid(format!("recipe: not valid JSON: {e}")))?;
        Recipe::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Recipe> {
        let obj = value.as_object().ok_or_else(|| invalid("a recipe is an object with \"steps\""))?;
        for key in obj.keys() {
            if key != "steps" && key != "sequential" {
                return Err(invalid(&format!("unknown key \"{key}\" (valid: steps, sequential)")));
            }
        }
        let steps = obj
            .get("steps")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("\"steps\" must be a list of steps"))?;
        if steps.is_empty() {
            return Err(invalid("\"steps\" is empty: add at least one step"));
        }
        let sequential = match obj.get("sequential") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("\"sequential\" must be true or false")),
        };
        let steps: Vec<Step> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| Step::from_value(s).map_err(|e| at_step(i, e)))
            .collect::<Result<_>>()?;
        let first_other = steps.iter().position(|s| !s.structural()).unwrap_or(steps.len());
        if let Some(i) = steps[first_other..].iter().position(Step::structural) {
            let method = &steps[first_other + i].method;
            return Err(at_step(
                first_other + i,
                invalid(&format!(
                    "{method} must come before every other step except drop_layers and the other width \
                     pruning steps (later steps work on the model it leaves)"
                )),
            ));
        }
        Ok(Recipe { steps, sequential })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a recipe serialises")
    }

    pub fn needs_calibration(&self) -> bool {
        self.steps.iter().any(|s| s.calibrated() || s.allots())
    }
}

fn invalid(what: &str) -> Error {
    Error::Invalid(format!("recipe: {what}"))
}

/// "recipe: {method}.{message}" for a parameter's own message.
fn at_method(method: &str, e: Error) -> Error {
    match e {
        Error::Invalid(message) => invalid(&format!("{method}.{message}")),
        other => other,
    }
}

fn at_step(i: usize, e: Error) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(m.replacen("recipe:", &format!("recipe step {}:", i + 1), 1)),
        other => other,
    }
}

pub fn method_info(name: &str) -> Result<&'static MethodInfo> {
    METHODS.iter().find(|m| m.name == name).ok_or_else(|| {
        let valid: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        invalid(&format!("unknown method \"{name}\" (valid: {})", valid.join(", ")))
    })
}

impl Step {
    fn from_value(value: &Value) -> Result<Step> {
        let obj = value.as_object().ok_or_else(|| invalid("a step is an object with a \"method\""))?;
        let method = obj
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a step needs \"method\": a method name"))?;
        let info = method_info(method)?;
        let mut params = match (info.defaults)() {
            Value::Object(m) => m,
            _ => unreachable!("defaults are objects"),
        };
        let mut target = None;
        for (key, v) in obj {
            match key.as_str() {
                "method" => {}
                "target" => {
                    let t = v.as_str().ok_or_else(|| invalid("\"target\" must be a regular expression"))?;
                    regex::Regex::new(t).map_err(|e| invalid(&format!("target \"{t}\": {e}")))?;
                    target = Some(t.to_string());
                }
                _ => {
                    let default = params.get(key).ok_or_else(|| {
                        let mut valid: Vec<&str> = params.keys().map(String::as_str).collect();
                        valid.push("target");
                        invalid(&format!("{method} has no parameter \"{key}\" (valid: {})", valid.join(", ")))
                    })?;
                    if std::mem::discriminant(default) != std::mem::discriminant(v) {
                        return Err(invalid(&format!("{method}.{key} must be like {default}, not {v}")));
                    }
                    params.insert(key.clone(), v.clone());
                }
            }
        }
        let step = Step { method: method.to_string(), target, params };
        step.check()?;
        if let (Some(given), Some(Sparsity::NOfM { n, m })) =
            (obj.get("sparsity").and_then(Value::as_f64), step.sparsity())
        {
            let share = 1.0 - n as f64 / m as f64;
            if (given - share).abs() > 1e-9 {
                return Err(invalid(&format!(
                    "{method}: the {n}:{m} pattern prunes {share} of the weights; leave out sparsity or set it \
                     to {share}, not {given}"
                )));
            }
        }
        Ok(step)
    }

    pub fn info(&self) -> &'static MethodInfo {
        method_info(&self.method).expect("steps are parsed from known methods")
    }

    /// Whether this step runs calibration text through the model (width pruning by weight magnitude
    /// does not).
    pub fn calibrated(&self) -> bool {
        self.info().calibrated && self.width_importance() != Some(width::Importance::Magnitude)
    }

    /// Whether the step changes the model's structure (drop_layers, width pruning): such steps come
    /// first, one after another, before the steps that rewrite weights.
    pub fn structural(&self) -> bool {
        self.method == "drop_layers" || self.width_unit().is_some()
    }

    /// What a width-pruning step removes (`None` for the other methods).
    pub fn width_unit(&self) -> Option<Unit> {
        Unit::of_method(&self.method)
    }

    /// How a width-pruning step ranks its units.
    pub fn width_importance(&self) -> Option<width::Importance> {
        self.width_unit()?;
        let name = self.params.get("importance").and_then(Value::as_str).unwrap_or("activation");
        Some(width::Importance::parse(name).expect("checked when parsed"))
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.params[key].as_f64().unwrap_or_else(|| panic!("{} has a numeric {key}", self.method))
    }

    pub fn usize(&self, key: &str) -> usize {
        self.f64(key) as usize
    }

    pub fn bool(&self, key: &str) -> bool {
        self.params[key].as_bool().unwrap_or_else(|| panic!("{} has a boolean {key}", self.method))
    }

    fn get_i64(&self, key: &str) -> Option<i64> {
        self.params.get(key).and_then(Value::as_i64)
    }

    /// Parameter ranges, checked once at parse time so the methods can trust them.
    fn check(&self) -> Result<()> {
        let m = &self.method;
        if let Some(bits) = self.get_i64("bits") {
            if !(2..=8).contains(&bits) {
                return Err(invalid(&format!("{m}.bits must be 2 to 8, not {bits}")));
            }
        }
        if let Some(g) = self.get_i64("group") {
            if g < -1 || (g > 0 && g % 32 != 0) {
                return Err(invalid(&format!(
                    "{m}.group must be a positive multiple of 32, 0 (per channel) or −1 (per tensor), not {g}"
                )));
            }
        }
        if let Some(f) = self.params.get("format").and_then(Value::as_str) {
            if !FORMATS.contains(&f) {
                return Err(invalid(&format!(
                    "{m}.format \"{f}\" is unknown (valid: {})",
                    FORMATS.join(", ")
                )));
            }
            if f.ends_with("_k") && m != "rtn" {
                return Err(invalid(&format!(
                    "{m}.format \"{f}\": K-quant super-blocks carry quantised sub-block scales, which only \
                     rtn fits; {m} chooses one grid per block of 32 (use q4_0, q4_1, q5_0 or q8_0)"
                )));
            }
        }
        if matches!(m.as_str(), "svd" | "asvd") {
            let keep = self.f64("keep");
            if !(keep > 0.0 && keep < 1.0) {
                return Err(invalid(&format!(
                    "{m}.keep is the share of each matrix's parameters the factors hold: it must lie in \
                     (0, 1) (factors holding all of them would not be smaller), not {keep}"
                )));
            }
        }
        let keep_max = if m == "owq" { 0.5 } else { 1.0 };
        for (key, lo, hi) in
            [("damp", 0.0, 1.0), ("alpha", 0.0, 1.0), ("keep", 0.0, keep_max), ("threshold", 0.0, 1e6)]
        {
            if let Some(v) = self.params.get(key).and_then(Value::as_f64) {
                if !(lo..=hi).contains(&v) {
                    return Err(invalid(&format!("{m}.{key} must lie in [{lo}, {hi}], not {v}")));
                }
            }
        }
        if let Some((target, max_bits)) = self.allotted() {
            let bits = self.get_i64("bits").unwrap_or(8);
            if !matches!(self.format()?.scheme, Scheme::Int { .. }) {
                return Err(invalid(&format!(
                    "{m}.target_bpw needs the integer format (\"format\": \"int\")"
                )));
            }
            if !(bits..=8).contains(&i64::from(max_bits)) {
                return Err(invalid(&format!("{m}.max_bits must lie in [bits = {bits}, 8], not {max_bits}")));
            }
            if !(1.0..=17.0).contains(&target) {
                return Err(invalid(&format!(
                    "{m}.target_bpw must be 0 (off) or a bit width in [1, 17], not {target}"
                )));
            }
        }
        if let Some(scope) = self.params.get("scope").and_then(Value::as_str) {
            Scope::parse(scope).map_err(|e| at_method(m, e))?;
        }
        if m == "drop_layers" {
            if self.target.is_some() {
                return Err(invalid("drop_layers removes whole blocks: it takes no target"));
            }
            if self.get_i64("count").is_none_or(|c| c < 1) {
                return Err(invalid(&format!(
                    "drop_layers.count must be a whole number ≥ 1, not {}",
                    self.params["count"]
                )));
            }
            let importance = self.params["importance"].as_str().unwrap_or_default();
            Importance::parse(importance).map_err(|e| at_method(m, e))?;
        }
        if self.width_unit().is_some() {
            if self.target.is_some() {
                return Err(invalid(&format!("{m} prunes every block alike: it takes no target")));
            }
            let ratio = self.params["ratio"].as_f64().unwrap_or(f64::NAN);
            if !(ratio > 0.0 && ratio < 1.0) {
                return Err(invalid(&format!(
                    "{m}.ratio is the share removed: it must lie in (0, 1), not {ratio}"
                )));
            }
            let importance = self.params["importance"].as_str().unwrap_or_default();
            width::Importance::parse(importance).map_err(|e| at_method(m, e))?;
        }
        if let Some(block) = self.get_i64("block") {
            if block < 1 {
                return Err(invalid(&format!("{m}.block must be at least 1, not {block}")));
            }
        }
        if let Some(share) = self.params.get("sparsity").and_then(Value::as_f64) {
            let pattern = self.params.get("pattern").and_then(Value::as_str).unwrap_or("");
            let sparsity = Sparsity::parse(share, pattern).map_err(|e| at_method(m, e))?;
            if let (Sparsity::NOfM { n, m: group }, Some(block)) = (sparsity, self.get_i64("block")) {
                if block % group as i64 != 0 {
                    return Err(invalid(&format!(
                        "{m}.block must be a positive multiple of {group} for the {n}:{group} pattern, not {block}"
                    )));
                }
            }
        }
        self.check_sparsity_allotment()?;
        self.format()?;
        Ok(())
    }

    /// `allot` and `spread` of the pruning steps: a sensitivity allotment spreads an unstructured share
    /// over the blocks, each block's share within [sparsity − spread, sparsity + spread] ⊂ [0, 1).
    fn check_sparsity_allotment(&self) -> Result<()> {
        let m = &self.method;
        let Some(allot) = self.params.get("allot").and_then(Value::as_str) else { return Ok(()) };
        if allot == "uniform" {
            return Ok(());
        }
        if allot != "sensitivity" {
            return Err(invalid(&format!(
                "{m}.allot must be \"uniform\" or \"sensitivity\", not \"{allot}\""
            )));
        }
        let Some(Sparsity::Unstructured(share)) = self.sparsity() else {
            return Err(invalid(&format!(
                "{m}.allot \"sensitivity\" spreads an unstructured share over the blocks; an N:M pattern \
                 prunes the same share everywhere (leave out the pattern or allot \"uniform\")"
            )));
        };
        let spread = self.f64("spread");
        if !(0.0..=0.5).contains(&spread) || share - spread < 0.0 || share + spread >= 1.0 {
            return Err(invalid(&format!(
                "{m}.spread must lie in [0, 0.5] with sparsity ± spread inside [0, 1): {share} ± {spread} is not"
            )));
        }
        Ok(())
    }

    /// Target-bpw mode: (target bits per weight, most bits a block may get), when `target_bpw` > 0.
    pub fn allotted(&self) -> Option<(f64, u8)> {
        let target = self.params.get("target_bpw").and_then(Value::as_f64).filter(|&t| t > 0.0)?;
        Some((target, self.get_i64("max_bits").unwrap_or(8).clamp(0, 8) as u8))
    }

    /// Whether the step's bits (target-bpw mode) or sparsity (allot "sensitivity") are allotted to the
    /// blocks by measured sensitivity before the recipe runs.
    pub fn allots(&self) -> bool {
        self.allotted().is_some() || self.allotted_sparsity().is_some()
    }

    /// Sensitivity-allotted pruning: (mean sparsity, most a block's share may differ from it).
    pub fn allotted_sparsity(&self) -> Option<(f64, f64)> {
        if self.params.get("allot").and_then(Value::as_str) != Some("sensitivity") {
            return None;
        }
        match self.sparsity()? {
            Sparsity::Unstructured(share) => Some((share, self.f64("spread"))),
            Sparsity::NOfM { .. } => None,
        }
    }

    /// A data-free step that writes the same grid or prunes the same share: the step itself when it
    /// needs no calibration, otherwise round-to-nearest with its `bits`, `group`, `sym`, `format` and
    /// `search`, or magnitude pruning with its `sparsity` and `pattern`. The sensitivity scan measures
    /// blocks with it (a calibrated method would need the model calibrated once per block).
    pub fn data_free(&self) -> Step {
        if !self.info().calibrated {
            return self.clone();
        }
        let free =
            method_info(if self.sparsity().is_some() { "magnitude" } else { "rtn" }).expect("a method");
        let Value::Object(mut params) = (free.defaults)() else { unreachable!("defaults are objects") };
        for (key, value) in params.iter_mut() {
            if let Some(v) = self.params.get(key) {
                *value = v.clone();
            }
        }
        Step { method: free.name.to_string(), target: self.target.clone(), params }
    }

    /// The same step at `bits` bits per weight, target-bpw mode off.
    pub fn with_bits(&self, bits: u8) -> Step {
        let mut step = self.clone();
        step.params.insert("bits".into(), json!(bits));
        step.params.insert("target_bpw".into(), json!(0.0));
        step
    }

    /// The same pruning step at an unstructured `share`, allotment off.
    pub fn with_sparsity(&self, share: f64) -> Step {
        let mut step = self.clone();
        step.params.insert("sparsity".into(), json!(share));
        step.params.insert("allot".into(), json!("uniform"));
        step
    }

    /// What a pruning step removes (`None` for the other methods).
    pub fn sparsity(&self) -> Option<Sparsity> {
        let share = self.params.get("sparsity")?.as_f64()?;
        let pattern = self.params.get("pattern").and_then(Value::as_str).unwrap_or("");
        Some(Sparsity::parse(share, pattern).expect("checked when parsed"))
    }

    /// How drop_layers measures a block's importance.
    pub fn importance(&self) -> Importance {
        let name = self.params.get("importance").and_then(Value::as_str).unwrap_or("block");
        Importance::parse(name).expect("checked when parsed")
    }

    /// Where magnitude pruning compares weights.
    pub fn scope(&self) -> Scope {
        let scope = self.params.get("scope").and_then(Value::as_str).unwrap_or("row");
        Scope::parse(scope).expect("checked when parsed")
    }

    /// The storage format this step writes, for the methods that quantise weights.
    pub fn format(&self) -> Result<Format> {
        let bits = self.get_i64("bits").unwrap_or(8) as u8;
        let sym = self.params.get("sym").and_then(Value::as_bool).unwrap_or(true);
        let granularity = match self.get_i64("group").unwrap_or(32) {
            -1 => Granularity::Tensor,
            0 => Granularity::Channel,
            g => Granularity::Group(g as u32),
        };
        let named = self.params.get("format").and_then(Value::as_str);
        let scheme = match (self.method.as_str(), named) {
            ("nf4", _) | (_, Some("nf4")) => Scheme::Nf4,
            ("fp4", _) | (_, Some("fp4")) => Scheme::Fp4,
            ("fp8_e4m3", _) | (_, Some("fp8_e4m3")) => Scheme::Fp8E4M3,
            ("fp8_e5m2", _) | (_, Some("fp8_e5m2")) => Scheme::Fp8E5M2,
            ("mxfp4", _) | (_, Some("mxfp4")) => Scheme::Mxfp4,
            (_, Some("q8_0")) => Scheme::Q8_0,
            (_, Some("q4_0")) => Scheme::Q4_0,
            (_, Some("q4_1")) => Scheme::Q4_1,
            (_, Some("q5_0")) => Scheme::Q5_0,
            (_, Some("q4_k")) => Scheme::Q4_K,
            (_, Some("q6_k")) => Scheme::Q6_K,
            ("hqq", _) => Scheme::Int { bits, sym: false },
            ("smoothquant" | "llm_int8", _) => Scheme::Int { bits, sym: true },
            _ => Scheme::Int { bits, sym },
        };
        let granularity = match self.method.as_str() {
            "smoothquant" | "llm_int8" => Granularity::Channel,
            _ => granularity,
        };
        let search = self.params.get("search").and_then(Value::as_bool).unwrap_or(false);
        Ok(Format { scheme, granularity, search })
    }
}
