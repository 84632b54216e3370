//! Each recipe method applied to its targets in one block (or to tensors outside the blocks), with
//! the calibration statistics of the block's inputs.

use super::calib::{Site, SiteStats};
use super::lowrank::{asvd::asvd, rank_for, svd::truncated_svd};
use super::plan::Target;
use super::prune::magnitude::magnitude_mask;
use super::prune::mask::apply as apply_mask;
use super::prune::sparsegpt::{sparsegpt, SparseGptOptions};
use super::prune::wanda::wanda_mask;
use super::prune::{storage_note, store_dense, Sparsity};
use super::quant::awq::{search_clip, search_scales};
use super::quant::gptq::{gptq, GptqOptions, Outliers};
use super::quant::grid::{quantize_rtn, quantize_with_grids};
use super::quant::hqq::{hqq, HqqOptions};
use super::quant::smoothquant::{divide, scale_columns, smoothing_scales};
use super::recipe::Step;
use super::work::{Rewrite, Work};
use crate::error::{Error, Result};
use crate::eval::now_ms;
use crate::formats::DType;
use crate::model::config::Role;
use std::collections::BTreeMap;

pub(super) fn needs_hessian(step: &Step) -> bool {
    matches!(step.method.as_str(), "gptq" | "spqr" | "owq" | "awq" | "sparsegpt")
}

/// Apply `step` (the recipe's step number `index`) to `targets`.
pub(super) async fn apply(
    work: &mut Work<'_>,
    index: usize,
    step: &Step,
    targets: &[Target],
    stats: Option<&mut BTreeMap<Site, SiteStats>>,
) -> Result<()> {
    match step.method.as_str() {
        "awq" | "smoothquant" => {
            let stats = stats.ok_or_else(|| Error::Invalid(format!("{} needs calibration", step.method)))?;
            scale_sites(work, index, step, targets, stats).await?;
            for t in targets {
                let site = site_of(t);
                rewrite_one(work, index, step, t.index, Some(&stats[&site])).await?;
            }
            Ok(())
        }
        _ => {
            for t in targets {
                let site_stats = match (&stats, t.linear) {
                    (Some(s), Some(_)) => s.get(&site_of(t)),
                    _ => None,
                };
                rewrite_one(work, index, step, t.index, site_stats).await?;
            }
            Ok(())
        }
    }
}

fn site_of(t: &Target) -> Site {
    Site::of(t.linear.expect("calibrated targets are block linears").1).expect("linear roles have sites")
}

