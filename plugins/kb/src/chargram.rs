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

use std::cell::RefCell;
use std::collections::HashMap;

use crate::analyze::char_grams;

/// One n-gram's postings.
struct Postings {
    idf: f32,
    /// (row, weight in that row's unit vector), sorted by row (rows are added in order).
    rows: Vec<(u32, f32)>,
}

/// The inverted index of character n-grams over all questions and phrasings.
pub(crate) struct CharIndex {
    grams: HashMap<u64, Postings>,
    /// Row → entry ordinal.
    row_entry: Vec<u32>,
    /// Row → multiplier of its cosine (answers count less than questions).
    row_weight: Vec<f32>,
    /// Row → its unit vector sorted by n-gram, to re-score candidates exactly when the
    /// accumulation skipped common n-grams.
    forward: Vec<Vec<(u64, f32)>>,
    /// Entry → its rows.
    entry_rows: Vec<Vec<u32>>,
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
        let mut forward = Vec::with_capacity(row_counts.len());
        for (row, c) in row_counts.into_iter().enumerate() {
            let mut weights: Vec<(u64, f32)> = c
                .into_iter()
                .map(|(g, k)| (g, tf(k) * grams.get(&g).map_or(0.0, |p| p.idf)))
                .collect();
            let norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            if norm <= 0.0 {
                forward.push(Vec::new());
                continue;
            }
            weights.sort_unstable_by_key(|(g, _)| *g);
            for (_, w) in &mut weights {
                *w /= norm;
            }
            let row = u32::try_from(row).unwrap_or(u32::MAX);
            for &(g, w) in &weights {
                if let Some(p) = grams.get_mut(&g) {
                    p.rows.push((row, w));
                }
            }
            forward.push(weights);
        }
        let mut entry_rows: Vec<Vec<u32>> = Vec::new();
        for (row, &entry) in row_entry.iter().enumerate() {
            let e = entry as usize;
            if entry_rows.len() <= e {
                entry_rows.resize_with(e + 1, Vec::new);
            }
            entry_rows[e].push(u32::try_from(row).unwrap_or(u32::MAX));
        }
        CharIndex {
            grams,
            row_entry,
            row_weight,
            forward,
            entry_rows,
            unseen_idf: idf_of(0),
        }
    }

    /// Every entry sharing an n-gram with `query`, with its cosine (unordered: the caller
    /// only needs the top few). Entries for which `allowed` says false are skipped.
    ///
    /// Cost is bounded on large knowledge bases: n-grams are accumulated rarest first until
    /// [`POSTINGS_BUDGET`] postings were visited; if common n-grams had to be skipped, the
    /// best [`RESCORE_ROWS`] rows by partial score, plus every row of `also` (the word
    /// signal's candidates), are re-scored exactly from their stored vectors, and only those
    /// are returned. Small knowledge bases never reach the budget and are scored exactly.
    pub(crate) fn scores(
        &self,
        query: &str,
        also: &[u32],
        allowed: &dyn Fn(u32) -> bool,
    ) -> HashMap<u32, f32> {
        let mut q: Vec<(u64, Option<&Postings>, f32)> = counts(char_grams(query))
            .into_iter()
            .map(|(g, c)| {
                let p = self.grams.get(&g);
                (g, p, tf(c) * p.map_or(self.unseen_idf, |p| p.idf))
            })
            .collect();
        let norm = q.iter().map(|(_, _, w)| w * w).sum::<f32>().sqrt();
        if norm <= 0.0 {
            return HashMap::new();
        }
        for (_, _, w) in &mut q {
            *w /= norm;
        }
        q.sort_unstable_by_key(|(_, p, _)| p.map_or(0, |p| p.rows.len()));
        SCRATCH.with_borrow_mut(|acc| {
            // The accumulator is as long as the index has rows and all zero between calls
            // (every slot written below is listed in `touched` and cleared on the way out).
            if acc.len() != self.row_entry.len() {
                acc.clear();
                acc.resize(self.row_entry.len(), 0.0);
            }
            self.accumulate(&q, acc, also, allowed)
        })
    }

    /// The body of [`CharIndex::scores`] once the query vector `q` is built, with `acc` a
    /// zeroed accumulator of one slot per row; leaves `acc` zeroed again.
    fn accumulate(
        &self,
        q: &[(u64, Option<&Postings>, f32)],
        acc: &mut [f32],
        also: &[u32],
        allowed: &dyn Fn(u32) -> bool,
    ) -> HashMap<u32, f32> {
        let mut touched: Vec<u32> = Vec::new();
        let mut visited = 0usize;
        let mut skipped = false;
        for &(_, p, w) in q {
            let Some(p) = p else { continue };
            if visited + p.rows.len() > POSTINGS_BUDGET && !touched.is_empty() {
                skipped = true;
                break;
            }
            visited += p.rows.len();
            for &(row, dw) in &p.rows {
                let slot = &mut acc[row as usize];
                if *slot == 0.0 {
                    touched.push(row);
                }
                *slot += w * dw;
            }
        }
        let rows: Vec<(u32, f32)> = if skipped {
            let mut rescore: Vec<u32> = touched.clone();
            if rescore.len() > RESCORE_ROWS {
                rescore.select_nth_unstable_by(RESCORE_ROWS - 1, |a, b| {
                    acc[*b as usize].total_cmp(&acc[*a as usize])
                });
                rescore.truncate(RESCORE_ROWS);
            }
            for &e in also {
                if let Some(rs) = self.entry_rows.get(e as usize) {
                    rescore.extend_from_slice(rs);
                }
            }
            // A row listed twice scores the same twice; the per-entry maximum below makes the
            // repeat harmless, so no sort + dedup is needed.
            let table = QueryTable::new(q.iter().map(|&(g, _, w)| (g, w)));
            rescore
                .into_iter()
                .map(|row| (row, table.dot(&self.forward[row as usize])))
                .collect()
        } else {
            touched
                .iter()
                .map(|&row| (row, acc[row as usize]))
                .collect()
        };
        for &row in &touched {
            acc[row as usize] = 0.0;
        }
        let mut best: HashMap<u32, f32> = HashMap::with_capacity(rows.len().min(4096));
        for (row, cos) in rows {
            let entry = self.row_entry[row as usize];
            if cos <= 0.0 || !allowed(entry) {
                continue;
            }
            let s = cos.min(1.0) * self.row_weight[row as usize];
            let e = best.entry(entry).or_insert(0.0);
            if s > *e {
                *e = s;
            }
        }
        best
    }
}

