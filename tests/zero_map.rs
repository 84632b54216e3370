//! The pruning mask view: the share of zeros per cell equals a count done here, over windows and grids
//! that do not divide the matrix; on the real model a 2:4 step shows one half zero in every cell, and at
//! one weight per cell the mask itself, two zeros in every four inputs.

mod common;

use common::bench::no_progress;
use common::Rng;
use squeeze::compress::{compress, Recipe};
use squeeze::eval::zero_map::{map_zeros, zero_map, Window};
use squeeze::formats::source::FileSource;
use squeeze::model::load;

#[test]
fn zero_shares_match_a_plain_count_on_awkward_windows_and_grids() {
    let mut rng = Rng::new(5);
    let (rows, cols) = (37u64, 53u64);
    let values: Vec<f32> =
        (0..rows * cols).map(|_| if rng.uniform() < 0.4 { 0.0 } else { rng.uniform() - 0.5 }).collect();
    let zero = |r: u64, c: u64| values[(r * cols + c) as usize] == 0.0;
    for (window, g_r, g_c) in [
        (Window { row0: 0, col0: 0, rows, cols }, 5, 7),
        (Window { row0: 3, col0: 11, rows: 29, cols: 17 }, 4, 9),
        (Window { row0: 36, col0: 52, rows: 1, cols: 1 }, 8, 8),
        (Window { row0: 2, col0: 5, rows: 6, cols: 10 }, 100, 100), // more cells than weights
    ] {
        let m = map_zeros("w", &values, rows, cols, window, g_r, g_c).unwrap();
        assert_eq!(
            (m.grid_rows, m.grid_cols),
            (g_r.min(window.rows as usize), g_c.min(window.cols as usize))
        );
        let mut covered = 0u64;
        for i in 0..m.grid_rows {
            let (r0, r1) = (
                i as u64 * window.rows / m.grid_rows as u64,
                (i as u64 + 1) * window.rows / m.grid_rows as u64,
            );
            for j in 0..m.grid_cols {
                let (c0, c1) = (
                    j as u64 * window.cols / m.grid_cols as u64,
                    (j as u64 + 1) * window.cols / m.grid_cols as u64,
                );
                let cell: Vec<bool> = (r0..r1)
                    .flat_map(|r| (c0..c1).map(move |c| (r, c)))
                    .map(|(r, c)| zero(window.row0 + r, window.col0 + c))
                    .collect();
                covered += cell.len() as u64;
                let want = cell.iter().filter(|&&z| z).count() as f32 / cell.len() as f32;
                assert_eq!(m.zeros[i * m.grid_cols + j], want, "{window:?} cell ({i}, {j})");
            }
        }
        assert_eq!(covered, window.rows * window.cols, "{window:?}: the cells tile the window");
        assert_eq!(m.zeros_total, values.iter().filter(|&&v| v == 0.0).count() as u64);
    }
    let outside = Window { row0: 30, col0: 0, rows: 8, cols: 4 };
    let err = map_zeros("blk.0.w", &values, rows, cols, outside, 4, 4).unwrap_err().to_string();
    assert!(err.contains("blk.0.w") && err.contains("37 × 53"), "{err}");
}

#[test]
fn a_two_of_four_step_shows_half_zeros_everywhere_and_the_pattern_up_close() {
    let gpu = common::gpu();
    let sources = [FileSource::open(&common::real_model_path()).unwrap()];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let recipe =
        Recipe::parse(r#"{"steps":[{"method":"magnitude","pattern":"2:4","target":"blk\\.0\\.attn_q"}]}"#)
            .unwrap();
    let c = pollster::block_on(compress(&gpu, &model, &recipe, None, &mut no_progress)).unwrap();
    let name = "blk.0.attn_q.weight";

    // Q4_1 decodes a few kept weights to exactly 0 too: the map shows values, so those count as zeros.
    let before = pollster::block_on(zero_map(&gpu, &model, name, None, 8, 8)).unwrap();
    assert!(before.zeros_total < 576 * 576 / 100, "the original: {}", before.zeros_total);

    // 576 × 576 in 8 × 8 cells of 72 × 72: every cell is whole groups of four, half of them pruned.
    let whole = pollster::block_on(zero_map(&gpu, &c.model, name, None, 8, 8)).unwrap();
    assert_eq!((whole.rows, whole.cols), (576, 576));
    for (after, orig) in whole.zeros.iter().zip(&before.zeros) {
        assert!(*after >= 0.5 && *after <= 0.5 + orig, "{after} with {orig} zero before");
    }
    let half = 576 * 576 / 2;
    assert!(whole.zeros_total >= half && whole.zeros_total <= half + before.zeros_total);

    // One weight per cell: the mask, two pruned in each four consecutive inputs of every row.
    let window = Window { row0: 101, col0: 200, rows: 3, cols: 16 };
    let close = pollster::block_on(zero_map(&gpu, &c.model, name, Some(window), 64, 64)).unwrap();
    let orig = pollster::block_on(zero_map(&gpu, &model, name, Some(window), 64, 64)).unwrap();
    assert_eq!((close.grid_rows, close.grid_cols), (3, 16));
    for (group, was) in close.zeros.chunks(4).zip(orig.zeros.chunks(4)) {
        assert!(group.iter().all(|&z| z == 0.0 || z == 1.0), "{group:?}");
        let (zeros, were) = (group.iter().sum::<f32>(), was.iter().sum::<f32>());
        assert!(zeros >= 2.0 && zeros <= 2.0 + were, "{group:?}, zero before: {was:?}");
    }
}
