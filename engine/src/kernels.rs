//! The arithmetic: `x Wᵀ + b` with 8-bit block weights, and activations quantized per row to int16.
//!
//! Why our own kernel and not candle's Q8_0 `QMatMul` (which has wasm simd128 kernels too): candle
//! quantizes the activations to 8 bits as well (Q8_0 × Q8_0), which measured (numpy, the 31 reference
//! items) mean cosine 0.99944 / min 0.9983 against 0.99981 / 0.99956 for float or int16 activations;
//! its `QTensor` owns its blocks, so a wizer snapshot would hold the weights twice (embedded file +
//! parsed copy) or need files at pre-initialization, which `sbert-host wizer` does not give; and
//! candle-core 0.11.1 puts 137 crates into a wasm32-wasip2 build (gemm, rayon, zip, rand, memmap2, …;
//! `cargo tree -e normal`) where this crate needs 23. int16 activations keep the integer inner loop
//! (`i32x4.dot_i16x8_s`, 8 multiply-adds per instruction) at the accuracy of float activations.

// Without simd128 the wasm build runs the scalar kernel, measured 2.4× slower per request: refused.
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!(
    "build sbert-engine for wasm with `-C target-feature=+simd128` (see the Makefile's `portable`)"
);

/// Values per block: one float32 scale per 32 weights.
pub const BLOCK: usize = 32;

/// Largest int16 magnitude an activation is mapped to.
const ACTIVATION_LEVELS: f32 = 32767.0;

/// Rows of activations quantized to int16 with one float32 scale per row.
///
/// Why per row: int16 leaves 1/32767 of the row's largest value as the step, as fine as float for this
/// model (numpy, the 31 reference items: mean 0.999812 / min 0.999562, per block of 32: 0.999812 /
/// 0.999564), and a per-row scale comes out of the inner loop, which then multiplies each block's
/// integer sum by its weight scale only, shared by the rows computed together: measured ~15% faster
/// per request than a scale per block of activations.
#[derive(Debug, Default)]
pub struct QuantizedRows {
    cols: usize,
    quants: Vec<i16>,
    scales: Vec<f32>,
}

impl QuantizedRows {
    /// Quantizes `values` (`[rows, cols]`, row-major; `cols` a multiple of 32) into `self`, reusing its buffers.
    pub fn quantize(&mut self, values: &[f32], cols: usize) {
        debug_assert!(cols.is_multiple_of(BLOCK) && values.len().is_multiple_of(cols));
        self.cols = cols;
        self.quants.clear();
        self.scales.clear();
        for row in values.chunks_exact(cols) {
            let max = row.iter().fold(0f32, |max, v| max.max(v.abs()));
            let scale = max / ACTIVATION_LEVELS;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            self.scales.push(scale);
            self.quants
                .extend(row.iter().map(|v| (v * inverse).round_ties_even() as i16));
        }
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    fn row(&self, row: usize) -> (&[i16], f32) {
        (
            &self.quants[row * self.cols..(row + 1) * self.cols],
            self.scales[row],
        )
    }
}

/// `out[r, o] = Σ_c x[r, c] · W[o, c] + bias[o]`: `x` `[rows, in]`, `W` `[out, in]`, `out` `[rows, out]`.
pub fn linear(
    x: &QuantizedRows,
    weight: &crate::weights::BlockMatrix<'_>,
    bias: &[f32],
    out: &mut Vec<f32>,
) {
    assert_eq!(
        x.cols, weight.cols,
        "activation width must equal the weight's input width"
    );
    let (rows, outputs) = (x.rows(), weight.rows);
    out.clear();
    out.resize(rows * outputs, 0.0);
    // Weight row outermost: it is read from memory once and stays in L1 while every activation row
    // (a few KiB for short inputs) is multiplied with it, four rows at a time so that each block of
    // weights is widened, and its scale broadcast, once for four dot products.
    for o in 0..outputs {
        let (w_quants, w_scales) = weight.row(o);
        let mut r = 0;
        while r + 4 <= rows {
            let sums = block_dots([0, 1, 2, 3].map(|k| x.row(r + k)), w_quants, w_scales);
            for (k, sum) in sums.into_iter().enumerate() {
                out[(r + k) * outputs + o] = sum + bias[o];
            }
            r += 4;
        }
        for r in r..rows {
            let [sum] = block_dots([x.row(r)], w_quants, w_scales);
            out[r * outputs + o] = sum + bias[o];
        }
    }
}

/// Per activation row: `x_scale · Σ_blocks w_scale · Σ_{32 values} x_q · w_q`.
#[inline]
fn block_dots<const ROWS: usize>(
    rows: [(&[i16], f32); ROWS],
    w_quants: &[i8],
    w_scales: &[f32],
) -> [f32; ROWS] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd128::block_dots(rows, w_quants, w_scales)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        rows.map(|(x_quants, x_scale)| block_dot_scalar(x_quants, x_scale, w_quants, w_scales))
    }
}

