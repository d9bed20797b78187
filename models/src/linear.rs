//! The linear model behind the intent classifier: TF-IDF over hashed features and
//! multinomial logistic regression (softmax) trained with Adagrad.
//!
//! Layout, chosen for classification speed (a sparse-dense product):
//! - `bucket_row` maps each hash bucket to a dense row, or [`NO_ROW`] for buckets never seen
//!   in training. Only seen buckets get weights, so memory is `rows × classes` floats rather
//!   than `2^hash_bits × classes`.
//! - `weights` is feature-major, `[rows][classes]`: one text touches one contiguous slice of
//!   `classes` floats per feature, which the compiler vectorises.
//!
//! TF-IDF: `tf = 1 + ln(count)` (from the featuriser) times smoothed
//! `idf = ln((1 + N) / (1 + df)) + 1`; buckets unseen in training get the largest idf and take
//! part in the L2 norm, so a text made of unknown words gets small dot products and thus a
//! low confidence, which is what out-of-scope rejection wants.
//!
//! Training is deterministic: examples are visited in an order shuffled by a seeded RNG,
//! and nothing else is random. The L2 penalty is applied lazily, to the rows an example
//! touches, as usual for sparse SGD.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::features::{Featurizer, SparseCounts};

/// Marker for a bucket with no row (unseen in training).
const NO_ROW: u32 = u32::MAX;
/// Keeps Adagrad's first steps bounded (a zero accumulator would make the first step exactly
/// `learning_rate` whatever the gradient's size).
const ADAGRAD_INIT: f32 = 0.1;
/// Logit gradients smaller than this are not applied (see the training loop).
const GRAD_EPS: f32 = 1e-3;

/// A TF-IDF vector restricted to rows known to the model: `(row, value)`.
pub(crate) type RowVector = Vec<(u32, f32)>;

/// Training hyper-parameters, taken from the public config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrainParams {
    pub(crate) epochs: usize,
    pub(crate) learning_rate: f32,
    pub(crate) l2: f32,
    pub(crate) seed: u64,
}

