//! Choosing the next token from logits: greedy, or repetition penalty → top-k → top-p → temperature →
//! a seeded draw, the order llama.cpp's default sampler chain applies them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingSettings {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: usize,
    /// 1 keeps every token.
    pub top_p: f32,
    /// 1 is off; >1 discourages tokens seen in the last `repeat_last_n`.
    pub repetition_penalty: f32,
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        SamplingSettings {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

impl SamplingSettings {
    pub fn greedy() -> Self {
        SamplingSettings { temperature: 0.0, ..Default::default() }
    }
}

pub struct Sampler {
    pub settings: SamplingSettings,
    state: u64,
}

impl Sampler {
    pub fn new(settings: SamplingSettings) -> Sampler {
        let state = settings.seed ^ 0x9E37_79B9_7F4A_7C15;
        Sampler { settings, state }
    }

    /// splitmix64: small, seedable, identical natively and in wasm.
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let s = self.settings.clone();
        let mut logits = logits.to_vec();
        if s.repetition_penalty != 1.0 {
            let recent = &history[history.len().saturating_sub(s.repeat_last_n)..];
            for &id in recent {
                let l = &mut logits[id as usize];
                // As in CTRL / llama.cpp: shrink positive logits, grow negative ones.
                *l = if *l > 0.0 { *l / s.repetition_penalty } else { *l * s.repetition_penalty };
            }
        }
        if s.temperature <= 0.0 {
            return argmax(&logits);
        }
        let mut candidates: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        if s.top_k > 0 {
            candidates.truncate(s.top_k);
        }
        let probs = softmax(candidates.iter().map(|c| c.1));
        if s.top_p < 1.0 {
            let mut mass = 0.0;
            let keep = probs.iter().position(|p| {
                mass += p;
                mass >= s.top_p as f64
            });
            candidates.truncate(keep.map_or(candidates.len(), |k| k + 1));
        }
        let scaled: Vec<f32> = candidates.iter().map(|c| c.1 / s.temperature).collect();
        let probs = softmax(scaled.into_iter());
        let mut r = self.uniform();
        for (c, p) in candidates.iter().zip(&probs) {
            if r < *p {
                return c.0;
            }
            r -= p;
        }
        candidates.last().map_or(0, |c| c.0)
    }
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f64> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.map(|l| (l as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(SamplingSettings { temperature: 2.0, top_k: 1, ..Default::default() });
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 1.0, 5.0, 4.9], &[]), 2);
        }
    }

    #[test]
    fn repetition_penalty_moves_greedy_off_a_repeated_token() {
        let settings = SamplingSettings { repetition_penalty: 1.5, ..SamplingSettings::greedy() };
        assert_eq!(Sampler::new(settings).sample(&[1.0, 1.2, 0.0], &[1]), 0);
    }

    #[test]
    fn same_seed_same_draws_and_probabilities_are_respected() {
        let settings =
            SamplingSettings { temperature: 1.0, top_k: 0, top_p: 1.0, seed: 7, ..Default::default() };
        let logits = [0.0f32, (3.0f32).ln()];
        let draw = |n| {
            let mut s = Sampler::new(settings.clone());
            (0..n).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = draw(4000);
        assert_eq!(a, draw(4000));
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "p(1) = 0.75, drew {ones}");
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let settings =
            SamplingSettings { temperature: 1.0, top_k: 0, top_p: 0.5, seed: 1, ..Default::default() };
        let mut s = Sampler::new(settings);
        // p = [0.6, 0.3, 0.1]: only the first token reaches 0.5 on its own.
        let logits = [(0.6f32).ln(), (0.3f32).ln(), (0.1f32).ln()];
        assert!((0..200).all(|_| s.sample(&logits, &[]) == 0));
    }
}
