//! Token vectors → one sentence vector, as sentence-transformers does for all-MiniLM-L6-v2:
//! the mean over the tokens the attention mask keeps, then L2 normalization.
//!
//! The served graphs pool inside (output `sentence_embedding`), so the wasi-nn backend needs
//! none of this; [`mean_pool`] is for backends whose model returns token states (the portable
//! in-wasm one), and [`shorten`] serves OpenAI's `dimensions`.

/// Mean of the `hidden`-wide token vectors of each row of `states` (`[batch, seq, hidden]`,
/// row-major) over the positions where `mask` (`[batch, seq]`) is non-zero.
pub fn mean_pool(states: &[f32], mask: &[i64], seq: usize, hidden: usize) -> Vec<Vec<f32>> {
    if seq == 0 || hidden == 0 {
        return Vec::new();
    }
    states
        .chunks_exact(seq * hidden)
        .zip(mask.chunks_exact(seq))
        .map(|(row, row_mask)| {
            let mut sum = vec![0.0f32; hidden];
            let mut kept = 0usize;
            for (token, _) in row
                .chunks_exact(hidden)
                .zip(row_mask)
                .filter(|(_, &m)| m != 0)
            {
                kept += 1;
                sum.iter_mut().zip(token).for_each(|(s, &v)| *s += v);
            }
            // sentence-transformers clamps the divisor the same way, so an all-padding row is zeros.
            let count = (kept as f32).max(1e-9);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        })
        .collect()
}

/// Scales `vector` to unit length; a zero vector stays zero (the norm is clamped like torch's
/// `F.normalize`).
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|v| *v /= norm);
}

/// Keeps the first `dimensions` components of a unit vector and scales them back to unit length
/// (what OpenAI's `dimensions` asks for; `dimensions` is at most the vector's length).
pub fn shorten(mut vector: Vec<f32>, dimensions: usize) -> Vec<f32> {
    vector.truncate(dimensions);
    l2_normalize(&mut vector);
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_positions_do_not_count() {
        // batch 2, seq 3, hidden 2; the second row has one padding position holding junk.
        let states = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 99.0, 99.0,
        ];
        let mask = [1, 1, 1, 1, 1, 0];
        let pooled = mean_pool(&states, &mask, 3, 2);
        assert_eq!(pooled, vec![vec![3.0, 4.0], vec![20.0, 30.0]]);
    }

    #[test]
    fn a_fully_masked_row_pools_to_zero() {
        assert_eq!(mean_pool(&[5.0, 5.0], &[0], 1, 2), vec![vec![0.0, 0.0]]);
    }

    #[test]
    fn an_empty_batch_pools_to_nothing() {
        assert!(mean_pool(&[], &[], 0, 384).is_empty());
    }

    #[test]
    fn normalization_gives_unit_length() {
        let mut vector = vec![3.0, 4.0];
        l2_normalize(&mut vector);
        assert_eq!(vector, vec![0.6, 0.8]);
    }

    #[test]
    fn normalizing_zero_stays_finite() {
        let mut vector = vec![0.0; 4];
        l2_normalize(&mut vector);
        assert_eq!(vector, vec![0.0; 4]);
    }

    #[test]
    fn shortening_keeps_the_head_at_unit_length() {
        assert_eq!(shorten(vec![0.6, 0.0, 0.8], 2), vec![1.0, 0.0]);
        let short = shorten(vec![0.48, 0.64, 0.6], 2);
        assert!(
            (short[0] - 0.6).abs() < 1e-6 && (short[1] - 0.8).abs() < 1e-6,
            "{short:?}"
        );
        let full = vec![0.5; 4];
        assert_eq!(shorten(full.clone(), 4), full);
    }
}
