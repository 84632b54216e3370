//! Structured width pruning (prune_heads, prune_neurons, prune_embedding): the narrower model's tensors
//! are exactly the original's kept rows and columns, its metadata and parameter count say its new
//! widths, and its GPU forward pass equals the CPU twin's; units that contribute nothing (zero output
//! columns) are what FLAP's importance removes, leaving the logits unchanged; the scoring and counting
//! helpers on known numbers; refusals; an exported narrow model's header; and on the real SmolLM2-135M,
//! activation importance beats weight magnitude for 25% of the neurons, and quantising after pruning works.

mod common;

use common::bench::{bench, no_progress};
use common::{
    tiny_llama_gguf, Rng, TINY_D_MODEL, TINY_FFN, TINY_HEADS, TINY_HEAD_DIM, TINY_KV_HEADS, TINY_VOCAB,
};
use squeeze::compress::prune::width::{
    group_scores, kept_count, most_important, neuron_scores, ranges, Importance, Unit,
};
use squeeze::compress::{compress, Calibration, Compressed, Recipe};
use squeeze::cpu::dequant::dequantize;
use squeeze::cpu::llama::CpuLlama;
use squeeze::error::Error;
use squeeze::export::{Export, ExportFormat};
use squeeze::formats::{open_model, DType, MemSource, MetaValue};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::config::ModelConfig;
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new(GpuOptions::default())).expect("a Vulkan adapter (lavapipe in CI)")
}

fn tiny(gpu: &Gpu, dtype: DType) -> LoadedModel {
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(dtype, 21) }];
    pollster::block_on(load(gpu, &sources, &mut no_progress)).unwrap()
}

fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % TINY_VOCAB) as u32).collect()
}

fn run(gpu: &Gpu, model: &LoadedModel, recipe: &str) -> Compressed {
    let recipe = Recipe::parse(recipe).unwrap();
    let calib = tokens(160, 3);
    let calibration = Calibration { tokens: &calib, seq_len: 64 };
    pollster::block_on(compress(gpu, model, &recipe, Some(calibration), &mut no_progress)).unwrap()
}

fn stored(gpu: &Gpu, model: &LoadedModel, name: &str) -> Vec<u8> {
    let t = model.tensor(name).unwrap();
    pollster::block_on(gpu.read_bytes(&t.buffer, 0, t.n_bytes)).unwrap()
}

fn values(gpu: &Gpu, model: &LoadedModel, name: &str) -> Vec<f32> {
    let t = model.tensor(name).unwrap();
    dequantize(t.dtype, &stored(gpu, model, name), t.n_elements() as usize).unwrap()
}

/// "0-2,5" → [0, 1, 2, 5].
fn expand(ranges: &str) -> Vec<usize> {
    ranges
        .split(',')
        .filter(|s| !s.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![r.parse().unwrap()],
        })
        .collect()
}

fn complement(removed: &[usize], total: usize) -> Vec<usize> {
    (0..total).filter(|i| !removed.contains(i)).collect()
}

fn logits(gpu: &Gpu, model: &LoadedModel, ids: &[u32]) -> Vec<f32> {
    let mut runner = Runner::new(gpu, model, ids.len(), ids.len()).unwrap();
    pollster::block_on(runner.logits_of(ids, 0..ids.len())).unwrap()
}

fn twin_logits(gpu: &Gpu, model: &LoadedModel, ids: &[u32]) -> Vec<f32> {
    let cfg = ModelConfig::from_header(&model.header).unwrap();
    let weight =
        |name: &str| model.header.tensors.iter().any(|t| t.name == name).then(|| values(gpu, model, name));
    CpuLlama::new(cfg, weight).unwrap().forward(ids)
}

/// Largest |a − b| over the largest |b|.
fn relative_gap(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
}

/// Rows `rows` (all when None) and columns `cols` of a (r, c) matrix.
fn select(w: &[f32], c: usize, rows: Option<&[usize]>, cols: Option<&[usize]>) -> Vec<f32> {
    let all_rows: Vec<usize> = (0..w.len() / c).collect();
    let all_cols: Vec<usize> = (0..c).collect();
    let (rows, cols) = (rows.unwrap_or(&all_rows), cols.unwrap_or(&all_cols));
    rows.iter().flat_map(|&r| cols.iter().map(move |&j| w[r * c + j])).collect()
}

