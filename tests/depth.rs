//! Depth pruning (`drop_layers`) on the tiny random Llama: a block whose output projections are zero
//! adds nothing to the residual stream, so both importances (1 − cos(x_in, x_out) and perplexity without
//! the block) must pick it, and the shallower model must compute exactly the original's logits; the
//! remaining blocks are renumbered and keep their weights; and the block importance itself on known
//! vectors.

mod common;

use common::{tiny_llama_gguf, Rng, TINY_LAYERS, TINY_VOCAB};
use squeeze::compress::prune::depth::{block_importance, least_important, without_blocks};
use squeeze::compress::{compress, Calibration, Compressed, Recipe};
use squeeze::error::Error;
use squeeze::formats::{DType, MemSource};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::kernels::dequant::dequantize_to_vec;
use squeeze::model::config::ModelConfig;
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};

fn no_progress(_: &str, _: u64, _: u64) {}

/// The tiny Llama (2 blocks) with block `identity`'s attention output and FFN down projections zeroed.
fn tiny_with_identity_block(gpu: &Gpu, identity: usize) -> LoadedModel {
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::F32, 11) }];
    let mut model = pollster::block_on(load(gpu, &sources, &mut no_progress)).unwrap();
    for name in [format!("blk.{identity}.attn_output.weight"), format!("blk.{identity}.ffn_down.weight")] {
        let i = model.header.tensors.iter().position(|t| t.name == name).unwrap();
        let t = &model.tensors[i];
        let zeros = vec![0u8; t.n_bytes as usize];
        model.tensors[i] = gpu.upload_tensor(&name, &t.shape.clone(), DType::F32, &zeros).unwrap();
    }
    model
}

fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % TINY_VOCAB) as u32).collect()
}

fn drop_one(gpu: &Gpu, model: &LoadedModel, importance: &str) -> Compressed {
    let recipe = Recipe::parse(&format!(
        r#"{{"steps":[{{"method":"drop_layers","count":1,"importance":"{importance}"}}]}}"#
    ))
    .unwrap();
    let calib = tokens(192, 1);
    let calibration = Calibration { tokens: &calib, seq_len: 64 };
    pollster::block_on(compress(gpu, model, &recipe, Some(calibration), &mut no_progress)).unwrap()
}

fn logits(gpu: &Gpu, model: &LoadedModel, ids: &[u32]) -> Vec<f32> {
    let mut runner = Runner::new(gpu, model, ids.len(), ids.len()).unwrap();
    pollster::block_on(runner.logits_of(ids, 0..ids.len())).unwrap()
}

#[test]
fn a_block_that_adds_nothing_is_dropped_and_the_logits_stay_exact() {
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).expect("a Vulkan adapter (lavapipe in CI)");
    let ids = tokens(40, 2);
    for identity in [0, 1] {
        let model = tiny_with_identity_block(&gpu, identity);
        for importance in ["block", "ppl"] {
            let what = format!("identity block {identity}, importance {importance}");
            let c = drop_one(&gpu, &model, importance);
            assert_eq!(c.report.blocks_dropped, vec![identity], "{what}");
            let cfg = ModelConfig::from_header(&c.model.header).unwrap();
            assert_eq!(cfg.n_layers as u64, TINY_LAYERS - 1, "{what}");
            assert_eq!(c.model.header.summary.n_layers, Some(TINY_LAYERS - 1), "{what}");
            assert_eq!(c.model.header.tensors.len(), model.header.tensors.len() - 9, "{what}");
            assert!(c.model.header.tensors.iter().all(|t| !t.name.starts_with("blk.1.")), "{what}");
            assert!(c.report.size_bytes < c.report.size_bytes_original, "{what}");
            let notes = &c.report.steps[0].notes;
            assert!(notes[0].starts_with(&format!("dropped blocks {identity} ")), "{what}: {notes:?}");

            let (want, got) = (logits(&gpu, &model, &ids), logits(&gpu, &c.model, &ids));
            let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-5, "{what}: logits move by {worst}");

            // The block that stays is the other one, now block 0, with its weights.
            let other = 1 - identity;
            for role in ["attn_q", "ffn_down", "attn_norm"] {
                let before = model.tensor(&format!("blk.{other}.{role}.weight")).unwrap();
                let after = c.model.tensor(&format!("blk.0.{role}.weight")).unwrap();
                assert_eq!(
                    pollster::block_on(dequantize_to_vec(&gpu, before)).unwrap(),
                    pollster::block_on(dequantize_to_vec(&gpu, after)).unwrap(),
                    "{what}: {role}"
                );
            }
        }
    }
}