/// Quantise, prune or factorise one matrix with `step`'s method.
async fn rewrite_one(
    work: &mut Work<'_>,
    index: usize,
    step: &Step,
    i: usize,
    stats: Option<&SiteStats>,
) -> Result<()> {
    work.check_dense(i, &step.method)?;
    let t0 = now_ms();
    let w = work.values(i).await?;
    let (rows, cols) = work.shape(i);
    let format = step.format()?;
    let named = |e: Error| match e {
        Error::Invalid(m) => Error::Invalid(format!("{} on {}: {m}", step.method, work.name(i))),
        other => other,
    };
    let hessian = stats.and_then(|s| s.hessian.as_deref());
    let needs =
        |what: &str| Error::Invalid(format!("{} on {}: no calibration {what}", step.method, work.name(i)));
    let rewrite = match step.method.as_str() {
        "hqq" => Rewrite::plain(
            hqq(&w, rows, cols, &format, HqqOptions { iters: step.usize("iters"), ..Default::default() })
                .map_err(named)?,
        ),
        "gptq" | "spqr" | "owq" => {
            let h = hessian.ok_or_else(|| needs("Hessian"))?;
            let outliers = match step.method.as_str() {
                "spqr" => Outliers::Weights { threshold: step.f64("threshold") as f32 },
                "owq" => Outliers::Columns((step.f64("keep") * cols as f64).ceil() as usize),
                _ => Outliers::None,
            };
            let opts = GptqOptions {
                damp: step.f64("damp"),
                block: step.usize("block"),
                act_order: step.bool("act_order"),
                outliers,
            };
            let tokens = stats.map_or(1, |s| s.tokens as usize);
            let r = gptq(&w, rows, cols, h, tokens, &format, &opts).map_err(named)?;
            Rewrite { corrections: r.outliers, ..Rewrite::plain(r.quantized) }
        }
        "awq" => {
            let h = hessian.ok_or_else(|| needs("Hessian"))?;
            let grids = match step.bool("clip") {
                true => search_clip(&w, rows, cols, h, &format, step.usize("grid"), 0.5).map_err(named)?,
                false => format.fit_all(&w, rows, cols),
            };
            Rewrite::plain(quantize_with_grids(&w, rows, cols, &format, &grids).map_err(named)?)
        }
        "smoothquant" => Rewrite {
            act_bits: Some(step.usize("bits") as u32),
            ..Rewrite::plain(quantize_rtn(&format, &w, rows, cols).map_err(named)?)
        },
        "llm_int8" => Rewrite {
            act_bits: Some(8),
            act_threshold: Some(step.f64("threshold") as f32),
            ..Rewrite::plain(quantize_rtn(&format, &w, rows, cols).map_err(named)?)
        },
        "magnitude" | "wanda" | "sparsegpt" => {
            let pruned = prune(step, &w, rows, cols, stats).map_err(named)?;
            let stored = store_dense(&pruned, work.original_dtype(i));
            let sparsity = step.sparsity().expect("pruning steps have one");
            let pattern = match sparsity {
                Sparsity::NOfM { n, m } => Some((n, m)),
                Sparsity::Unstructured(_) => None,
            };
            let bits = stored.dtype.bits_per_weight() as u32;
            note(work, index, storage_note(bits, 1.0 - sparsity.share(), pattern));
            Rewrite::plain(stored)
        }
        "svd" | "asvd" => {
            let rank = rank_for(step.f64("keep"), rows, cols).map_err(named)?;
            let factors = match step.method.as_str() {
                "svd" => truncated_svd(&w, rows, cols, rank),
                _ => {
                    let mean_abs = &stats.ok_or_else(|| needs("statistics"))?.mean_abs;
                    asvd(&w, rows, cols, mean_abs, step.f64("alpha"), rank)
                }
            }
            .map_err(named)?;
            let (a, b) = (store_dense(&factors.a, DType::F16), store_dense(&factors.b, DType::F16));
            Rewrite::low_rank(a, b, rows, cols)
        }
        _ => Rewrite::plain(quantize_rtn(&format, &w, rows, cols).map_err(named)?),
    };
    let stored = format.for_row(cols).scheme;
    if stored != format.scheme {
        let text = format!(
            "{}: rows of {cols} are not a multiple of 256, so {:?} falls back to {stored:?} (as llama.cpp does)",
            work.name(i),
            format.scheme
        );
        note(work, index, text);
    }
    work.store(index, i, rewrite, &w, hessian, (now_ms() - t0) / 1000.0)
}

/// The weights of a (rows, cols) matrix `w` after a pruning step: exactly zero where its mask says.
fn prune(step: &Step, w: &[f32], rows: usize, cols: usize, stats: Option<&SiteStats>) -> Result<Vec<f32>> {
    let sparsity = step.sparsity().expect("pruning steps have one");
    sparsity.check_cols(cols, "the matrix")?;
    let stats = || stats.ok_or_else(|| Error::Invalid("no calibration statistics".into()));
    let mask = match step.method.as_str() {
        "magnitude" => magnitude_mask(w, rows, cols, sparsity, step.scope()),
        "wanda" => wanda_mask(w, rows, cols, &stats()?.sum_sq, sparsity)?,
        _ => {
            let s = stats()?;
            let h = s.hessian.as_deref().ok_or_else(|| Error::Invalid("no calibration Hessian".into()))?;
            let opts = SparseGptOptions { sparsity, damp: step.f64("damp"), block: step.usize("block") };
            return Ok(sparsegpt(w, rows, cols, h, s.tokens as usize, &opts)?.values);
        }
    };
    let mut pruned = w.to_vec();
    apply_mask(&mut pruned, &mask);
    Ok(pruned)
}