/// Tensor `name` of the narrowed model holds the original's kept rows as stored (bit for bit) or,
/// when it lost columns, its kept values as F16 stores them (F32 norms exactly).
fn assert_kept(
    gpu: &Gpu,
    before: &LoadedModel,
    after: &LoadedModel,
    name: &str,
    rows: Option<&[usize]>,
    cols: Option<&[usize]>,
) {
    let t = before.tensor(name).unwrap();
    let c = t.cols() as usize;
    match cols {
        None => {
            let bytes = stored(gpu, before, name);
            let per_row = bytes.len() / (t.n_elements() as usize / c);
            let want: Vec<u8> =
                rows.unwrap().iter().flat_map(|&r| bytes[r * per_row..(r + 1) * per_row].to_vec()).collect();
            assert_eq!(stored(gpu, after, name), want, "{name}: the kept rows' stored bytes");
            assert_eq!(after.tensor(name).unwrap().dtype, t.dtype, "{name}");
        }
        Some(_) => {
            let kept = select(&values(gpu, before, name), c, rows, cols);
            let want: Vec<f32> = match t.dtype {
                DType::F32 => kept,
                _ => kept.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
            };
            assert_eq!(values(gpu, after, name), want, "{name}: the kept values");
        }
    }
}

#[test]
fn narrowed_tensors_are_the_kept_rows_and_columns_and_the_model_runs_as_its_twin() {
    let gpu = gpu();
    let model = tiny(&gpu, DType::Q4_1);
    let (d, hd, f) = (TINY_D_MODEL as usize, TINY_HEAD_DIM as usize, TINY_FFN as usize);
    let ids = tokens(12, 5);
    let params_before: u64 = model.header.tensors.iter().map(|t| t.n_elements()).sum();
    for importance in ["magnitude", "activation", "flap"] {
        for (method, ratio) in [("prune_heads", 0.5), ("prune_neurons", 0.25), ("prune_embedding", 0.25)] {
            let what = format!("{method} {ratio} by {importance}");
            let recipe = format!(
                r#"{{"steps":[{{"method":"{method}","ratio":{ratio},"importance":"{importance}"}}]}}"#
            );
            let c = run(&gpu, &model, &recipe);
            let s = &c.model.header.summary;
            let removed = &c.report.steps[0].removed;
            let name = |l: usize, role: &str| format!("blk.{l}.{role}.weight");
            let removed_params = match method {
                "prune_heads" => {
                    assert_eq!(
                        (s.n_heads, s.n_kv_heads, s.head_dim),
                        (Some(2), Some(1), Some(TINY_HEAD_DIM)),
                        "{what}"
                    );
                    assert_eq!(
                        c.model.header.metadata["llama.attention.key_length"],
                        MetaValue::U32(64),
                        "{what}"
                    );
                    for r in removed {
                        let l = r.layer.unwrap();
                        let groups = complement(&expand(&r.indices), 2);
                        assert_eq!(groups.len(), 1, "{what}");
                        let q: Vec<usize> = (groups[0] * 2 * hd..(groups[0] + 1) * 2 * hd).collect();
                        let kv: Vec<usize> = (groups[0] * hd..(groups[0] + 1) * hd).collect();
                        assert_kept(&gpu, &model, &c.model, &name(l, "attn_q"), Some(&q), None);
                        assert_kept(&gpu, &model, &c.model, &name(l, "attn_k"), Some(&kv), None);
                        assert_kept(&gpu, &model, &c.model, &name(l, "attn_v"), Some(&kv), None);
                        assert_kept(&gpu, &model, &c.model, &name(l, "attn_output"), None, Some(&q));
                    }
                    2 * (2 * hd * d + 2 * hd * d + hd * d + hd * d)
                }
                "prune_neurons" => {
                    assert_eq!(s.d_ffn, Some(384), "{what}");
                    for r in removed {
                        let l = r.layer.unwrap();
                        let kept = complement(&expand(&r.indices), f);
                        assert_eq!(kept.len(), 384, "{what}");
                        assert_kept(&gpu, &model, &c.model, &name(l, "ffn_gate"), Some(&kept), None);
                        assert_kept(&gpu, &model, &c.model, &name(l, "ffn_up"), Some(&kept), None);
                        assert_kept(&gpu, &model, &c.model, &name(l, "ffn_down"), None, Some(&kept));
                    }
                    2 * 3 * 128 * d
                }
                _ => {
                    assert_eq!((s.d_model, s.head_dim), (Some(192), Some(TINY_HEAD_DIM)), "{what}");
                    assert_eq!(removed.len(), 1, "{what}: one set of channels for every block");
                    let kept = complement(&expand(&removed[0].indices), d);
                    assert_eq!(kept.len(), 192, "{what}");
                    assert_kept(&gpu, &model, &c.model, "token_embd.weight", None, Some(&kept));
                    assert_kept(&gpu, &model, &c.model, "output_norm.weight", None, Some(&kept));
                    for l in 0..2 {
                        for role in
                            ["attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"]
                        {
                            assert_kept(&gpu, &model, &c.model, &name(l, role), None, Some(&kept));
                        }
                        for role in ["attn_output", "ffn_down"] {
                            assert_kept(&gpu, &model, &c.model, &name(l, role), Some(&kept), None);
                        }
                    }
                    // Embedding, 2 × (q, k, v, out, gate, up, down, 2 norms), output norm.
                    64 * (TINY_VOCAB as usize + 2 * (d + 128 * 2 + d + 3 * f + 2) + 1)
                }
            };
            let biases = c.model.header.tensors.iter().filter(|t| t.name.ends_with(".bias")).count();
            let compensated = importance == "flap" && method != "prune_embedding";
            assert_eq!(biases, if compensated { 2 } else { 0 }, "{what}: FLAP's compensation biases");
            let bias_params = if compensated { 2 * d as u64 } else { 0 };
            assert_eq!(c.report.params_original, params_before, "{what}");
            assert_eq!(c.report.params, params_before - removed_params as u64 + bias_params, "{what}");

            let got = logits(&gpu, &c.model, &ids);
            assert_eq!(got.len(), ids.len() * TINY_VOCAB as usize, "{what}");
            assert!(got.iter().all(|v| v.is_finite()), "{what}");
            let gap = relative_gap(&got, &twin_logits(&gpu, &c.model, &ids));
            assert!(gap <= 1e-3, "{what}: GPU vs CPU twin {gap}");
        }
    }
}