#[test]
fn block_importance_measures_how_far_a_block_turns_the_stream() {
    let x = [1.0, 2.0, -3.0, 0.5, 4.0, 0.0, 0.0, 1.0];
    let scaled: Vec<f32> = x.iter().map(|v| 3.0 * v).collect();
    let negated: Vec<f32> = x.iter().map(|v| -v).collect();
    assert!(block_importance(&x, &scaled, 4).abs() < 1e-12);
    assert!((block_importance(&x, &negated, 4) - 2.0).abs() < 1e-12);
    // Token 1 turned by 90° (cos 0), token 2 unchanged: mean cos 1/2.
    let turned = [2.0, -1.0, 0.0, 0.0, 4.0, 0.0, 0.0, 1.0];
    let first = [1.0, 2.0, 0.0, 0.0, 4.0, 0.0, 0.0, 1.0];
    assert!((block_importance(&first, &turned, 4) - 0.5).abs() < 1e-12);
    assert_eq!(least_important(&[0.3, 0.1, 0.2, 0.1, 0.9], 3), vec![1, 2, 3]);
}

#[test]
fn dropping_refuses_what_cannot_be_done() {
    let refused = common::assert_recipe_refused;
    refused(
        r#"{"steps":[{"method":"rtn"},{"method":"drop_layers"}]}"#,
        "step 2: drop_layers must come before",
    );
    refused(
        r#"{"steps":[{"method":"drop_layers","count":0}]}"#,
        "drop_layers.count must be a whole number ≥ 1",
    );
    refused(
        r#"{"steps":[{"method":"drop_layers","importance":"taylor"}]}"#,
        "importance must be \"block\" or \"ppl\"",
    );
    refused(r#"{"steps":[{"method":"drop_layers","target":"blk\\.1\\."}]}"#, "it takes no target");
    assert!(Recipe::parse(
        r#"{"steps":[{"method":"drop_layers"},{"method":"drop_layers"},{"method":"rtn"}]}"#
    )
    .is_ok());

    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).unwrap();
    let model = tiny_with_identity_block(&gpu, 1);
    match without_blocks(&model, &[2]) {
        Err(Error::Invalid(m)) => {
            assert!(m.contains("block 2 does not exist: the model has 2 blocks"), "{m}")
        }
        other => panic!("accepted: {:?}", other.map(|_| ())),
    }
    let recipe = Recipe::parse(r#"{"steps":[{"method":"drop_layers","count":2}]}"#).unwrap();
    let calib = tokens(192, 1);
    let calibration = Calibration { tokens: &calib, seq_len: 64 };
    match pollster::block_on(compress(&gpu, &model, &recipe, Some(calibration), &mut no_progress)) {
        Err(Error::Invalid(m)) => assert!(m.contains("cannot drop 2 of the model's 2 blocks"), "{m}"),
        other => panic!("accepted: {:?}", other.map(|_| ())),
    }
    match pollster::block_on(compress(&gpu, &model, &recipe, None, &mut no_progress)) {
        Err(Error::Invalid(m)) => assert!(m.contains("give calibration text"), "{m}"),
        other => panic!("accepted: {:?}", other.map(|_| ())),
    }
}
