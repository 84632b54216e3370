//! `squeeze compress`: apply a recipe, then measure the result against the original (perplexity of
//! both, KL divergence, top-1 agreement), print the report, and with `--out` write the compressed
//! model as GGUF or safetensors.

use crate::run::load;
use crate::{args, json, USAGE};
use squeeze::compress::{compress as run_recipe, Calibration, Outcome, Recipe};
use squeeze::error::{Error, Result};
use squeeze::eval::kld::{compare_models, divergence_from, BaseLogProbs};
use squeeze::eval::sensitivity::{check_step, scan};
use squeeze::export::{check_out_path, write_file, Action, Export, ExportPlan};
use squeeze::gpu::Gpu;
use squeeze::model::runner::Runner;
use squeeze::model::tokenizer::Tokenizer;
use squeeze::model::{self, LoadedModel, Progress};
use std::path::PathBuf;

/// Progress on one stderr line, or nothing when stdout carries JSON.
fn stderr_progress(quiet: bool) -> impl FnMut(&str, u64, u64) {
    move |phase, done, total| {
        if !quiet {
            eprint!("\r{phase} [{done}/{total}]   ");
        }
    }
}

pub fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Io { file: path.to_string(), problem: e.to_string() })
}

pub async fn compress(raw: &[String]) -> Result<String> {
    let args = args::parse(
        raw,
        &["json"],
        &["recipe", "calib-file", "calib-tokens", "calib-seq", "eval-file", "ctx", "chunks", "out"],
        USAGE,
    )?;
    args.expect_positional(1, "compress", USAGE)?;
    // Checked before the work, so a bad path costs nothing.
    let out = args.text("out").map(PathBuf::from);
    let format = match &out {
        Some(path) => Some(check_out_path(path, &[PathBuf::from(&args.positional[0])])?),
        None => None,
    };
    let recipe_path =
        args.text("recipe").ok_or_else(|| Error::Invalid(format!("--recipe is required\n{USAGE}")))?;
    let recipe = Recipe::parse(&read(recipe_path)?).map_err(|e| match e {
        Error::Invalid(m) => Error::Invalid(format!("{recipe_path}: {m}")),
        other => other,
    })?;
    let (gpu, loaded) = load(&args.positional[0]).await?;
    let tokenizer = model::tokenizer(&loaded.header)?;
    let json_out = args.flag("json");
    let mut progress = stderr_progress(json_out);

    let calib_tokens = match args.text("calib-file") {
        Some(path) => {
            let mut ids = tokenizer.encode(&read(path)?, false, false);
            ids.truncate(args.value("calib-tokens", 4096)?);
            ids
        }
        None if recipe.needs_calibration() => {
            return Err(Error::Invalid("this recipe has calibrated steps: give --calib-file".into()))
        }
        None => Vec::new(),
    };
    let calibration = Calibration { tokens: &calib_tokens, seq_len: args.value("calib-seq", 512)? };
    let compressed = run_recipe(&gpu, &loaded, &recipe, Some(calibration), &mut progress).await?;

    let eval = match args.text("eval-file") {
        Some(path) => {
            let tokens = tokenizer.encode(&read(path)?, tokenizer.adds_bos(), false);
            let bos = tokenizer.adds_bos().then(|| tokenizer.bos());
            let (ctx, chunks) = (args.value("ctx", 512)?, args.optional("chunks")?);
            Some(
                compare_models(&gpu, &loaded, &compressed.model, &tokens, ctx, chunks, bos, &mut progress)
                    .await?,
            )
        }
        None => None,
    };
    let exported = match (&out, format) {
        (Some(path), Some(format)) => {
            let mut export = Export::new(&loaded, &compressed.model, Some(&recipe), format)?;
            write_file(&gpu, &mut export, &compressed.model, path).await?;
            Some(export.plan().clone())
        }
        _ => None,
    };
    let outcome = Outcome::new(compressed.report, eval);
    if json_out {
        let mut value = serde_json::to_value(&outcome).expect("reports serialise");
        if let Some(plan) = &exported {
            value["export"] = serde_json::to_value(plan).expect("plans serialise");
        }
        return Ok(json(&value));
    }
    let mut report = text_report(&outcome);
    if let (Some(path), Some(plan)) = (&out, &exported) {
        report += &export_report(&path.display().to_string(), plan);
    }
    Ok(report)
}

