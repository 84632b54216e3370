//! Activation statistics (`eval::activations`) against the CPU twin of the forward pass: on a tiny
//! random Llama, the per-channel max|x| and mean|x| at each block's linear inputs equal what
//! `CpuLlama::forward_observed` sees, over one sequence and over several.

mod common;

use common::{tiny_llama_gguf, TINY_LAYERS, TINY_VOCAB};
use squeeze::compress::calib::Site;
use squeeze::cpu::dequant::dequantize;
use squeeze::cpu::llama::CpuLlama;
use squeeze::error::Error;
use squeeze::eval::activations::{activation_stats, site_name, LayerActivations, SiteActivations};
use squeeze::formats::{read_tensor_bytes, DType, MemSource};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::config::ModelConfig;
use squeeze::model::{load, LoadedModel};
use std::collections::BTreeMap;

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new(GpuOptions::default())).expect("a Vulkan adapter (lavapipe in CI)")
}

fn no_progress(_: &str, _: u64, _: u64) {}

fn ids(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 53 + 7) % TINY_VOCAB as u32).collect()
}

/// Per-channel max|x| and Σ|x| over the rows seen so far at one site.
#[derive(Default)]
struct Acc {
    max: Vec<f32>,
    sum: Vec<f64>,
    rows: usize,
}

impl Acc {
    /// Folds in x (t, k).
    fn add(&mut self, x: &[f32], k: usize) {
        if self.max.is_empty() {
            (self.max, self.sum) = (vec![0.0; k], vec![0.0; k]);
        }
        for row in x.chunks(k) {
            for (j, v) in row.iter().enumerate() {
                self.max[j] = self.max[j].max(v.abs());
                self.sum[j] += v.abs() as f64;
            }
            self.rows += 1;
        }
    }
}

/// The twin's statistics, each sequence of `seq_len` run from an empty context.
fn twin(sources: &[MemSource], model: &LoadedModel, tokens: &[u32], seq_len: usize) -> Vec<LayerActivations> {
    let cfg = ModelConfig::from_header(&model.header).unwrap();
    let weight = |name: &str| {
        let t = model.header.tensors.iter().find(|t| t.name == name)?;
        let bytes = pollster::block_on(read_tensor_bytes(sources, t)).unwrap();
        Some(dequantize(t.dtype, &bytes, t.n_elements() as usize).unwrap())
    };
    let cpu = CpuLlama::new(cfg, weight).unwrap();
    let mut acc: Vec<BTreeMap<Site, Acc>> = (0..TINY_LAYERS).map(|_| BTreeMap::new()).collect();
    for seq in tokens.chunks(seq_len) {
        cpu.forward_observed(seq, |layer, role, x| {
            acc[layer].entry(Site::of(role).unwrap()).or_default().add(x, x.len() / seq.len());
        });
    }
    acc.into_iter()
        .enumerate()
        .map(|(layer, sites)| LayerActivations {
            layer,
            sites: sites
                .into_iter()
                .map(|(site, a)| SiteActivations {
                    site: site_name(site),
                    mean_abs: a.sum.iter().map(|v| (*v / a.rows as f64) as f32).collect(),
                    max_abs: a.max,
                })
                .collect(),
        })
        .collect()
}

/// The GPU sums in another order than the twin: 1e-4 relative to the channel's largest value (each
/// site's input has been through at most 2 blocks of matmuls with k ≤ 512).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: channels");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: all zero");
    for (j, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-4 * scale, "{what}, channel {j}: gpu {a} vs cpu {b} (scale {scale})");
    }
}

fn check(seq_len: usize, n_tokens: usize) {
    let gpu = gpu();
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::F32, 21) }];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let tokens = ids(n_tokens);
    let mut phases = Vec::new();
    let mut progress = |phase: &str, done: u64, total: u64| phases.push((phase.to_string(), done, total));
    let got: Vec<LayerActivations> =
        pollster::block_on(activation_stats(&gpu, &model, &tokens, seq_len, &mut progress)).unwrap();
    let want = twin(&sources, &model, &tokens, seq_len);
    assert_eq!(got.len(), TINY_LAYERS as usize);
    assert_eq!(phases.last().unwrap(), &("activations".to_string(), TINY_LAYERS, TINY_LAYERS));
    for (layer, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.layer, layer);
        let names: Vec<&str> = g.sites.iter().map(|s| s.site).collect();
        assert_eq!(names, ["attn_in", "attn_out_in", "ffn_in", "down_in"]);
        for (s, t) in g.sites.iter().zip(&w.sites) {
            assert_eq!(s.site, t.site);
            let what = format!("seq {seq_len}, layer {layer}, {}", t.site);
            assert_close(&format!("{what} max|x|"), &s.max_abs, &t.max_abs);
            assert_close(&format!("{what} mean|x|"), &s.mean_abs, &t.mean_abs);
        }
    }
}

#[test]
fn per_channel_statistics_match_the_cpu_twin_in_one_sequence() {
    check(64, 29);
}

#[test]
fn per_channel_statistics_match_the_cpu_twin_over_several_sequences() {
    check(16, 40); // sequences of 16, 16 and 8 tokens
}

#[test]
fn too_short_a_text_is_refused() {
    let gpu = gpu();
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::F32, 21) }];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let err = pollster::block_on(activation_stats(&gpu, &model, &[5], 16, &mut no_progress)).unwrap_err();
    assert!(matches!(&err, Error::Invalid(m) if m.contains("at least 2 tokens")), "{err}");
}
