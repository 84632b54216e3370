//! The native command line: the same parsers, kernels and reports as the page, over Vulkan.
//! Every command returns its report as text (or JSON with `--json`); errors go to stderr with a
//! failing exit status.

mod args;
mod bench;
mod compress;
mod inspect;
mod run;

use squeeze::error::{Error, Result};
use squeeze::formats::source::{open_path, FileSource};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: squeeze <command> <model> …
  info       <model> [--json]                          architecture summary and tensor table
  stats      <model> <tensor> [--bins N] [--top K] [--json]
                                                       histogram, quantiles, kurtosis, outlier channels (GPU)
  tokenize   <model> (--text-file F | --text T)        token ids as a JSON array
  generate   <model> --prompt TEXT [--max-tokens N] [--chat]
             [--greedy | --temperature T --top-k K --top-p P --seed S] [--repeat-penalty R] [--json]
  perplexity <model> --text-file F [--ctx 512] [--chunks N] [--all-tokens] [--json]
  compress   <model> --recipe R.json [--calib-file F] [--calib-tokens 4096] [--calib-seq 512]
             [--eval-file E [--ctx 512] [--chunks N]] [--out FILE.gguf|FILE.safetensors] [--json]
                                                       apply a recipe; size, bpw, PPL and KLD vs the original;
                                                       --out writes the compressed model (never the input)
  compare    <model> --recipes LIST.json --eval-file E [--ctx 512] [--chunks N] [--calib-file F …]
                                                       several recipes against one base run: a table
  sensitivity <model> --step STEP_JSON --eval-file E [--ctx 512] [--chunks N] [--json]
                                                       KLD with each block alone compressed by one step
                                                       (STEP_JSON: one recipe step, e.g. {\"method\":\"rtn\",\"bits\":3})
  bench      <model> [--recipe R.json [--calib-file F] [--calib-tokens 512]] [--json]
                                                       load time, compression time, prefill/decode
                                                       tokens/s (of the compressed model), GPU memory
<model>: a .gguf file, a .safetensors file, or a Hugging Face model directory";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match pollster::block_on(dispatch(&raw)) {
        Ok(report) => {
            // A closed pipe (`squeeze info … | head`) is the reader's choice, not a failure.
            let _ = std::io::stdout().write_all(report.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("squeeze: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(raw: &[String]) -> Result<String> {
    let (command, rest) = raw.split_first().ok_or_else(|| Error::Invalid(USAGE.into()))?;
    if command == "-h" || command == "--help" || command == "help" {
        return Ok(format!("{USAGE}\n"));
    }
    match command.as_str() {
        "info" => inspect::info(rest).await,
        "stats" => inspect::stats(rest).await,
        "tokenize" => run::tokenize(rest).await,
        "generate" => run::generate(rest).await,
        "perplexity" => run::perplexity(rest).await,
        "bench" => bench::bench(rest).await,
        "compress" => compress::compress(rest).await,
        "compare" => compress::compare(rest).await,
        "sensitivity" => compress::sensitivity(rest).await,
        _ => Err(Error::Invalid(format!("unknown command '{command}'\n{USAGE}"))),
    }
}

fn model_files(path: &str) -> Result<Vec<FileSource>> {
    open_path(&PathBuf::from(path))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("reports serialise") + "\n"
}