/// Postings visited before common n-grams are left to exact re-scoring.
const POSTINGS_BUDGET: usize = 10_000;
/// Rows re-scored exactly when the budget was reached.
const RESCORE_ROWS: usize = 128;

thread_local! {
    /// Per-thread accumulator for [`CharIndex::scores`], reused across queries: a large
    /// knowledge base has tens of thousands of rows, and allocating and zeroing a slot for each
    /// on every query is work the touched-rows list makes unnecessary.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The query vector as an open-addressing hash table, for re-scoring rows exactly.
///
/// A row's dot product walks the row's n-grams in their stored (ascending) order and looks
/// each up here; the products are therefore summed in the same order as a merge of two sorted
/// vectors would, so scores are bit-identical to that merge, at a fraction of its branchy cost.
struct QueryTable {
    /// (n-gram, weight); `EMPTY` marks a free slot. Length is a power of two.
    slots: Vec<(u64, f32)>,
    mask: usize,
    /// Whether the query holds the n-gram whose hash equals `EMPTY` (then kept aside).
    empty_weight: Option<f32>,
}

const EMPTY: u64 = 0;

impl QueryTable {
    fn new(grams: impl ExactSizeIterator<Item = (u64, f32)>) -> QueryTable {
        // At most half full, so probe chains stay short.
        let cap = (grams.len() * 2).next_power_of_two().max(8);
        let mut t = QueryTable {
            slots: vec![(EMPTY, 0.0); cap],
            mask: cap - 1,
            empty_weight: None,
        };
        for (g, w) in grams {
            if g == EMPTY {
                t.empty_weight = Some(w);
                continue;
            }
            let mut i = Self::home(g) & t.mask;
            loop {
                let slot = &mut t.slots[i];
                if slot.0 == EMPTY || slot.0 == g {
                    // Query n-grams are distinct (they come from a count map).
                    *slot = (g, w);
                    break;
                }
                i = (i + 1) & t.mask;
            }
        }
        t
    }

    /// The n-grams are already FNV hashes; fold the high bits in so the low bits used for the
    /// slot depend on the whole value.
    fn home(g: u64) -> usize {
        (g ^ (g >> 32)) as usize
    }

    fn get(&self, g: u64) -> Option<f32> {
        if g == EMPTY {
            return self.empty_weight;
        }
        let mut i = Self::home(g) & self.mask;
        loop {
            let (k, w) = self.slots[i];
            if k == g {
                return Some(w);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Dot product with a row's unit vector (sorted by n-gram).
    fn dot(&self, row: &[(u64, f32)]) -> f32 {
        let mut sum = 0f32;
        for &(g, w) in row {
            if let Some(qw) = self.get(g) {
                sum += qw * w;
            }
        }
        sum
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
        let s = idx.scores("啥时候发货", &[], &|_| true);
        let best = s.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert_eq!(*best.0, 0);
        assert!(*best.1 > 0.3 && *best.1 <= 1.0, "{s:?}");
        assert!(s[&3] < 0.1, "answers count less: {s:?}");
        let exact = idx.scores("怎么申请退货", &[], &|_| true);
        assert!((exact[&1] - 1.0).abs() < 1e-4, "{exact:?}");
        let filtered = idx.scores("啥时候发货", &[], &|e| e != 0);
        assert!(!filtered.contains_key(&0));
        assert!(idx.scores("", &[], &|_| true).is_empty());
        assert!(idx.scores("zzzz qqqq", &[], &|_| true).is_empty());
    }

    #[test]
    fn query_table_dot_equals_a_sorted_merge() {
        // Includes the n-gram equal to the table's free-slot marker, and colliding homes.
        let q: Vec<(u64, f32)> = vec![(EMPTY, 0.5), (3, 0.25), (3 + (1 << 40), 0.125), (9, 1.0)];
        let row: Vec<(u64, f32)> = vec![(EMPTY, 0.5), (2, 0.3), (9, 0.2), (3 + (1 << 40), 0.4)];
        let mut row_sorted = row.clone();
        row_sorted.sort_unstable_by_key(|(g, _)| *g);
        let mut q_sorted = q.clone();
        q_sorted.sort_unstable_by_key(|(g, _)| *g);
        let mut merge = 0f32;
        for (g, w) in &row_sorted {
            if let Some((_, qw)) = q_sorted.iter().find(|(h, _)| h == g) {
                merge += qw * w;
            }
        }
        let table = QueryTable::new(q.into_iter());
        assert_eq!(table.dot(&row_sorted).to_bits(), merge.to_bits());
        assert_eq!(table.get(2), None);
        assert_eq!(QueryTable::new(std::iter::empty()).dot(&row_sorted), 0.0);
    }

    #[test]
    fn large_indexes_stay_within_budget_and_find_the_rare_match() {
        let texts: Vec<String> = (0..4000)
            .map(|i| format!("how do i change the order number {i} zq{i}x"))
            .collect();
        let idx = CharIndex::build(
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| (i as u32, t.as_str(), 1.0)),
        );
        let s = idx.scores("how do i change the order zq1234x", &[7], &|_| true);
        assert!(s.len() <= RESCORE_ROWS + 1, "{}", s.len());
        let best = s.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert_eq!(*best.0, 1234);
        assert!(
            s.contains_key(&7),
            "the word signal's candidates are scored too"
        );
        assert!(*best.1 > 0.5 && *best.1 <= 1.0, "{best:?}");
    }
}
