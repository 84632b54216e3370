//! The native command line on the real SmolLM2 file: what `squeeze info` and `squeeze stats` report,
//! and that bad arguments and bad files give a clear message and a failing exit status.

mod common;

use common::real_model_path;
use serde_json::Value;
use std::process::{Command, Output};

fn squeeze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_squeeze")).args(args).env("WGPU_BACKEND", "vulkan").output().unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "squeeze failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn info_json_reports_smollm2_architecture() {
    let model = real_model_path();
    let v = json_of(&squeeze(&["info", model.to_str().unwrap(), "--json"]));
    let s = &v["summary"];
    assert_eq!(s["family"], "llama");
    assert_eq!(s["n_layers"], 30);
    assert_eq!(s["d_model"], 576);
    assert_eq!(s["n_heads"], 9);
    assert_eq!(s["n_kv_heads"], 3);
    assert_eq!(s["d_ffn"], 1536);
    assert_eq!(s["vocab"], 49152);
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 272);
    let elements: u64 = tensors.iter().map(|t| t["n_elements"].as_u64().unwrap()).sum();
    assert_eq!(s["params"].as_u64().unwrap(), elements, "parameter count = sum of tensor element counts");
    assert_eq!(elements, 134_515_008);
}

#[test]
fn info_text_lists_every_tensor() {
    let model = real_model_path();
    let out = squeeze(&["info", model.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("30 layers, d_model 576, 9 heads (3 KV"), "{text}");
    let table = text.split_once("\ntensor ").expect("a tensor table").1;
    assert_eq!(table.lines().skip(1).filter(|l| !l.trim().is_empty()).count(), 272, "{table}");
}

#[test]
fn stats_json_counts_every_weight_of_a_q4_1_matrix() {
    let model = real_model_path();
    let v = json_of(&squeeze(&[
        "stats",
        model.to_str().unwrap(),
        "blk.0.attn_q.weight",
        "--bins",
        "64",
        "--json",
    ]));
    assert_eq!(v["n"], 576 * 576);
    let counts = v["histogram"]["counts"].as_array().unwrap();
    assert_eq!(counts.len(), 64);
    assert_eq!(counts.iter().map(|c| c.as_u64().unwrap()).sum::<u64>(), 576 * 576);
    assert_eq!(v["channel_max_abs"].as_array().unwrap().len(), 576);
    let (min, max) = (v["min"].as_f64().unwrap(), v["max"].as_f64().unwrap());
    let top = v["top_channels"][0]["max_abs"].as_f64().unwrap();
    // The channel list is f32, the summary f64: equal up to f32 rounding.
    let largest = min.abs().max(max);
    assert!((top - largest).abs() <= largest * 1e-6, "the top channel's {top} is the largest |w| {largest}");
    // Attention projections of trained LLMs are heavy-tailed: far from a Gaussian's 0.
    assert!(v["kurtosis"].as_f64().unwrap() > 1.0, "kurtosis {}", v["kurtosis"]);
}

#[test]
fn unknown_tensor_and_command_fail_with_a_message() {
    let model = real_model_path();
    let out = squeeze(&["stats", model.to_str().unwrap(), "blk.99.attn_q.weight"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no tensor named 'blk.99.attn_q.weight' (272 tensors"), "{err}");

    let out = squeeze(&[
        "sensitivity",
        model.to_str().unwrap(),
        "--step",
        r#"{"method":"gptq","bits":3}"#,
        "--eval-file",
        "x",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without calibration; gptq needs it"), "{err}");

    let out = squeeze(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command 'frobnicate'"));
}

#[test]
fn a_bad_file_is_named_in_the_message_and_left_unchanged() {
    let dir = std::env::temp_dir().join(format!("squeeze-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notamodel.gguf");
    let bytes = b"PK\x03\x04 this is a zip file, not GGUF".to_vec();
    std::fs::write(&path, &bytes).unwrap();
    let out = squeeze(&["info", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notamodel.gguf") && err.contains("GGUF"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file must not be modified");
    std::fs::remove_dir_all(&dir).unwrap();
}
