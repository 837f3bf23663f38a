//! Scores between sentence embeddings: cosine matrices and paraphrase mining.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::embed::pooling::l2_normalize;

/// One mined pair: its cosine similarity and the two sentences' indices, `i < j`.
pub type ScoredPair = (f32, usize, usize);

fn unit_vectors(vectors: &[Vec<f32>]) -> Vec<Vec<f32>> {
    vectors
        .iter()
        .map(|vector| {
            let mut unit = vector.clone();
            l2_normalize(&mut unit);
            unit
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `[[cos(a_i, b_j)]]`, like sentence-transformers' `cos_sim`: both sides are normalized first
/// (a zero vector stays zero and scores 0).
pub fn cosine_matrix(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let b = unit_vectors(b);
    unit_vectors(a)
        .iter()
        .map(|a| b.iter().map(|b| dot(a, b)).collect())
        .collect()
}

/// Every document's index and cosine similarity to `query` (the numbers [`cosine_matrix`]
/// gives), highest first; equal scores keep the documents' order.
pub fn rank(query: &[f32], documents: &[Vec<f32>]) -> Vec<(usize, f32)> {
    let scores = cosine_matrix(&[query.to_vec()], documents)
        .pop()
        .unwrap_or_default();
    let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Highest score first; equal scores by `(i, j)`, so the order never depends on the sort.
fn best_first(a: &ScoredPair, b: &ScoredPair) -> Ordering {
    b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2)))
}

/// A mined pair ordered worst first, so that a max-heap of them has its worst pair on top.
#[derive(Debug, Clone, Copy)]
struct Ranked(ScoredPair);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        best_first(&self.0, &other.0)
    }
}

