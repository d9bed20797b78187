//! The character n-gram signal: TF-IDF vectors of [`char_grams`] compared by cosine.
//!
//! Every question and phrasing is its own row; an entry scores the best of its rows, because a
//! short colloquial query ("啥时候发货") resembles one phrasing closely and the entry's other
//! phrasings not at all. Weights follow the usual recipe (sublinear tf, smoothed idf, L2 norm),
//! so a score is a true cosine in 0..=1 and is comparable across queries — the confidence
//! relies on that.
//!
//! Search walks an inverted index (n-gram → rows), touching only rows that share an n-gram with
//! the query, so its cost follows the query's n-grams' posting lengths, not the size of the
//! knowledge base.

use std::collections::HashMap;

use crate::analyze::char_grams;

/// One n-gram's postings.
struct Postings {
    idf: f32,
    /// (row, weight in that row's unit vector).
    rows: Vec<(u32, f32)>,
}

/// The inverted index of character n-grams over all questions and phrasings.
pub(crate) struct CharIndex {
    grams: HashMap<u64, Postings>,
    /// Row → entry ordinal.
    row_entry: Vec<u32>,
    /// Row → multiplier of its cosine (answers count less than questions).
    row_weight: Vec<f32>,
    /// idf of an n-gram no row contains: it still weighs in the query's norm, so a query full
    /// of unknown text gets a low cosine everywhere.
    unseen_idf: f32,
}

fn counts(grams: Vec<u64>) -> HashMap<u64, u32> {
    let mut m: HashMap<u64, u32> = HashMap::with_capacity(grams.len());
    for g in grams {
        *m.entry(g).or_default() += 1;
    }
    m
}

fn tf(count: u32) -> f32 {
    1.0 + (count as f32).ln()
}

impl CharIndex {
    /// Indexes `rows`, each (entry ordinal, text, multiplier of the row's cosine).
    pub(crate) fn build<'a>(rows: impl IntoIterator<Item = (u32, &'a str, f32)>) -> CharIndex {
        let mut row_entry = Vec::new();
        let mut row_weight = Vec::new();
        let mut row_counts = Vec::new();
        let mut df: HashMap<u64, u32> = HashMap::new();
        for (entry, text, weight) in rows {
            let c = counts(char_grams(text));
            for g in c.keys() {
                *df.entry(*g).or_default() += 1;
            }
            row_entry.push(entry);
            row_weight.push(weight);
            row_counts.push(c);
        }
        let n = row_entry.len() as f32;
        let idf_of = |df: u32| ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0;
        let mut grams: HashMap<u64, Postings> = df
            .iter()
            .map(|(g, d)| {
                (
                    *g,
                    Postings {
                        idf: idf_of(*d),
                        rows: Vec::with_capacity(*d as usize),
                    },
                )
            })
            .collect();
        for (row, c) in row_counts.into_iter().enumerate() {
            let weights: Vec<(u64, f32)> = c
                .into_iter()
                .map(|(g, k)| (g, tf(k) * grams.get(&g).map_or(0.0, |p| p.idf)))
                .collect();
            let norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            if norm <= 0.0 {
                continue;
            }
            let row = u32::try_from(row).unwrap_or(u32::MAX);
            for (g, w) in weights {
                if let Some(p) = grams.get_mut(&g) {
                    p.rows.push((row, w / norm));
                }
            }
        }
        CharIndex {
            grams,
            row_entry,
            row_weight,
            unseen_idf: idf_of(0),
        }
    }

    /// Every entry sharing an n-gram with `query`, with its cosine (unordered: the caller
    /// only needs the top few, and a full sort would cost more than the scoring on large
    /// knowledge bases). Entries for which `allowed` says false are skipped.
    pub(crate) fn scores(&self, query: &str, allowed: &dyn Fn(u32) -> bool) -> HashMap<u32, f32> {
        let q: Vec<(Option<&Postings>, f32)> = counts(char_grams(query))
            .into_iter()
            .map(|(g, c)| {
                let p = self.grams.get(&g);
                (p, tf(c) * p.map_or(self.unseen_idf, |p| p.idf))
            })
            .collect();
        let norm = q.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm <= 0.0 {
            return HashMap::new();
        }
        let mut acc = vec![0f32; self.row_entry.len()];
        let mut touched: Vec<u32> = Vec::new();
        for (p, w) in q {
            let Some(p) = p else { continue };
            let w = w / norm;
            for &(row, dw) in &p.rows {
                let slot = &mut acc[row as usize];
                if *slot == 0.0 {
                    touched.push(row);
                }
                *slot += w * dw;
            }
        }
        let mut best: HashMap<u32, f32> = HashMap::with_capacity(touched.len());
        for row in touched {
            let entry = self.row_entry[row as usize];
            if !allowed(entry) {
                continue;
            }
            let s = acc[row as usize].min(1.0) * self.row_weight[row as usize];
            let e = best.entry(entry).or_insert(0.0);
            if s > *e {
                *e = s;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_row_wins_and_scores_are_cosines() {
        let idx = CharIndex::build([
            (0, "什么时候发货", 1.0),
            (0, "多久能发出", 1.0),
            (1, "怎么申请退货", 1.0),
            (2, "can I get an invoice", 1.0),
            (3, "发货", 0.1),
        ]);
        let s = idx.scores("啥时候发货", &|_| true);
        let best = s.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert_eq!(*best.0, 0);
        assert!(*best.1 > 0.3 && *best.1 <= 1.0, "{s:?}");
        assert!(s[&3] < 0.1, "answers count less: {s:?}");
        let exact = idx.scores("怎么申请退货", &|_| true);
        assert!((exact[&1] - 1.0).abs() < 1e-4, "{exact:?}");
        let filtered = idx.scores("啥时候发货", &|e| e != 0);
        assert!(!filtered.contains_key(&0));
        assert!(idx.scores("", &|_| true).is_empty());
        assert!(idx.scores("zzzz qqqq", &|_| true).is_empty());
    }
}