/// AWQ and SmoothQuant: per input site of the block, choose per-channel scales s, multiply the
/// consuming linears' input columns by s and divide the operation before them by s (the block computes
/// the same function), and rescale the site's statistics to match. A site is scaled only when every
/// linear reading it is a target and the operation before it can absorb s.
async fn scale_sites(
    work: &mut Work<'_>,
    index: usize,
    step: &Step,
    targets: &[Target],
    stats: &mut BTreeMap<Site, SiteStats>,
) -> Result<()> {
    let layer = targets[0].linear.expect("block linears").0;
    let t0 = now_ms();
    let sites: Vec<Site> = {
        let mut s: Vec<Site> = targets.iter().map(site_of).collect();
        s.sort();
        s.dedup();
        s
    };
    for site in sites {
        let readers = site_readers(work, layer, site);
        let all_targeted = readers.iter().all(|r| targets.iter().any(|t| t.index == *r));
        let Some(before) = absorber(work, layer, site) else {
            note(work, index, format!("{site:?}: no operation before it can absorb scales; not scaled"));
            continue;
        };
        if !all_targeted {
            note(work, index, format!("{site:?}: not every linear reading it is a target; not scaled"));
            continue;
        }
        for &i in readers.iter().chain(match &before {
            Absorber::Rows(up) => Some(up),
            Absorber::Vector(_) => None,
        }) {
            work.check_dense(i, &step.method)?;
        }
        let s_stats = &stats[&site];
        let cols = s_stats.k;
        let mut ws = Vec::new();
        for &r in &readers {
            ws.push((work.values(r).await?, work.shape(r).0));
        }
        let linears: Vec<(&[f32], usize)> = ws.iter().map(|(w, rows)| (w.as_slice(), *rows)).collect();
        let s = match step.method.as_str() {
            "awq" => {
                let h = s_stats
                    .hessian
                    .as_deref()
                    .ok_or_else(|| Error::Invalid("awq needs the Hessian".into()))?;
                let found =
                    search_scales(&linears, cols, &s_stats.mean_abs, h, &step.format()?, step.usize("grid"))?;
                work.steps[index].notes.push(format!(
                    "block {layer} {site:?}: α = {:.2}, loss {:.3e} → {:.3e}",
                    found.ratio, found.loss_before, found.loss_after
                ));
                found.scales
            }
            _ => smoothing_scales(&s_stats.max_abs, &linears, cols, step.f64("alpha") as f32),
        };
        for (&r, (mut w, rows)) in readers.iter().zip(ws) {
            scale_columns(&mut w, rows, cols, &s);
            work.set_f32(r, w);
        }
        fold_into(work, before, &s).await?;
        rescale_stats(stats.get_mut(&site).expect("present"), &s);
    }
    work.steps[index].seconds += (now_ms() - t0) / 1000.0;
    Ok(())
}

/// Add a note to the step's report once.
fn note(work: &mut Work<'_>, index: usize, text: String) {
    if !work.steps[index].notes.contains(&text) {
        work.steps[index].notes.push(text);
    }
}

/// The linears that read `site` in block `l`.
fn site_readers(work: &Work<'_>, l: usize, site: Site) -> Vec<usize> {
    super::plan::LINEAR_ROLES
        .iter()
        .filter(|&&r| Site::of(r) == Some(site))
        .filter_map(|&r| work.index_of(l, r))
        .collect()
}

/// What absorbs 1/s before `site`: the norm's weight, or for the down projection the rows of up
/// (silu(gate)·(up/s) = (silu(gate)·up)/s). The attention output is left unscaled: with grouped-query
/// attention one value row feeds several output columns.
enum Absorber {
    Vector(usize),
    Rows(usize),
}

fn absorber(work: &Work<'_>, l: usize, site: Site) -> Option<Absorber> {
    match site {
        Site::AttnIn => work.index_of(l, Role::AttnNorm).map(Absorber::Vector),
        Site::FfnIn => work.index_of(l, Role::FfnNorm).map(Absorber::Vector),
        Site::DownIn => work.index_of(l, Role::Up).map(Absorber::Rows),
        Site::AttnOutIn => None,
    }
}

async fn fold_into(work: &mut Work<'_>, absorber: Absorber, s: &[f32]) -> Result<()> {
    match absorber {
        Absorber::Vector(i) => {
            let mut v = work.values(i).await?;
            divide(&mut v, s);
            work.set_f32(i, v);
        }
        Absorber::Rows(i) => {
            let mut w = work.values(i).await?;
            let (_, cols) = work.shape(i);
            for (row, &si) in w.chunks_exact_mut(cols).zip(s) {
                row.iter_mut().for_each(|x| *x /= si);
            }
            work.set_f32(i, w);
        }
    }
    Ok(())
}

/// The site's input becomes x/s: its statistics follow.
fn rescale_stats(st: &mut SiteStats, s: &[f32]) {
    let k = st.k;
    for (j, &sj) in s.iter().enumerate() {
        st.mean_abs[j] /= sj;
        st.max_abs[j] /= sj;
        st.sum_sq[j] /= sj * sj;
        st.sum[j] /= sj;
    }
    if let Some(h) = st.hessian.as_mut() {
        for i in 0..k {
            for j in 0..k {
                h[i * k + j] /= s[i] * s[j];
            }
        }
    }
}