fn export_report(path: &str, plan: &ExportPlan) -> String {
    let mut s = format!(
        "wrote {path}: {:.2} MB, {} tensors as stored, {} decoded to 16/32-bit floats\n",
        plan.bytes as f64 / 1e6,
        plan.stored,
        plan.dequantised
    );
    for t in plan.tensors.iter().filter(|t| t.action == Action::Dequantised) {
        s += &format!("  {} {} → {}: {}\n", t.name, t.dtype, t.out_dtype, t.reason.as_deref().unwrap_or(""));
    }
    for n in &plan.notes {
        s += &format!("  note: {n}\n");
    }
    s
}

fn text_report(o: &Outcome) -> String {
    let r = &o.report;
    let mut s = format!("\n{}\n", r.recipe.to_json());
    s += &format!(
        "size {:.2} MB (was {:.2} MB), {:.3} bits/weight over the model, {:.3} over the {} rewritten tensors\n",
        r.size_bytes as f64 / 1e6,
        r.size_bytes_original as f64 / 1e6,
        r.bpw,
        r.bpw_compressed,
        r.tensors.len()
    );
    s += &format!("parameters {} (was {})\n", r.params, r.params_original);
    s += &format!("{:.1} s ({:.1} s calibration on {} tokens)\n", r.seconds, r.calib_seconds, r.calib_tokens);
    for st in &r.steps {
        s += &format!(
            "  {:<12} {:>4} tensors {:>8.1} s, {:.2}% zeros\n",
            st.method,
            st.tensors,
            st.seconds,
            100.0 * st.sparsity
        );
        if st.zeros_lost > 0 {
            s += &format!(
                "      {} weights that were zero before this step are not zero after it\n",
                st.zeros_lost
            );
        }
        for n in &st.notes {
            s += &format!("      {n}\n");
        }
    }
    s += "  layer  tensor                         format        bpw    rel.MSE   out.err   zeros\n";
    for t in &r.tensors {
        s += &format!(
            "  {:>5}  {:<30} {:<12} {:>5.2}  {:>9.2e} {:>9} {:>6.2}%\n",
            t.layer.map_or("-".into(), |l| l.to_string()),
            t.name,
            t.dtype_after,
            t.bpw,
            t.rel_mse,
            t.output_err.map_or("-".into(), |e| format!("{e:.2e}")),
            100.0 * t.sparsity
        );
    }
    if let Some(e) = &o.eval {
        s += &format!(
            "PPL {:.4} (original {:.4}), KLD {:.5} ± {:.5}, top-1 {:.2}%, RMS Δp {:.3}%  ({} tokens in {} chunks)\n",
            e.ppl,
            e.ppl_base,
            e.kld,
            e.kld_err,
            100.0 * e.top1,
            100.0 * e.dp_rms,
            e.tokens,
            e.chunks
        );
    }
    s
}

