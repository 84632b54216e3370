//! The calibration-statistics kernels (per-channel Σ|x|, max|x|, Σx² and the Hessian xᵀx) against their
//! CPU twins, accumulated over several batches of awkward shapes, in whole and in windowed bindings.
//! Native runs use lavapipe: `WGPU_BACKEND=vulkan cargo test --release --test calib_kernels`.
//!
//! Tolerances: the twins sum each batch in f64 (exact up to one rounding), the GPU in f32; both round
//! once more when adding a batch into the f32 total. Over n tokens in b batches each result is off by at
//! most about (n + b)·ε·Σ|terms| (ε = f32::EPSILON = 2u); Σ|terms| is the same statistic of |x|.
//! Maxima are exact, and the Hessian is exactly symmetric (the same products summed in the same order).

mod common;

use common::{assert_close, gpu, gpu_with, Rng};
use squeeze::cpu;
use squeeze::error::Error;
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::kernels::calib;

const EPS: f32 = f32::EPSILON;

fn upload(gpu: &Gpu, values: &[f32]) -> wgpu::Buffer {
    let buffer =
        gpu.storage_buffer("test input", 4 * values.len() as u64, wgpu::BufferUsages::COPY_DST).unwrap();
    gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(values));
    buffer
}

/// t tokens of k channels uniform in ±1, with every 17th channel scaled by 30: the outlier features
/// LLM.int8 and SmoothQuant look for.
fn activations(t: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    (0..t * k).map(|i| rng.uniform() * if (i % k) % 17 == 5 { 30.0 } else { 1.0 }).collect()
}

fn assert_symmetric(what: &str, h: &[f32], k: usize) {
    for a in 0..k {
        for b in 0..a {
            assert_eq!(h[a * k + b], h[b * k + a], "{what}: h[{a}, {b}] ≠ h[{b}, {a}]");
        }
    }
}

/// Accumulate the batches (tokens each) of k channels on the GPU and the CPU; compare the column
/// statistics and the Hessian, and check the Hessian's symmetry.
async fn check_batches(gpu: &Gpu, batches: &[usize], k: usize, rng: &mut Rng) {
    let what = format!("batches {batches:?} of {k} channels");
    let stats = calib::new_column_stats(gpu, k as u32).unwrap();
    let h = calib::new_hessian(gpu, k as u32).unwrap();
    let (mut want_stats, mut want_h) = (vec![0f32; 4 * k], vec![0f32; k * k]);
    let mut magnitude_h = vec![0f32; k * k];
    for &t in batches {
        let x = activations(t, k, rng);
        let mut enc = gpu.encoder();
        let x_gpu = upload(gpu, &x);
        calib::accumulate_columns(gpu, &mut enc, &x_gpu, t as u32, k as u32, &stats).await.unwrap();
        calib::accumulate_hessian(gpu, &mut enc, &x_gpu, t as u32, k as u32, &h).await.unwrap();
        gpu.queue.submit([enc.finish()]);
        cpu::calib::accumulate_columns(&x, t, k, &mut want_stats);
        cpu::calib::accumulate_hessian(&x, t, k, &mut want_h);
        let abs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        cpu::calib::accumulate_hessian(&abs, t, k, &mut magnitude_h);
    }
    let got_stats = gpu.read_f32(&stats, 0, 4 * k as u64).await.unwrap();
    let got_h = gpu.read_f32(&h, 0, (k * k) as u64).await.unwrap();
    gpu.check().unwrap();

    let n = (batches.iter().sum::<usize>() + batches.len()) as f32;
    // Σ|x| and Σx² are their own Σ|terms|; Σx's is Σ|x|.
    assert_close(&format!("{what}: Σ|x|, Σx², Σx"), &got_stats, &want_stats, |i| {
        n * EPS * want_stats[if i >= 3 * k { i - 3 * k } else { i }] + f32::MIN_POSITIVE
    });
    assert_eq!(got_stats[k..2 * k], want_stats[k..2 * k], "{what}: max|x|");
    assert_close(&format!("{what}: xᵀx"), &got_h, &want_h, |i| {
        n * EPS * magnitude_h[i] + f32::MIN_POSITIVE
    });
    assert_symmetric(&what, &got_h, k);
}

#[test]
fn statistics_match_cpu_over_batches() {
    pollster::block_on(async {
        let gpu = gpu();
        let mut rng = Rng::new(71);
        // Tokens per batch not a multiple of 4 (the Hessian's token step); channels below, across and
        // not a multiple of the 64 per workgroup and the 32 rows per Hessian dispatch; SmolLM2's 576 + 1
        // and 1536; 600 tokens, more than one Hessian chunk (512) takes.
        for (batches, k) in [
            (&[1, 5, 67][..], 3),
            (&[5, 1, 67], 96),
            (&[67, 1, 5], 577),
            (&[5, 67], 1536),
            (&[16], 64),
            (&[600, 3], 40),
        ] {
            check_batches(&gpu, batches, k, &mut rng).await;
        }
    });
}

