//! BERT's forward pass for one unpadded sequence: embeddings, encoder layers (self-attention, erf GELU
//! feed-forward, post-LayerNorm residuals), then mean pooling and L2 normalisation.

use crate::kernels::{linear, QuantizedRows, BLOCK};
use crate::weights::{EncoderLayer, LayerNorm, Linear, Weights};

/// Buffers reused across layers (and across calls by the same [`Scratch`]).
#[derive(Debug, Default)]
pub struct Scratch {
    quantized: QuantizedRows,
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
}

/// The last hidden state `[ids.len(), hidden]` of a sequence of valid token ids.
pub fn hidden_states(weights: &Weights<'_>, ids: &[u32], scratch: &mut Scratch) -> Vec<f32> {
    let h = weights.config.hidden;
    let mut hidden = Vec::with_capacity(ids.len() * h);
    for (position, &id) in ids.iter().enumerate() {
        let (quants, scales) = weights.word_embeddings.row(id as usize);
        let positions = &weights.position_embeddings[position * h..(position + 1) * h];
        for (c, (&q, (&p, &t))) in quants
            .iter()
            .zip(positions.iter().zip(weights.token_type_embedding))
            .enumerate()
        {
            hidden.push(q as f32 * scales[c / BLOCK] + p + t);
        }
    }
    layer_norm(
        &mut hidden,
        &weights.embeddings_norm,
        weights.config.layer_norm_eps,
    );
    for layer in &weights.layers {
        encoder_layer(weights, layer, &mut hidden, scratch);
    }
    hidden
}

fn encoder_layer(
    weights: &Weights<'_>,
    layer: &EncoderLayer<'_>,
    hidden: &mut [f32],
    s: &mut Scratch,
) {
    let eps = weights.config.layer_norm_eps;
    let h = weights.config.hidden;
    s.quantized.quantize(hidden, h);
    linear_into(&s.quantized, &layer.query, &mut s.query);
    linear_into(&s.quantized, &layer.key, &mut s.key);
    linear_into(&s.quantized, &layer.value, &mut s.value);
    attention(weights, s);
    s.quantized.quantize(&s.context, h);
    linear_into(&s.quantized, &layer.attention_output, &mut s.projected);
    add_and_norm(hidden, &s.projected, &layer.attention_norm, eps);

    s.quantized.quantize(hidden, h);
    linear_into(&s.quantized, &layer.intermediate, &mut s.intermediate);
    s.intermediate.iter_mut().for_each(|v| *v = gelu(*v));
    s.quantized
        .quantize(&s.intermediate, weights.config.intermediate);
    linear_into(&s.quantized, &layer.output, &mut s.projected);
    add_and_norm(hidden, &s.projected, &layer.output_norm, eps);
}

fn linear_into(x: &QuantizedRows, layer: &Linear<'_>, out: &mut Vec<f32>) {
    linear(x, &layer.weight, layer.bias, out);
}

/// Scaled dot-product attention per head over `s.query`, `s.key`, `s.value` (`[seq, hidden]`, heads
/// side by side) into `s.context`. No mask: the sequence is unpadded.
fn attention(weights: &Weights<'_>, s: &mut Scratch) {
    let (h, head_size) = (weights.config.hidden, weights.config.head_size());
    let seq = s.query.len() / h;
    let scale = 1.0 / (head_size as f32).sqrt();
    s.context.clear();
    s.context.resize(seq * h, 0.0);
    s.scores.resize(seq, 0.0);
    for head in 0..weights.config.heads {
        let columns = head * head_size..(head + 1) * head_size;
        for i in 0..seq {
            let query = &s.query[i * h..][columns.clone()];
            for (j, score) in s.scores.iter_mut().enumerate() {
                let key = &s.key[j * h..][columns.clone()];
                *score = dot(query, key) * scale;
            }
            softmax(&mut s.scores);
            let context = &mut s.context[i * h..][columns.clone()];
            for (j, &p) in s.scores.iter().enumerate() {
                let value = &s.value[j * h..][columns.clone()];
                context.iter_mut().zip(value).for_each(|(c, v)| *c += p * v);
            }
        }
    }
}