/// The tiny F32 Llama with some of every block's output-projection columns zero: for heads (`attn_output`
/// columns of KV group 1), or neurons (`ffn_down` columns 0, 3, 6, …).
fn with_silent_units(gpu: &Gpu, weight: &str, silent: &dyn Fn(usize) -> bool) -> LoadedModel {
    let mut model = tiny(gpu, DType::F32);
    for l in 0..2 {
        let name = format!("blk.{l}.{weight}.weight");
        let i = model.header.tensors.iter().position(|t| t.name == name).unwrap();
        let cols = model.tensors[i].cols() as usize;
        let mut w = values(gpu, &model, &name);
        w.iter_mut().enumerate().filter(|(k, _)| silent(k % cols)).for_each(|(_, v)| *v = 0.0);
        let shape = model.tensors[i].shape.clone();
        model.tensors[i] = gpu.upload_tensor(&name, &shape, DType::F32, bytemuck::cast_slice(&w)).unwrap();
    }
    model
}

#[test]
fn flap_removes_units_that_contribute_nothing_and_the_logits_stay() {
    let gpu = gpu();
    let ids = tokens(20, 8);
    let hd = TINY_HEAD_DIM as usize;
    let cases = [
        (
            "prune_heads",
            0.5,
            "attn_output",
            Box::new(move |c: usize| c >= 2 * hd) as Box<dyn Fn(usize) -> bool>,
            "1",
        ),
        ("prune_neurons", 0.25, "ffn_down", Box::new(|c: usize| c.is_multiple_of(4)), ""),
    ];
    for (method, ratio, weight, silent, want_removed) in cases {
        let model = with_silent_units(&gpu, weight, silent.as_ref());
        let recipe = format!(r#"{{"steps":[{{"method":"{method}","ratio":{ratio},"importance":"flap"}}]}}"#);
        let c = run(&gpu, &model, &recipe);
        for r in &c.report.steps[0].removed {
            match method {
                "prune_heads" => assert_eq!(r.indices, want_removed, "{method}: block {:?}", r.layer),
                _ => {
                    assert!(expand(&r.indices).iter().all(|n| n.is_multiple_of(4)), "{method}: {}", r.indices)
                }
            }
        }
        // The compensation of units that add nothing is nothing.
        let bias = values(&gpu, &c.model, &format!("blk.0.{weight}.bias"));
        assert!(bias.iter().all(|&b| b == 0.0), "{method}: bias {:?}", &bias[..4]);
        let gap = relative_gap(&logits(&gpu, &c.model, &ids), &logits(&gpu, &model, &ids));
        assert!(gap <= 1e-5, "{method}: logits move by {gap} of their scale");
    }
}

#[test]
fn scores_counts_and_ranges_on_known_numbers() {
    assert_eq!(kept_count(Unit::Neurons, 0.25, 1536).unwrap(), 1152);
    assert_eq!(
        kept_count(Unit::Embedding, 0.25, 576).unwrap(),
        448,
        "432 rounds to the nearest multiple of 32"
    );
    assert_eq!(kept_count(Unit::Heads, 0.33, 3).unwrap(), 2);
    assert_eq!(kept_count(Unit::Heads, 0.25, 3).unwrap(), 2, "0.75 of a group rounds to one");
    for (unit, ratio, total, says) in [
        (Unit::Heads, 0.1, 3, "keep 3 of the 3 KV groups"),
        (Unit::Neurons, 0.99, 1536, "keep 0 of the 1536 neurons"),
        (Unit::Embedding, 0.01, 576, "keep 576 of the 576 hidden channels"),
    ] {
        match kept_count(unit, ratio, total) {
            Err(Error::Invalid(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{unit:?} {ratio}: {other:?}"),
        }
    }
    assert_eq!(most_important(&[0.5, 2.0, 0.1, 2.0, 1.0], 3), vec![1, 3, 4]);
    assert_eq!(most_important(&[1.0, 1.0, 1.0], 2), vec![0, 1], "ties keep the lower index");
    assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    assert_eq!(ranges(&[]), "");

    // Magnitude on known matrices: d = 2, f = 3; neuron 1 has the largest rows and column.
    let gate = [1.0, 0.0, 3.0, 0.0, 0.0, 0.0];
    let up = [0.0, 0.0, 4.0, 0.0, 0.0, 1.0];
    let down = [0.0, 12.0, 0.0, 0.0, 0.0, 0.0];
    let s = neuron_scores(Importance::Magnitude, (&gate, &up, &down), 2, 3, None).unwrap();
    assert_eq!(s, vec![1.0, 13.0, 1.0]);
    match neuron_scores(Importance::Activation, (&gate, &up, &down), 2, 3, None) {
        Err(Error::Invalid(m)) => assert!(m.contains("needs calibration statistics"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Heads: 4 query heads of width 1 in 2 KV groups, d = 1: group g has q rows 2g, 2g+1, k/v row g.
    let gpu = gpu();
    let mut cfg = ModelConfig::from_header(&tiny(&gpu, DType::F32).header).unwrap();
    (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.d_model) = (4, 2, 1, 1);
    let (q, k, v, o) = ([1.0, 1.0, 0.0, 2.0], [2.0, 0.0], [0.0, 0.0], [0.0, 1.0, 0.0, 0.0]);
    let s = group_scores(Importance::Magnitude, &cfg, (&q, &k, &v, &o), None).unwrap();
    assert_eq!(s, vec![(1.0f64 + 1.0 + 1.0 + 4.0).sqrt(), 2.0]);
}

#[test]
fn width_pruning_refuses_what_it_cannot_do() {
    let refused = common::assert_recipe_refused;
    refused(
        r#"{"steps":[{"method":"rtn"},{"method":"prune_neurons"}]}"#,
        "step 2: prune_neurons must come before",
    );
    refused(r#"{"steps":[{"method":"prune_heads","ratio":1.0}]}"#, "prune_heads.ratio is the share removed");
    refused(
        r#"{"steps":[{"method":"prune_neurons","importance":"taylor"}]}"#,
        "\"activation\", \"flap\" or \"magnitude\"",
    );
    refused(r#"{"steps":[{"method":"prune_embedding","target":"blk"}]}"#, "it takes no target");
    refused(r#"{"steps":[{"method":"prune_neurons","sparsity":0.5}]}"#, "no parameter \"sparsity\"");
    let magnitude =
        Recipe::parse(r#"{"steps":[{"method":"prune_neurons","importance":"magnitude"}]}"#).unwrap();
    assert!(!magnitude.needs_calibration(), "magnitude importance needs no text");
    assert!(Recipe::parse(
        r#"{"steps":[{"method":"drop_layers"},{"method":"prune_heads"},{"method":"prune_neurons"},{"method":"rtn"}]}"#
    )
    .is_ok());

    let gpu = gpu();
    let model = tiny(&gpu, DType::F32);
    let recipe = Recipe::parse(r#"{"steps":[{"method":"prune_heads","ratio":0.2}]}"#).unwrap();
    let calib = tokens(64, 1);
    let calibration = Calibration { tokens: &calib, seq_len: 64 };
    match pollster::block_on(compress(&gpu, &model, &recipe, Some(calibration), &mut no_progress)) {
        Err(Error::Invalid(m)) => {
            assert!(
                m.contains("recipe step 1 (prune_heads): ratio 0.2 would keep 2 of the 2 KV groups"),
                "{m}"
            )
        }
        other => panic!("accepted: {:?}", other.map(|_| ())),
    }
}

#[test]
fn an_exported_narrow_model_says_its_widths() {
    let gpu = gpu();
    let model = tiny(&gpu, DType::Q8_0);
    let recipe = r#"{"steps":[{"method":"prune_heads","ratio":0.5,"importance":"magnitude"},
                              {"method":"prune_neurons","ratio":0.25,"importance":"magnitude"}]}"#;
    let c = run(&gpu, &model, recipe);
    let mut e = Export::new(&model, &c.model, None, ExportFormat::Gguf).unwrap();
    let mut file = Vec::new();
    while let Some(piece) = pollster::block_on(e.next_piece(&gpu, &c.model)).unwrap() {
        file.extend(piece);
    }
    let back =
        pollster::block_on(open_model(&[MemSource { name: "narrow.gguf".into(), bytes: file }])).unwrap();
    let u32_ = |v: u64| MetaValue::U32(v as u32);
    assert_eq!(back.metadata["llama.attention.head_count"], u32_(TINY_HEADS / 2));
    assert_eq!(back.metadata["llama.attention.head_count_kv"], u32_(TINY_KV_HEADS / 2));
    assert_eq!(back.metadata["llama.feed_forward_length"], u32_(384));
    assert_eq!(back.metadata["llama.attention.key_length"], u32_(TINY_HEAD_DIM));
    assert_eq!(back.tensor("blk.1.attn_q.weight").unwrap().shape, vec![128, TINY_D_MODEL]);
    assert_eq!(back.tensor("blk.1.attn_output.weight").unwrap().shape, vec![TINY_D_MODEL, 128]);
    assert_eq!(back.tensor("blk.0.ffn_down.weight").unwrap().shape, vec![TINY_D_MODEL, 384]);
    assert_eq!(back.tensor("blk.0.ffn_up.weight").unwrap().dtype, DType::Q8_0, "rows kept as stored");
}

#[test]
fn smollm2_activation_width_pruning_beats_magnitude_and_quantises_after() {
    let b = bench();
    let recipe = |importance: &str| {
        format!(r#"{{"steps":[{{"method":"prune_neurons","ratio":0.25,"importance":"{importance}"}}]}}"#)
    };
    let (activation, a) = b.run(&recipe("activation"));
    let (_, m) = b.run(&recipe("magnitude"));
    assert!(a.kld < m.kld / 2.0, "activation KLD {} vs magnitude {}", a.kld, m.kld);
    // 30 blocks × 384 neurons × (gate row + up row + down column of 576).
    assert_eq!(activation.report.params_original, 134_515_008);
    assert_eq!(activation.report.params, 134_515_008 - 30 * 384 * 3 * 576);

    let (both, q) =
        b.run(r#"{"steps":[{"method":"prune_neurons","ratio":0.25},{"method":"rtn","bits":4,"group":32}]}"#);
    let down = both.report.tensors.iter().find(|t| t.name == "blk.0.ffn_down.weight").unwrap();
    assert_eq!((down.params, down.bpw), (576 * 1152, 5.0), "int4 g32 on the 1152 kept columns");
    assert!(q.kld.is_finite() && q.kld > a.kld, "quantising adds error: {} vs {}", q.kld, a.kld);
}
