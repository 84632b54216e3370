// The key formula of each compression method, shown under its two-sentence explanation in the recipe form.
// Notation: W a weight matrix (rows = output channels), w one weight, X the layer's input activations,
// H = XᵀX, b bits, s a scale, z a zero point, Q(·) rounding to the method's grid.

export const FORMULAS = {
  rtn: 's = (max − min) / (2ᵇ − 1),  z = round(−min / s),  q = clamp(round(w / s) + z, 0, 2ᵇ − 1),  ' +
    'ŵ = s · (q − z)   (per group of g weights)',
  hqq: 'min over z of ‖W − s·(Q(W/s + z) − z)‖ₚᵖ with p = 0.7: alternate W_e = shrinkₚ(W − Ŵ), ' +
    'z = mean(Q − (W − W_e)/s)',
  gptq: 'for each column j: q_j = Q(w_j),  δ = (w_j − q_j) / [H⁻¹]_jj,  w_k −= δ · [H⁻¹]_jk for the columns k > j ' +
    'not yet quantised;  H = 2XᵀX + λI',
  awq: 's = mean|x|^α,  Ŵ = Q(W · diag(s)) · diag(s)⁻¹,  α = argmin ‖Ŵ X − W X‖²  (1/s folded into the previous op)',
  smoothquant: 'Y = (X · diag(s)⁻¹) · (diag(s) · W),  s_j = max|X_j|^α / max|W_j|^(1−α);  both sides then int8',
  llm_int8: 'X W = Σ_{j ∈ O} x_j w_j (16-bit) + Σ_{j ∉ O} Q₈(x_j) Q₈(w_j),  O = { j : max|X_j| ≥ threshold }',
  spqr: 'GPTQ with small groups; keep w in 16 bit when ((w − Q(w)) / [H⁻¹]_jj)² > threshold · its row mean: ' +
    'Ŵ = Q(W) + S, S sparse',
  owq: 'keep the input columns j with the largest H_jj · ‖ΔW_:j‖² in 16 bit (a share `keep`); GPTQ the rest',
  nf4: 'ŵ = absmax · NF4[argminᵢ |w / absmax − NF4ᵢ|],  NF4 = 16 quantiles of N(0, 1) scaled to [−1, 1]',
  fp8_e4m3: 'ŵ = s · E4M3(w / s),  s = max|w_row| / 448,  E4M3 = ±2^(e−7) · (1 + m/8)',
  fp8_e5m2: 'ŵ = s · E5M2(w / s),  s = max|w_row| / 57344,  E5M2 = ±2^(e−15) · (1 + m/4)',
  fp4: 'ŵ = s · E2M1(w / s),  E2M1 ∈ {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6},  s = max|w_group| / 6 (f16)',
  mxfp4: 'ŵ = 2^e · E2M1(w / 2^e),  e = ⌊log₂ max|w_32|⌋ − 2 shared by 32 weights (E8M0)',
};
