//! The real SmolLM2-135M on the GPU with what the compression tests measure against: calibration text
//! (the first 512 tokens of Macbeth), the original's log-probabilities on Hamlet (2 chunks of 128 tokens,
//! the second half of each scored), and a recipe run measured by KL divergence against them.

use super::real_model_path;
use squeeze::compress::{compress, Calibration, Compressed, Recipe};
use squeeze::eval::kld::{divergence_from, BaseLogProbs, Divergence};
use squeeze::formats::source::FileSource;
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::runner::Runner;
use squeeze::model::{load, tokenizer, LoadedModel};

pub const CTX: usize = 128;
pub const CHUNKS: usize = 2;
pub const CALIB_TOKENS: usize = 512;

pub struct Bench {
    pub gpu: Gpu,
    pub model: LoadedModel,
    pub calib: Vec<u32>,
    pub base: BaseLogProbs,
}

/// A text the setup fetched into .cache/texts.
pub fn text(name: &str) -> String {
    let path = real_model_path().parent().unwrap().parent().unwrap().join("texts").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `bash scripts/setup.sh`", path.display()))
}

pub fn no_progress(_: &str, _: u64, _: u64) {}

/// The real model loaded, calibration tokens, and the original's log-probabilities on the evaluation text.
pub fn bench() -> Bench {
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).expect("a Vulkan adapter (lavapipe in CI)");
    let sources = [FileSource::open(&real_model_path()).unwrap()];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let tok = tokenizer(&model.header).unwrap();
    let mut calib = tok.encode(&text("macbeth_gut.txt"), false, false);
    calib.truncate(CALIB_TOKENS);
    let eval = tok.encode(&text("hamlet_gut.txt"), false, false);
    let base = pollster::block_on(async {
        let mut runner = Runner::new(&gpu, &model, CTX, CTX).unwrap();
        BaseLogProbs::compute(&mut runner, &eval, CTX, Some(CHUNKS), None, &mut no_progress).await.unwrap()
    });
    Bench { gpu, model, calib, base }
}

impl Bench {
    /// Compress with `recipe` (JSON) and measure the result against the original.
    pub fn run(&self, recipe: &str) -> (Compressed, Divergence) {
        let recipe = Recipe::parse(recipe).unwrap();
        pollster::block_on(async {
            let calibration = Calibration { tokens: &self.calib, seq_len: 256 };
            let c =
                compress(&self.gpu, &self.model, &recipe, Some(calibration), &mut no_progress).await.unwrap();
            let mut runner = Runner::new(&self.gpu, &c.model, CTX, CTX).unwrap();
            let d = divergence_from(&self.base, &mut runner, &mut no_progress).await.unwrap();
            eprintln!(
                "{}: {:.3} bpw (model {:.3}), KLD {:.5}, top-1 {:.3}, PPL {:.3} (base {:.3}), {:.1} s",
                recipe.to_json(),
                c.report.bpw_compressed,
                c.report.bpw,
                d.kld,
                d.top1,
                d.ppl,
                d.ppl_base,
                c.report.seconds
            );
            (c, d)
        })
    }
}

/// The reported sizes are the bytes stored: every rewritten tensor's bytes (as the last step that
/// rewrote it left it) are exactly its format's size for its shape, and the model's size is the sum of
/// its tensors.
pub fn assert_sizes_honest(c: &Compressed) {
    let tensors = &c.report.tensors;
    let last = tensors.iter().enumerate().filter(|(i, t)| tensors[i + 1..].iter().all(|u| u.name != t.name));
    for (_, t) in last {
        let info = c.model.header.tensors.iter().find(|i| i.name == t.name).unwrap();
        assert_eq!(info.dtype.name(), t.dtype_after);
        assert_eq!(Some(info.n_bytes), info.dtype.bytes_for(info.n_elements()), "{}", t.name);
        let extra =
            c.model.header.tensors.iter().position(|i| i.name == t.name).and_then(|i| c.model.extras.get(&i));
        assert_eq!(t.bytes, info.n_bytes + extra.map_or(0, |e| e.stored_bytes()), "{}", t.name);
        assert!((t.bpw - t.bytes as f64 * 8.0 / t.params as f64).abs() < 1e-12);
    }
    let total: u64 = c.model.header.tensors.iter().map(|t| t.n_bytes).sum::<u64>()
        + c.model.extras.values().map(|e| e.stored_bytes()).sum::<u64>();
    assert_eq!(c.report.size_bytes, total);
}