/// A trained softmax model over TF-IDF features. Immutable after [`LinearModel::fit`].
#[derive(Debug, Clone)]
pub(crate) struct LinearModel {
    featurizer: Featurizer,
    n_classes: usize,
    bucket_row: Vec<u32>,
    idf: Vec<f32>,
    unseen_idf: f32,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl LinearModel {
    /// Fits the model on featurised documents and their class indices (each `< n_classes`).
    /// `docs` and `labels` have the same length; callers guarantee at least one document.
    pub(crate) fn fit(
        featurizer: Featurizer,
        docs: &[&SparseCounts],
        labels: &[usize],
        n_classes: usize,
        params: TrainParams,
    ) -> Self {
        let mut bucket_row = vec![NO_ROW; featurizer.n_buckets()];
        let mut df: Vec<u32> = Vec::new();
        for doc in docs {
            for &(bucket, _) in doc.iter() {
                let slot = &mut bucket_row[bucket as usize];
                if *slot == NO_ROW {
                    *slot = df.len() as u32;
                    df.push(0);
                }
                df[*slot as usize] += 1;
            }
        }
        let n_docs = docs.len() as f32;
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((1.0 + n_docs) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        let mut model = Self {
            featurizer,
            n_classes,
            bucket_row,
            idf,
            unseen_idf: (1.0 + n_docs).ln() + 1.0,
            weights: vec![0.0; df.len() * n_classes],
            bias: vec![0.0; n_classes],
        };
        let vectors: Vec<RowVector> = docs.iter().map(|d| model.vectorize(d)).collect();
        model.train(&vectors, labels, params);
        model
    }

    fn train(&mut self, vectors: &[RowVector], labels: &[usize], params: TrainParams) {
        let c = self.n_classes;
        // Training layout: per row, the `c` weights followed by their `c` Adagrad
        // accumulators. The forward pass pulls a row's weights into cache and the update then
        // finds the accumulators on the adjacent cache lines, instead of missing on a second
        // array (the update was memory-bound with separate arrays).
        let stride = 2 * c;
        let rows = self.weights.len() / c.max(1);
        let mut state = vec![0.0f32; rows * stride];
        for row in state.chunks_exact_mut(stride) {
            row[c..].fill(ADAGRAD_INIT);
        }
        let mut bias_g2 = vec![ADAGRAD_INIT; c];
        let mut probs = vec![0.0f32; c];
        let mut active: Vec<(usize, f32)> = Vec::with_capacity(c);
        let mut order: Vec<usize> = (0..vectors.len()).collect();
        let mut rng = StdRng::seed_from_u64(params.seed);
        let lr = params.learning_rate;
        let l2 = params.l2;
        for _ in 0..params.epochs {
            order.shuffle(&mut rng);
            for &i in &order {
                let x = &vectors[i];
                probs.copy_from_slice(&self.bias);
                for &(row, value) in x {
                    let start = row as usize * stride;
                    for (o, &w) in probs.iter_mut().zip(&state[start..start + c]) {
                        *o += value * w;
                    }
                }
                softmax_in_place(&mut probs, 1.0);
                // Gradient of the cross-entropy w.r.t. the logits: p - onehot(y).
                if let Some(p) = probs.get_mut(labels[i]) {
                    *p -= 1.0;
                }
                // Classes whose gradient is negligible are skipped: after the first epoch
                // most probabilities are ~0, so this cuts the update cost by the number of
                // classes (77 for Banking77) to the handful still in contention. Their L2
                // decay is skipped with them, which is the lazy-regularisation trade-off.
                active.clear();
                active.extend(
                    probs
                        .iter()
                        .enumerate()
                        .filter(|(_, g)| g.abs() >= GRAD_EPS)
                        .map(|(k, g)| (k, *g)),
                );
                for &(k, g) in &active {
                    let acc = &mut bias_g2[k];
                    *acc += g * g;
                    self.bias[k] -= lr * g / acc.sqrt();
                }
                for &(row, value) in x {
                    let start = row as usize * stride;
                    let (w, acc) = state[start..start + stride].split_at_mut(c);
                    for &(k, g) in &active {
                        let grad = value * g + l2 * w[k];
                        acc[k] += grad * grad;
                        w[k] -= lr * grad / acc[k].sqrt();
                    }
                }
            }
        }
        for (dst, src) in self
            .weights
            .chunks_exact_mut(c)
            .zip(state.chunks_exact(stride))
        {
            dst.copy_from_slice(&src[..c]);
        }
    }

    /// TF-IDF, L2-normalised over all the text's features (unseen ones included), keeping
    /// only the rows the model knows.
    pub(crate) fn vectorize(&self, counts: &SparseCounts) -> RowVector {
        let mut out = Vec::with_capacity(counts.len());
        let mut norm2 = 0.0f32;
        for &(bucket, tf) in counts {
            let row = self
                .bucket_row
                .get(bucket as usize)
                .copied()
                .unwrap_or(NO_ROW);
            if row == NO_ROW {
                let v = tf * self.unseen_idf;
                norm2 += v * v;
            } else {
                let v = tf * self.idf[row as usize];
                norm2 += v * v;
                out.push((row, v));
            }
        }
        if norm2 > 0.0 {
            let inv = norm2.sqrt().recip();
            for (_, v) in &mut out {
                *v *= inv;
            }
        }
        out
    }

    /// Featurises already-normalised text and vectorises it.
    pub(crate) fn vectorize_text(&self, text: &str) -> (RowVector, bool) {
        let counts = self.featurizer.extract(text);
        let any = !counts.is_empty();
        (self.vectorize(&counts), any)
    }

    /// Writes the class scores `bias + x·W` into `out` (length `n_classes`).
    pub(crate) fn logits_into(&self, x: &[(u32, f32)], out: &mut [f32]) {
        let c = self.n_classes;
        out.copy_from_slice(&self.bias);
        for &(row, value) in x {
            let start = row as usize * c;
            for (o, &w) in out.iter_mut().zip(&self.weights[start..start + c]) {
                *o += value * w;
            }
        }
    }

    /// Number of classes.
    pub(crate) fn n_classes(&self) -> usize {
        self.n_classes
    }
}

/// Turns logits into probabilities in place, dividing by `temperature` first.
pub(crate) fn softmax_in_place(z: &mut [f32], temperature: f32) {
    let inv_t = temperature.recip();
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in z.iter_mut() {
        *v = ((*v - max) * inv_t).exp();
        sum += *v;
    }
    if sum > 0.0 && sum.is_finite() {
        for v in z.iter_mut() {
            *v /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let mut z = [1000.0, 1001.0, 999.0];
        softmax_in_place(&mut z, 1.0);
        let sum: f32 = z.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!(z[1] > z[0] && z[0] > z[2]);
        let mut hot = [1.0, 2.0];
        softmax_in_place(&mut hot, 0.1);
        assert!(hot[1] > 0.99);
    }
}