/// Four partial sums, so that the compiler keeps them in one SIMD register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 4];
    for (a, b) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for k in 0..4 {
            sums[k] += a[k] * b[k];
        }
    }
    let tail: f32 = a
        .chunks_exact(4)
        .remainder()
        .iter()
        .zip(b.chunks_exact(4).remainder())
        .map(|(a, b)| a * b)
        .sum();
    sums.iter().sum::<f32>() + tail
}

fn softmax(scores: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut total = 0.0;
    for v in scores.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    scores.iter_mut().for_each(|v| *v /= total);
}

/// BERT's exact GELU: `x · ½ · (1 + erf(x / √2))`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf` as `x · P(x²) / Q(x²)` on `x` clamped to [-4, 4] (where erf is 1 within float precision),
/// with coefficients fitted by `scripts/fit_erf.py` (at most 4.4e-7 from the exact erf). Why not
/// `libm::erff`: it branches per value, so the GELU loop ran scalar, about 12% of a sentence's time
/// in the portable build; this form has no branch and compiles to simd128. Its error is far below
/// the int16 step the GELU's output is quantized to next (docs/design-notes.md: the measurement).
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        1.921_732_3e-8,
        -1.990_303_2e-6,
        1.555_316_8e-4,
        4.292_835e-3,
        5.243_276_4e-2,
        0.213_939_56,
        1.128_378_6,
    ];
    const Q: [f32; 5] = [
        1.097_985_9e-3,
        1.555_064_3e-2,
        0.120_797_48,
        0.522_926_7,
        1.0,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = P.iter().fold(0.0, |acc, &c| acc * x2 + c);
    let q = Q.iter().fold(0.0, |acc, &c| acc * x2 + c);
    x * p / q
}

/// `hidden = LayerNorm(hidden + residual)`, row by row.
fn add_and_norm(hidden: &mut [f32], residual: &[f32], norm: &LayerNorm<'_>, eps: f32) {
    hidden.iter_mut().zip(residual).for_each(|(h, r)| *h += r);
    layer_norm(hidden, norm, eps);
}

fn layer_norm(rows: &mut [f32], norm: &LayerNorm<'_>, eps: f32) {
    let width = norm.gamma.len();
    for row in rows.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inverse = 1.0 / (variance + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(norm.gamma).zip(norm.beta) {
            *v = (*v - mean) * inverse * g + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut scores = [1.0, 3.0, 2.0, -50.0];
        softmax(&mut scores);
        assert!((scores.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(scores[1] > scores[2] && scores[2] > scores[0] && scores[0] > scores[3]);
    }

    #[test]
    fn gelu_matches_known_values() {
        // GELU(1) = Φ(1) = 0.841344746..., GELU(-1) = -(1 - Φ(1)), GELU(0) = 0.
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn erf_matches_libm_within_half_a_millionth() {
        for i in -10_000..=10_000 {
            let x = i as f32 / 1000.0;
            let (got, exact) = (erf(x), libm::erff(x));
            assert!((got - exact).abs() <= 5e-7, "erf({x}): {got} vs {exact}");
        }
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance_before_the_affine_part() {
        let gamma = [1.0; 4];
        let beta = [0.0; 4];
        let mut row = [1.0, 2.0, 3.0, 4.0];
        layer_norm(
            &mut row,
            &LayerNorm {
                gamma: &gamma,
                beta: &beta,
            },
            1e-12,
        );
        let mean: f32 = row.iter().sum::<f32>() / 4.0;
        let variance: f32 = row.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (variance - 1.0).abs() < 1e-5);
    }

    #[test]
    fn dot_handles_lengths_that_are_not_multiples_of_four() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(dot(&a, &b), 56.0);
    }
}