/// sentence-transformers' `paraphrase_mining` over precomputed embeddings: every sentence `i`
/// keeps its `top_k` most similar sentences `j ≠ i`; the union of those pairs, each once as
/// `i < j`, sorted highest score first (ties by `(i, j)`), cut to `max_pairs`.
///
/// Unlike the library's priority-queue version, `max_pairs` keeps exactly the best pairs (the
/// library may return fewer), and ties are ordered deterministically.
///
/// Scores are computed one row at a time and only the best `max_pairs` distinct pairs are
/// held (a bounded heap), so beyond the embeddings memory is O(n + min(max_pairs, n·top_k)):
/// a pair that both of its sentences pick is offered once, by the lower index, which is known
/// from each earlier row's `top_k`-th best pair.
pub fn paraphrase_mining(
    embeddings: &[Vec<f32>],
    top_k: usize,
    max_pairs: usize,
) -> Vec<ScoredPair> {
    if top_k == 0 || max_pairs == 0 {
        return Vec::new();
    }
    let units = unit_vectors(embeddings);
    // Row `i`'s `top_k`-th best pair, or `None` when the row keeps every pair.
    let mut last_kept: Vec<Option<ScoredPair>> = Vec::with_capacity(units.len());
    let mut best: BinaryHeap<Ranked> = BinaryHeap::new();
    let mut row: Vec<ScoredPair> = Vec::with_capacity(units.len());
    for (i, a) in units.iter().enumerate() {
        row.clear();
        row.extend(
            units
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(j, b)| (dot(a, b), i.min(j), i.max(j))),
        );
        if top_k < row.len() {
            row.select_nth_unstable_by(top_k - 1, best_first);
            row.truncate(top_k);
            last_kept.push(Some(row[top_k - 1]));
        } else {
            last_kept.push(None);
        }
        for &pair in &row {
            let (_, low, high) = pair;
            // Both rows of a pair compute the same products in the same order, so row `low`
            // kept this very tuple if it ranks no worse than that row's last kept pair.
            let offered_by_low_row = high == i
                && last_kept[low].is_none_or(|last| best_first(&pair, &last) != Ordering::Greater);
            if offered_by_low_row {
                continue;
            }
            if best.len() < max_pairs {
                best.push(Ranked(pair));
            } else if best
                .peek()
                .is_some_and(|worst| best_first(&pair, &worst.0) == Ordering::Less)
            {
                best.pop();
                best.push(Ranked(pair));
            }
        }
    }
    best.into_sorted_vec()
        .into_iter()
        .map(|Ranked(pair)| pair)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn cosine_matrix_scores_every_pair() {
        let a = vec![vec![1.0, 0.0], vec![3.0, 4.0]];
        let b = vec![vec![2.0, 0.0], vec![0.0, 5.0], vec![-1.0, 0.0]];
        let matrix = cosine_matrix(&a, &b);
        assert_eq!(matrix.len(), 2);
        assert_eq!(matrix[0], vec![1.0, 0.0, -1.0]);
        let expected = [0.6, 0.8, -0.6];
        for (got, want) in matrix[1].iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{matrix:?}");
        }
    }

    #[test]
    fn cosine_matrix_of_empty_sides() {
        assert!(cosine_matrix(&[], &[vec![1.0]]).is_empty());
        assert_eq!(cosine_matrix(&[vec![1.0]], &[]), vec![Vec::<f32>::new()]);
    }

    #[test]
    fn ranking_is_by_cosine_highest_first_and_ties_keep_document_order() {
        let query = vec![1.0, 0.0];
        let documents = vec![
            vec![0.0, 1.0],
            vec![1.0, 1.0],
            vec![2.0, 0.0],
            vec![1.0, 1.0],
            vec![-1.0, 0.0],
        ];
        let ranked = rank(&query, &documents);
        let order: Vec<usize> = ranked.iter().map(|&(index, _)| index).collect();
        assert_eq!(order, [2, 1, 3, 0, 4]);
        let half = std::f32::consts::FRAC_1_SQRT_2;
        for (&(index, score), expected) in ranked.iter().zip([1.0, half, half, 0.0, -1.0]) {
            assert!((score - expected).abs() < 1e-6, "{index}: {score}");
            assert_eq!(
                score,
                cosine_matrix(std::slice::from_ref(&query), &documents)[0][index]
            );
        }
        assert!(rank(&query, &[]).is_empty());
    }

    #[test]
    fn zero_vectors_score_zero() {
        assert_eq!(
            cosine_matrix(&[vec![0.0, 0.0]], &[vec![1.0, 0.0]]),
            vec![vec![0.0]]
        );
    }

    /// Four points on a circle: 0 and 1 close, 2 and 3 close, the two groups far apart.
    fn circle() -> Vec<Vec<f32>> {
        [0.0f32, 0.2, 2.0, 2.3]
            .iter()
            .map(|angle| vec![angle.cos(), angle.sin()])
            .collect()
    }

    fn indices(pairs: &[ScoredPair]) -> Vec<(usize, usize)> {
        pairs.iter().map(|&(_, i, j)| (i, j)).collect()
    }

    #[test]
    fn top_k_keeps_each_sentence_s_nearest() {
        let pairs = paraphrase_mining(&circle(), 1, 100);
        assert_eq!(indices(&pairs), vec![(0, 1), (2, 3)]);
        let all = paraphrase_mining(&circle(), 100, 100);
        assert_eq!(all.len(), 6);
        assert_eq!(indices(&all)[..2], [(0, 1), (2, 3)]);
        assert!(all.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    #[test]
    fn max_pairs_keeps_the_best() {
        let pairs = paraphrase_mining(&circle(), 100, 1);
        assert_eq!(indices(&pairs), vec![(0, 1)]);
    }

    #[test]
    fn ties_are_ordered_by_index() {
        let cat = vec![1.0, 0.0];
        let market = vec![0.6, 0.8];
        let pairs = paraphrase_mining(&[cat.clone(), market, cat.clone(), cat], 100, 100);
        assert_eq!(
            indices(&pairs),
            vec![(0, 2), (0, 3), (2, 3), (0, 1), (1, 2), (1, 3)]
        );
    }

    #[test]
    fn fewer_than_two_sentences_have_no_pairs() {
        assert!(paraphrase_mining(&[], 100, 100).is_empty());
        assert!(paraphrase_mining(&[vec![1.0]], 100, 100).is_empty());
    }

    /// The plain definition: every row's `top_k`, all collected, deduplicated, sorted, cut.
    fn mined_by_definition(
        embeddings: &[Vec<f32>],
        top_k: usize,
        max_pairs: usize,
    ) -> Vec<ScoredPair> {
        let units = unit_vectors(embeddings);
        let mut pairs = Vec::new();
        for (i, a) in units.iter().enumerate() {
            let mut row: Vec<ScoredPair> = (0..units.len())
                .filter(|&j| j != i)
                .map(|j| (dot(a, &units[j]), i.min(j), i.max(j)))
                .collect();
            row.sort_by(best_first);
            row.truncate(top_k);
            pairs.extend(row);
        }
        pairs.sort_by(best_first);
        pairs.dedup_by_key(|&mut (_, i, j)| (i, j));
        pairs.truncate(max_pairs);
        pairs
    }

    /// Deterministic pseudo-random vectors on a coarse grid, so that many scores tie.
    fn grid_vectors(count: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % 5) as f32 - 2.0
        };
        (0..count)
            .map(|_| (0..3).map(|_| next()).collect())
            .collect()
    }

    #[test]
    fn bounded_mining_matches_the_definition() {
        for (count, seed) in [(2, 1), (3, 2), (7, 3), (20, 4), (41, 5)] {
            let vectors = grid_vectors(count, seed);
            for top_k in [1, 2, 3, 5, 100] {
                for max_pairs in [1, 2, 7, 30, 500_000] {
                    assert_eq!(
                        paraphrase_mining(&vectors, top_k, max_pairs),
                        mined_by_definition(&vectors, top_k, max_pairs),
                        "{count} sentences, top_k {top_k}, max_pairs {max_pairs}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_top_k_or_max_pairs_mine_nothing() {
        assert!(paraphrase_mining(&circle(), 0, 100).is_empty());
        assert!(paraphrase_mining(&circle(), 100, 0).is_empty());
    }

    #[derive(serde::Deserialize)]
    struct Embeddings {
        items: Vec<Item>,
    }

    #[derive(serde::Deserialize)]
    struct Item {
        text: String,
        embedding: Vec<f32>,
    }

    #[derive(serde::Deserialize)]
    struct Similarity {
        paraphrase_mining: Mining,
        cos_sim: CosSim,
    }

    #[derive(serde::Deserialize)]
    struct Mining {
        sentences: Vec<String>,
        top_k: usize,
        pairs: Vec<ScoredPair>,
    }

    #[derive(serde::Deserialize)]
    struct CosSim {
        a: Vec<String>,
        b: Vec<String>,
        matrix: Vec<Vec<f32>>,
    }

    fn reference<T: serde::de::DeserializeOwned>(file: &str) -> T {
        let path = format!("{}/../shared/reference/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).expect("the shared reference")).unwrap()
    }

    fn reference_vectors(texts: &[String]) -> Vec<Vec<f32>> {
        let embeddings: Embeddings = reference("all-minilm-l6-v2.embeddings.json");
        let by_text: HashMap<_, _> = embeddings
            .items
            .into_iter()
            .map(|item| (item.text, item.embedding))
            .collect();
        texts.iter().map(|text| by_text[text].clone()).collect()
    }

    #[test]
    fn mining_reproduces_sentence_transformers_pairs_and_order() {
        let similarity: Similarity = reference("all-minilm-l6-v2.similarity.json");
        let mining = similarity.paraphrase_mining;
        let vectors = reference_vectors(&mining.sentences);
        let pairs = paraphrase_mining(&vectors, mining.top_k, 500_000);
        assert_eq!(pairs.len(), mining.pairs.len());
        let expected: HashMap<_, _> = mining.pairs.iter().map(|&(s, i, j)| ((i, j), s)).collect();
        for (position, (&(score, i, j), &(_, ref_i, ref_j))) in
            pairs.iter().zip(&mining.pairs).enumerate()
        {
            let reference_score = expected[&(i, j)];
            assert!(
                (score - reference_score).abs() < 1e-4,
                "{i}, {j}: {score} vs {reference_score}"
            );
            // The reference is rounded to 6 decimals: near-ties may come in either order.
            let at_position = expected[&(ref_i, ref_j)];
            assert!(
                (reference_score - at_position).abs() < 1e-4,
                "position {position}"
            );
        }
    }

    #[test]
    fn cosine_matrix_reproduces_sentence_transformers_cos_sim() {
        let similarity: Similarity = reference("all-minilm-l6-v2.similarity.json");
        let cos = similarity.cos_sim;
        let matrix = cosine_matrix(&reference_vectors(&cos.a), &reference_vectors(&cos.b));
        for (row, expected_row) in matrix.iter().zip(&cos.matrix) {
            for (got, want) in row.iter().zip(expected_row) {
                assert!((got - want).abs() < 1e-4, "{got} vs {want}");
            }
        }
    }
}