/// The definition, and the kernel where no SIMD kernel is compiled (native builds run the tests with it).
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
fn block_dot_scalar(x_quants: &[i16], x_scale: f32, w_quants: &[i8], w_scales: &[f32]) -> f32 {
    let sum: f32 = x_quants
        .chunks_exact(BLOCK)
        .zip(w_quants.chunks_exact(BLOCK))
        .zip(w_scales)
        .map(|((xq, wq), ws)| {
            let sum: i32 = xq.iter().zip(wq).map(|(&x, &w)| x as i32 * w as i32).sum();
            sum as f32 * ws
        })
        .sum();
    sum * x_scale
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    use super::BLOCK;

    /// Per block: the 32 int8 weights widened to int16 and multiplied with the int16 activations by
    /// `i32x4.dot_i16x8_s` (at most 8 · 32767 · 127 per lane, far from overflow), then scaled in float.
    #[inline(always)]
    pub fn block_dots<const ROWS: usize>(
        rows: [(&[i16], f32); ROWS],
        w_quants: &[i8],
        w_scales: &[f32],
    ) -> [f32; ROWS] {
        let blocks = w_scales.len();
        assert!(w_quants.len() == blocks * BLOCK);
        for (x_quants, _) in rows {
            assert!(x_quants.len() == blocks * BLOCK);
        }
        let mut acc = [f32x4_splat(0.0); ROWS];
        for (b, &w_scale) in w_scales.iter().enumerate() {
            // SAFETY: the asserts above keep every load inside the slices.
            let w = unsafe { widened_weights(w_quants, b) };
            let scale = f32x4_splat(w_scale);
            for (acc, (x_quants, _)) in acc.iter_mut().zip(rows) {
                // SAFETY: as above.
                let x = unsafe { activations(x_quants, b) };
                let sum = i32x4_add(
                    i32x4_add(i32x4_dot_i16x8(x[0], w[0]), i32x4_dot_i16x8(x[1], w[1])),
                    i32x4_add(i32x4_dot_i16x8(x[2], w[2]), i32x4_dot_i16x8(x[3], w[3])),
                );
                *acc = f32x4_add(*acc, f32x4_mul(f32x4_convert_i32x4(sum), scale));
            }
        }
        let mut sums = [0f32; ROWS];
        for ((sum, acc), (_, x_scale)) in sums.iter_mut().zip(acc).zip(rows) {
            *sum = horizontal_sum(acc) * x_scale;
        }
        sums
    }

    /// Block `b`'s 32 int8 weights as four int16x8 vectors (`v128.load8x8_s`: load 8, sign-extend).
    ///
    /// SAFETY: `quants` holds at least `(b + 1) * 32` values. No alignment is needed.
    #[inline(always)]
    unsafe fn widened_weights(quants: &[i8], b: usize) -> [v128; 4] {
        let p = unsafe { quants.as_ptr().add(b * BLOCK) };
        [0, 8, 16, 24].map(|offset| unsafe { i16x8_load_extend_i8x8(p.add(offset)) })
    }

    /// Block `b`'s 32 int16 activations as four int16x8 vectors.
    ///
    /// SAFETY: `quants` holds at least `(b + 1) * 32` values.
    #[inline(always)]
    unsafe fn activations(quants: &[i16], b: usize) -> [v128; 4] {
        let p = unsafe { quants.as_ptr().add(b * BLOCK) };
        // Unaligned reads: rows start wherever the allocator and the row length put them.
        [0, 8, 16, 24].map(|offset| unsafe { (p.add(offset) as *const v128).read_unaligned() })
    }

    #[inline]
    fn horizontal_sum(v: v128) -> f32 {
        f32x4_extract_lane::<0>(v)
            + f32x4_extract_lane::<1>(v)
            + f32x4_extract_lane::<2>(v)
            + f32x4_extract_lane::<3>(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::BlockMatrix;

    /// Deterministic values in [-1, 1); with `outliers`, every 97th is 20 times larger, as in BERT's
    /// activations.
    fn values(count: usize, seed: u32, outliers: bool) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = (state >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0;
                if outliers && i % 97 == 0 {
                    v * 20.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// ggml's Q8_0 rule with float32 scales, as models/pack_portable.py writes it.
    fn quantize_weights(w: &[f32]) -> (Vec<i8>, Vec<f32>) {
        let mut quants = Vec::new();
        let mut scales = Vec::new();
        for block in w.chunks_exact(BLOCK) {
            let scale = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            scales.push(scale);
            quants.extend(block.iter().map(|v| {
                if scale > 0.0 {
                    (v / scale).round() as i8
                } else {
                    0
                }
            }));
        }
        (quants, scales)
    }

    #[test]
    fn int16_activations_round_trip_within_half_a_step() {
        let x = values(3 * 64, 1, true);
        let mut q = QuantizedRows::default();
        q.quantize(&x, 64);
        assert_eq!(q.rows(), 3);
        for (block, (quants, scale)) in x
            .chunks_exact(64)
            .zip(q.quants.chunks_exact(64).zip(&q.scales))
        {
            for (v, &qv) in block.iter().zip(quants) {
                // Half a quantization step, plus float rounding (~1e-7 relative, times up to 32767 steps).
                assert!(
                    (qv as f32 * scale - v).abs() <= 0.51 * scale,
                    "{v} -> {qv} x {scale}"
                );
            }
        }
    }

    #[test]
    fn an_all_zero_block_quantizes_to_zero() {
        let mut q = QuantizedRows::default();
        q.quantize(&[0.0; BLOCK], BLOCK);
        assert_eq!(q.scales, [0.0]);
        assert!(q.quants.iter().all(|&v| v == 0));
    }

    #[test]
    fn linear_matches_the_float_product_of_the_dequantized_operands() {
        let (rows, inputs, outputs) = (6, 96, 5); // one group of four rows, then two single rows
        let x = values(rows * inputs, 2, true);
        let w = values(outputs * inputs, 3, false);
        let bias = values(outputs, 4, false);
        let (quants, scales) = quantize_weights(&w);
        let weight = BlockMatrix {
            rows: outputs,
            cols: inputs,
            quants: &quants,
            scales: &scales,
        };
        let mut xq = QuantizedRows::default();
        xq.quantize(&x, inputs);
        let mut out = Vec::new();
        linear(&xq, &weight, &bias, &mut out);
        for r in 0..rows {
            for o in 0..outputs {
                let expected: f64 = (0..inputs)
                    .map(|c| {
                        let xv = xq.quants[r * inputs + c] as f64 * xq.scales[r] as f64;
                        let wv =
                            quants[o * inputs + c] as f64 * scales[(o * inputs + c) / BLOCK] as f64;
                        xv * wv
                    })
                    .sum::<f64>()
                    + bias[o] as f64;
                let got = out[r * outputs + o] as f64;
                assert!(
                    (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                    "[{r},{o}] {got} vs {expected}"
                );
                // And close to the unquantized product: 8-bit weights, 16-bit activations.
                let exact: f64 = (0..inputs)
                    .map(|c| x[r * inputs + c] as f64 * w[o * inputs + c] as f64)
                    .sum::<f64>()
                    + bias[o] as f64;
                assert!(
                    (got - exact).abs() < 0.02 * (1.0 + exact.abs()),
                    "[{r},{o}] {got} vs exact {exact}"
                );
            }
        }
    }
}
