//! The device's own failures become errors a user can act on: a lost device is reported as lost (the
//! page then opens a new one), and running out of memory names what to reduce.

mod common;

use squeeze::gpu::fault_message;

#[test]
fn a_destroyed_device_reports_itself_lost_and_later_work_fails_with_that_reason() {
    let gpu = common::gpu();
    assert_eq!(gpu.lost(), None);
    assert!(gpu.check().is_ok());
    gpu.device.destroy();
    gpu.device.poll(wgpu::PollType::wait_indefinitely()).ok();
    let why = gpu.lost().expect("the lost callback ran");
    assert!(why.contains("lost") && why.contains("Destroyed"), "{why}");
    let err = gpu.check().expect_err("a lost device fails every later check").to_string();
    assert!(err.contains("the GPU device was lost"), "{err}");
}

#[test]
fn out_of_memory_names_what_to_reduce() {
    let oom = wgpu::Error::OutOfMemory { source: "allocation failed".into() };
    let message = fault_message(&oom);
    for advice in ["ran out of memory", "smaller model", "shorter context", "calibration tokens"] {
        assert!(message.contains(advice), "{message} lacks {advice}");
    }
    let other = wgpu::Error::Validation { source: "bad binding".into(), description: "bad binding".into() };
    assert_eq!(fault_message(&other), "bad binding");
}