/// `squeeze compare`: several recipes on one model, measured against one base run, as a table.
pub async fn compare(raw: &[String]) -> Result<String> {
    let args = args::parse(
        raw,
        &["json"],
        &["recipes", "calib-file", "calib-tokens", "calib-seq", "eval-file", "ctx", "chunks"],
        USAGE,
    )?;
    args.expect_positional(1, "compare", USAGE)?;
    let list =
        args.text("recipes").ok_or_else(|| Error::Invalid(format!("--recipes is required\n{USAGE}")))?;
    let recipes: Vec<serde_json::Value> = serde_json::from_str(&read(list)?)
        .map_err(|e| Error::Invalid(format!("{list}: a JSON list of recipes: {e}")))?;
    let recipes = recipes.iter().map(Recipe::from_value).collect::<Result<Vec<_>>>()?;
    let eval_file =
        args.text("eval-file").ok_or_else(|| Error::Invalid(format!("--eval-file is required\n{USAGE}")))?;
    let (gpu, loaded) = load(&args.positional[0]).await?;
    let tokenizer = model::tokenizer(&loaded.header)?;
    let mut calib = match args.text("calib-file") {
        Some(path) => tokenizer.encode(&read(path)?, false, false),
        None => Vec::new(),
    };
    calib.truncate(args.value("calib-tokens", 4096)?);
    let seq_len = args.value("calib-seq", 512)?;
    let mut progress = |_: &str, _: u64, _: u64| {};
    let base = base_log_probs(&gpu, &loaded, &tokenizer, eval_file, &args, &mut progress).await?;
    let ctx = base.ctx();
    let mut outcomes = Vec::new();
    let mut table = String::from(
        "| recipe | bits/weight (rewritten) | zeros | params | model MB | PPL | KLD | top-1 | RMS Δp | seconds |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for recipe in &recipes {
        let calibration = Calibration { tokens: &calib, seq_len };
        let c = run_recipe(&gpu, &loaded, recipe, Some(calibration), &mut progress).await?;
        let mut runner = Runner::new(&gpu, &c.model, ctx, ctx)?;
        let d = divergence_from(&base, &mut runner, &mut progress).await?;
        let r = &c.report;
        let row = format!(
            "| `{}` | {:.3} | {:.1}% | {:.2} M | {:.1} | {:.3} | {:.4} | {:.1}% | {:.2}% | {:.1} |\n",
            serde_json::to_string(&recipe.steps).expect("serialises"),
            r.bpw_compressed,
            100.0 * r.sparsity,
            r.params as f64 / 1e6,
            r.size_bytes as f64 / 1e6,
            d.ppl,
            d.kld,
            100.0 * d.top1,
            100.0 * d.dp_rms,
            r.seconds
        );
        eprint!("{row}");
        table += &row;
        outcomes.push(Outcome::new(c.report, Some(d)));
    }
    if args.flag("json") {
        return Ok(json(&outcomes));
    }
    let base_ppl = outcomes.first().and_then(|o| o.ppl_base).unwrap_or(f64::NAN);
    Ok(format!(
        "original PPL {base_ppl:.3} ({} tokens scored)\n{table}",
        outcomes.first().and_then(|o| o.eval.as_ref()).map_or(0, |e| e.tokens)
    ))
}

/// The loaded model's log-probabilities on `--eval-file` at `--ctx` (512) over `--chunks`.
async fn base_log_probs(
    gpu: &Gpu,
    loaded: &LoadedModel,
    tokenizer: &Tokenizer,
    eval_file: &str,
    args: &args::Args,
    progress: &mut impl Progress,
) -> Result<BaseLogProbs> {
    let tokens = tokenizer.encode(&read(eval_file)?, tokenizer.adds_bos(), false);
    let bos = tokenizer.adds_bos().then(|| tokenizer.bos());
    let (ctx, chunks) = (args.value("ctx", 512)?, args.optional("chunks")?);
    let mut runner = Runner::new(gpu, loaded, ctx, ctx)?;
    BaseLogProbs::compute(&mut runner, &tokens, ctx, chunks, bos, progress).await
}

/// `squeeze sensitivity`: each block compressed alone with one data-free step, KLD against the original.
pub async fn sensitivity(raw: &[String]) -> Result<String> {
    let args = args::parse(raw, &["json"], &["step", "eval-file", "ctx", "chunks"], USAGE)?;
    args.expect_positional(1, "sensitivity", USAGE)?;
    let step = args.text("step").ok_or_else(|| Error::Invalid(format!("--step is required\n{USAGE}")))?;
    let recipe = Recipe::parse(&format!(r#"{{"steps":[{step}]}}"#))?;
    check_step(&recipe.steps[0])?;
    let eval_file =
        args.text("eval-file").ok_or_else(|| Error::Invalid(format!("--eval-file is required\n{USAGE}")))?;
    let (gpu, loaded) = load(&args.positional[0]).await?;
    let tokenizer = model::tokenizer(&loaded.header)?;
    let json_out = args.flag("json");
    let mut progress = stderr_progress(json_out);
    let base = base_log_probs(&gpu, &loaded, &tokenizer, eval_file, &args, &mut progress).await?;
    let layers = scan(&gpu, &loaded, &recipe.steps[0], &base, &mut progress).await?;
    if json_out {
        return Ok(json(&layers));
    }
    let most = layers.iter().map(|l| l.kld).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut s = format!("\n{}\nblock      KLD   top-1    bpw       s\n", recipe.to_json());
    for l in &layers {
        s += &format!(
            "{:>5} {:>8.5} {:>6.1}% {:>6.3} {:>7.1}  {}\n",
            l.layer,
            l.kld,
            100.0 * l.top1,
            l.bpw,
            l.seconds,
            "#".repeat((40.0 * l.kld / most).round() as usize)
        );
    }
    Ok(s)
}
