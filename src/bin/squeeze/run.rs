//! Commands that run the model: `tokenize`, `generate`, `perplexity`.

use crate::{args, json, model_files, USAGE};
use squeeze::error::{Error, Result};
use squeeze::eval::perplexity::{perplexity as measure_perplexity, Convention};
use squeeze::formats::open_model;
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::generate::generate as run_generation;
use squeeze::model::runner::Runner;
use squeeze::model::sampler::{Sampler, SamplingSettings};
use squeeze::model::{self, LoadedModel};
use std::io::Write as _;

fn no_progress(_: &str, _: u64, _: u64) {}

pub async fn load(path: &str) -> Result<(Gpu, LoadedModel)> {
    let gpu = Gpu::new(GpuOptions::default()).await?;
    let loaded = model::load(&gpu, &model_files(path)?, &mut no_progress).await?;
    Ok((gpu, loaded))
}

fn read_text(args: &args::Args) -> Result<String> {
    match (args.text("text-file"), args.text("text")) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map_err(|e| Error::Io { file: path.to_string(), problem: e.to_string() }),
        (None, Some(text)) => Ok(text.to_string()),
        _ => Err(Error::Invalid(format!(
            "give the text with --text-file F or --text T (one of them)\n{USAGE}"
        ))),
    }
}

pub async fn tokenize(raw: &[String]) -> Result<String> {
    let args = args::parse(raw, &[], &["text-file", "text"], USAGE)?;
    args.expect_positional(1, "tokenize", USAGE)?;
    let header = open_model(&model_files(&args.positional[0])?).await?;
    let tokenizer = model::tokenizer(&header)?;
    let ids = tokenizer.encode(&read_text(&args)?, tokenizer.adds_bos(), true);
    Ok(serde_json::to_string(&ids).expect("ids serialise") + "\n")
}

pub async fn generate(raw: &[String]) -> Result<String> {
    let args = args::parse(
        raw,
        &["json", "greedy", "chat"],
        &["prompt", "max-tokens", "temperature", "top-k", "top-p", "seed", "repeat-penalty"],
        USAGE,
    )?;
    args.expect_positional(1, "generate", USAGE)?;
    let prompt =
        args.text("prompt").ok_or_else(|| Error::Invalid(format!("--prompt is required\n{USAGE}")))?;
    let defaults = SamplingSettings::default();
    let settings = if args.flag("greedy") {
        SamplingSettings::greedy()
    } else {
        SamplingSettings {
            temperature: args.value("temperature", 0.8)?,
            top_k: args.value("top-k", defaults.top_k)?,
            top_p: args.value("top-p", defaults.top_p)?,
            repetition_penalty: args.value("repeat-penalty", defaults.repetition_penalty)?,
            seed: args.value("seed", defaults.seed)?,
            ..defaults
        }
    };
    let max_tokens: usize = args.value("max-tokens", 128)?;
    let (gpu, loaded) = load(&args.positional[0]).await?;
    let tokenizer = model::tokenizer(&loaded.header)?;
    let text = if args.flag("chat") {
        tokenizer.apply_chat_template(&[("user".to_string(), prompt.to_string())], true)?
    } else {
        prompt.to_string()
    };
    let ids = tokenizer.encode(&text, tokenizer.adds_bos(), true);
    let mut runner = Runner::new(&gpu, &loaded, ids.len() + max_tokens + 1, 256)?;
    let json_out = args.flag("json");
    let mut stream = |piece: &str, _: usize, _: f64| {
        if !json_out {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        }
    };
    let mut sampler = Sampler::new(settings);
    let g = run_generation(
        &mut runner,
        &tokenizer,
        &ids,
        max_tokens,
        &mut sampler,
        &mut no_progress,
        &mut stream,
    )
    .await?;
    if json_out {
        return Ok(json(&g));
    }
    Ok(format!(
        "\n\n[{} prompt tokens, prefill {:.1} tok/s; {} generated, decode {:.1} tok/s; stop: {:?}]\n",
        g.prompt_tokens,
        g.prefill_tokens_per_s,
        g.tokens.len(),
        g.decode_tokens_per_s,
        g.stop
    ))
}

pub async fn perplexity(raw: &[String]) -> Result<String> {
    let args = args::parse(raw, &["json", "all-tokens"], &["text-file", "text", "ctx", "chunks"], USAGE)?;
    args.expect_positional(1, "perplexity", USAGE)?;
    let text = read_text(&args)?;
    let ctx: usize = args.value("ctx", 512)?;
    let chunks: Option<usize> = args.optional("chunks")?;
    let (gpu, loaded) = load(&args.positional[0]).await?;
    let tokenizer = model::tokenizer(&loaded.header)?;
    // As llama-perplexity: BOS only when the vocabulary adds it; special-token text stays plain text.
    let tokens = tokenizer.encode(&text, tokenizer.adds_bos(), false);
    let bos = tokenizer.adds_bos().then(|| tokenizer.bos());
    let convention = if args.flag("all-tokens") { Convention::AllTokens } else { Convention::LlamaCpp };
    let mut runner = Runner::new(&gpu, &loaded, ctx, ctx)?;
    let json_out = args.flag("json");
    let mut progress = |_: &str, done: u64, total: u64| {
        if !json_out && done > 0 {
            eprint!("\r[{done}/{total}]");
        }
    };
    let p = measure_perplexity(&mut runner, &tokens, ctx, chunks, bos, convention, &mut progress).await?;
    if json_out {
        return Ok(json(&p));
    }
    Ok(format!(
        "\nPPL = {:.4} +/- {:.5}  ({} chunks of {} tokens, {} tokens scored, {:?} convention)\n",
        p.ppl, p.ppl_err, p.chunks, p.ctx, p.tokens, p.convention
    ))
}
