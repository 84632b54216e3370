//! Recipes: parsing with defaults, the storage format each step resolves to, and the messages that
//! name what is valid when a recipe is wrong.

use squeeze::compress::quant::grid::{Granularity, Scheme};
use squeeze::compress::Recipe;
use squeeze::error::Error;

fn message(json: &str) -> String {
    match Recipe::parse(json) {
        Err(Error::Invalid(m)) => m,
        Err(other) => panic!("{json}: expected an invalid-recipe error, got {other}"),
        Ok(r) => panic!("{json}: expected an error, parsed {}", r.to_json()),
    }
}

#[test]
fn steps_take_the_reference_defaults() {
    let r = Recipe::parse(r#"{"steps": [{"method": "gptq", "bits": 3, "target": "blk\\.0\\."}]}"#).unwrap();
    let s = &r.steps[0];
    assert_eq!(s.method, "gptq");
    assert_eq!(s.target.as_deref(), Some("blk\\.0\\."));
    assert_eq!(s.usize("bits"), 3);
    assert_eq!(s.usize("group"), 128);
    assert_eq!(s.f64("damp"), 0.01);
    assert_eq!(s.usize("block"), 128);
    assert!(!s.bool("act_order"));
    assert!(r.sequential);
    assert!(r.needs_calibration());
    let f = s.format().unwrap();
    assert_eq!(f.scheme, Scheme::Int { bits: 3, sym: false });
    assert_eq!(f.granularity, Granularity::Group(128));
}

#[test]
fn groups_and_formats_resolve() {
    let fmt = |json: &str| Recipe::parse(json).unwrap().steps[0].format().unwrap();
    assert_eq!(
        fmt(r#"{"steps":[{"method":"rtn","bits":8,"group":0,"sym":true}]}"#).granularity,
        Granularity::Channel
    );
    assert_eq!(fmt(r#"{"steps":[{"method":"rtn","group":-1}]}"#).granularity, Granularity::Tensor);
    assert_eq!(fmt(r#"{"steps":[{"method":"gptq","format":"q4_0"}]}"#).scheme, Scheme::Q4_0);
    assert_eq!(fmt(r#"{"steps":[{"method":"nf4"}]}"#).granularity, Granularity::Group(64));
    assert_eq!(fmt(r#"{"steps":[{"method":"fp8_e4m3"}]}"#).granularity, Granularity::Channel);
    assert_eq!(fmt(r#"{"steps":[{"method":"mxfp4"}]}"#).scheme, Scheme::Mxfp4);
    assert_eq!(fmt(r#"{"steps":[{"method":"llm_int8"}]}"#).scheme, Scheme::Int { bits: 8, sym: true });
    let r = Recipe::parse(r#"{"steps":[{"method":"rtn"}],"sequential":false}"#).unwrap();
    assert!(!r.sequential && !r.needs_calibration());
}

#[test]
fn a_parsed_recipe_serialises_to_an_equal_recipe() {
    let r =
        Recipe::parse(r#"{"steps":[{"method":"awq","bits":3},{"method":"rtn","target":"output"}]}"#).unwrap();
    let again = Recipe::parse(&r.to_json()).unwrap();
    assert_eq!(r.to_json(), again.to_json());
    assert!(r.to_json().contains("\"grid\":20"), "{}", r.to_json());
}

#[test]
fn wrong_recipes_say_what_is_valid() {
    let m = message(r#"{"steps":[{"method":"gtpq"}]}"#);
    assert!(m.contains("unknown method \"gtpq\"") && m.contains("gptq") && m.contains("mxfp4"), "{m}");
    let m = message(r#"{"steps":[{"method":"gptq","dampening":0.1}]}"#);
    assert!(
        m.contains("step 1") && m.contains("\"dampening\"") && m.contains("damp") && m.contains("act_order"),
        "{m}"
    );
    let m = message(r#"{"steps":[{"method":"rtn"},{"method":"rtn","group":48}]}"#);
    assert!(m.contains("step 2") && m.contains("multiple of 32"), "{m}");
    let m = message(r#"{"steps":[{"method":"rtn","bits":9}]}"#);
    assert!(m.contains("2 to 8"), "{m}");
    let m = message(r#"{"steps":[{"method":"rtn","bits":"four"}]}"#);
    assert!(m.contains("rtn.bits must be like 4"), "{m}");
    let m = message(r#"{"steps":[{"method":"rtn","target":"blk\\.("}]}"#);
    assert!(m.contains("target"), "{m}");
    let m = message(r#"{"steps":[{"method":"rtn","format":"q3_k"}]}"#);
    assert!(m.contains("q4_0") && m.contains("nf4"), "{m}");
    assert!(message(r#"{"steps":[]}"#).contains("empty"));
    assert!(message(r#"{"step":[]}"#).contains("unknown key \"step\""));
    assert!(message("not json").contains("not valid JSON"));
}

#[test]
fn target_bpw_mode_is_checked_and_resolves() {
    let r = Recipe::parse(r#"{"steps":[{"method":"rtn","bits":3,"target_bpw":3.5,"max_bits":6}]}"#).unwrap();
    assert_eq!(r.steps[0].allotted(), Some((3.5, 6)));
    assert!(r.needs_calibration(), "sensitivity is measured on the calibration text");
    let at5 = r.steps[0].with_bits(5);
    assert_eq!(at5.format().unwrap().scheme, Scheme::Int { bits: 5, sym: false });
    assert_eq!(at5.allotted(), None);
    // A calibrated method's probe is rounding on the same grid.
    let g = Recipe::parse(r#"{"steps":[{"method":"gptq","bits":3,"group":64,"sym":true,"target_bpw":4}]}"#)
        .unwrap();
    let probe = g.steps[0].data_free();
    assert_eq!(probe.method, "rtn");
    assert_eq!(probe.format().unwrap(), g.steps[0].format().unwrap());
    assert_eq!(Recipe::parse(r#"{"steps":[{"method":"rtn"}]}"#).unwrap().steps[0].allotted(), None);

    let m = message(r#"{"steps":[{"method":"rtn","bits":4,"target_bpw":4.5,"max_bits":3}]}"#);
    assert!(m.contains("max_bits must lie in [bits = 4, 8]"), "{m}");
    let m = message(r#"{"steps":[{"method":"rtn","format":"q4_0","target_bpw":4.5}]}"#);
    assert!(m.contains("integer format"), "{m}");
    let m = message(r#"{"steps":[{"method":"rtn","target_bpw":40}]}"#);
    assert!(m.contains("target_bpw must be 0 (off)"), "{m}");
    let m = message(r#"{"steps":[{"method":"nf4","target_bpw":4}]}"#);
    assert!(m.contains("nf4 has no parameter \"target_bpw\""), "{m}");
}