#[test]
fn statistics_in_token_and_row_windows() {
    pollster::block_on(async {
        // 64 KiB bindings: x of 100 × 200 goes in chunks of 60 tokens, h of 200² in windows of 64
        // rows; x of 67 × 300 in chunks of 48, h of 300² in windows of 32 rows, the last of 12.
        let small = GpuOptions { max_storage_buffer_binding_size: Some(64 * 1024), ..Default::default() };
        let gpu = gpu_with(small);
        let mut rng = Rng::new(72);
        for (batches, k) in [(&[100, 3][..], 200), (&[67, 1], 300)] {
            check_batches(&gpu, batches, k, &mut rng).await;
        }
        // 32 rows of a 577-wide Hessian (74 KB) are the least one window can hold.
        let x = upload(&gpu, &[0.5; 577]);
        let h = calib::new_hessian(&gpu, 577).unwrap();
        let e = calib::accumulate_hessian(&gpu, &mut gpu.encoder(), &x, 1, 577, &h).await.unwrap_err();
        assert!(matches!(&e, Error::DeviceLimit(m) if m.contains("577 input channels")), "{e}");
    });
}

#[test]
fn known_answer() {
    pollster::block_on(async {
        let gpu = gpu();
        let stats = calib::new_column_stats(&gpu, 3).unwrap();
        let h = calib::new_hessian(&gpu, 3).unwrap();
        let mut enc = gpu.encoder();
        for (x, t) in
            [(upload(&gpu, &[1.0, 2.0, 3.0, -4.0, 5.0, -6.0]), 2), (upload(&gpu, &[0.0, -1.0, 2.0]), 1)]
        {
            calib::accumulate_columns(&gpu, &mut enc, &x, t, 3, &stats).await.unwrap();
            calib::accumulate_hessian(&gpu, &mut enc, &x, t, 3, &h).await.unwrap();
        }
        gpu.queue.submit([enc.finish()]);
        // Rows (1, 2, 3), (−4, 5, −6), then (0, −1, 2).
        let want_stats = [5.0, 8.0, 11.0, 4.0, 5.0, 6.0, 17.0, 30.0, 49.0, -3.0, 6.0, -1.0];
        let want_h = [17.0, -18.0, 27.0, -18.0, 30.0, -26.0, 27.0, -26.0, 49.0];
        assert_eq!(gpu.read_f32(&stats, 0, 12).await.unwrap(), want_stats);
        assert_eq!(gpu.read_f32(&h, 0, 9).await.unwrap(), want_h);
        let mut cpu_stats = vec![0f32; 12];
        let mut cpu_h = vec![0f32; 9];
        for (x, t) in [(&[1.0, 2.0, 3.0, -4.0, 5.0, -6.0][..], 2), (&[0.0, -1.0, 2.0], 1)] {
            cpu::calib::accumulate_columns(x, t, 3, &mut cpu_stats);
            cpu::calib::accumulate_hessian(x, t, 3, &mut cpu_h);
        }
        assert_eq!(cpu_stats, want_stats);
        assert_eq!(cpu_h, want_h);
    });
}

#[test]
fn refuses_what_it_cannot_do() {
    pollster::block_on(async {
        // Buffers of at most 1 MiB: a 577-wide layer's Hessian (1.3 MB) cannot exist.
        let gpu = gpu_with(GpuOptions { max_buffer_size: Some(1 << 20), ..Default::default() });
        match calib::new_hessian(&gpu, 577) {
            Err(Error::DeviceLimit(m)) => assert!(m.contains("577 input channels"), "{m}"),
            other => panic!("a 577² Hessian on 1 MiB buffers: {:?}", other.map(|_| ())),
        }
        let x = upload(&gpu, &[0.5; 577 * 2]);
        let small = calib::new_hessian(&gpu, 96).unwrap();
        let mut enc = gpu.encoder();
        let e = calib::accumulate_hessian(&gpu, &mut enc, &x, 2, 577, &small).await.unwrap_err();
        assert!(matches!(&e, Error::DeviceLimit(m) if m.contains("577 input channels")), "{e}");
        // A Hessian buffer of the wrong size, x shorter than t × k, no tokens.
        let e = calib::accumulate_hessian(&gpu, &mut enc, &x, 2, 100, &small).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        let stats = calib::new_column_stats(&gpu, 577).unwrap();
        let e = calib::accumulate_columns(&gpu, &mut enc, &x, 3, 577, &stats).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        let e = calib::accumulate_columns(&gpu, &mut enc, &x, 0, 577, &stats).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    });
}
