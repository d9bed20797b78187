//! One immutable, searchable snapshot of a knowledge base: a tantivy index (BM25 over words),
//! the character n-gram index, and the fusion of the two into ranked [`Hit`]s with a
//! confidence.
//!
//! Invariants: a snapshot never changes after [`Snapshot::build`]; hot reload builds a new one
//! and swaps it in whole, so a query always sees one consistent knowledge base. Entry ordinals
//! (positions in `entries`) are the join key between the two indexes; tantivy documents carry
//! theirs in the `ord` fast field because tantivy may spread documents over several segments.
//!
//! Ranking: each signal proposes candidates; each candidate's fused score is
//! `w · bm25/bm25_max + (1 − w) · cos/cos_max` (scores normalised by the best of the query, so
//! the weight means the same on every query). Confidence, by contrast, must be comparable across
//! queries, so it uses absolute measures: the cosine itself and the share of the query's
//! informative words (idf mass) the entry matched.

use std::collections::HashMap;
use std::sync::Arc;

use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{Language, Stemmer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::analyze::{WordTokenizer, normalize};
use crate::chargram::CharIndex;
use crate::topscore::TopByScore;
use crate::{Entry, KbError, Lang, Result, Synonyms};

/// How the signals are weighed. The defaults were chosen on two sets together, the
/// paraphrase fixtures in `tests/data` (English and Chinese) and StackFAQ (English), as the
/// setting that does well on both rather than the best on either (figures in the crate
/// README).
///
/// Deserialises from JSON with every field optional (the rest keep their defaults) and unknown
/// fields rejected, as `kefu kb eval --tuning` reads it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// Weight of normalised BM25 in the fused score; the character signal gets the rest.
    pub bm25_weight: f32,
    /// BM25 boost of the answer text relative to the questions. Answers are long and wordy,
    /// but a paraphrase often shares more words with the answer than with the question
    /// (StackFAQ: top-1 0.79 at 0.6, 0.80 at 1.0), while BM25's length normalisation keeps a
    /// long answer from outranking a matching question.
    pub answer_boost: f32,
    /// BM25 boost of synonym-expansion terms relative to the query's own words.
    pub synonym_boost: f32,
    /// Multiplier of the character similarity with an entry's answer (0: answers are not
    /// compared by characters at all).
    pub answer_char_weight: f32,
    /// Weight of the BM25 coverage in the confidence; the cosine gets the rest.
    pub confidence_bm25_weight: f32,
    /// Candidates taken from each signal before fusion.
    pub candidates: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            bm25_weight: 0.5,
            answer_boost: 1.0,
            synonym_boost: 0.7,
            answer_char_weight: 0.0,
            confidence_bm25_weight: 0.5,
            candidates: 30,
        }
    }
}

impl Tuning {
    /// Checks the ranges: weights in `0..=1`, boosts in `0..=100`, candidates in `1..=1000`.
    ///
    /// # Errors
    /// A message naming the first field out of range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let unit = [
            ("bm25_weight", self.bm25_weight),
            ("confidence_bm25_weight", self.confidence_bm25_weight),
        ];
        let boosts = [
            ("answer_boost", self.answer_boost),
            ("synonym_boost", self.synonym_boost),
            ("answer_char_weight", self.answer_char_weight),
        ];
        if let Some((name, _)) = unit.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(format!("{name} must be between 0 and 1"));
        }
        if let Some((name, _)) = boosts.iter().find(|(_, v)| !(0.0..=100.0).contains(v)) {
            return Err(format!("{name} must be between 0 and 100"));
        }
        if !(1..=1000).contains(&self.candidates) {
            return Err("candidates must be between 1 and 1000".to_owned());
        }
        Ok(())
    }
}

/// What to search for besides the query text.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Most hits to return.
    pub limit: usize,
    /// Only entries carrying at least one of these tags (empty: no restriction).
    pub tags: Vec<String>,
    /// Only entries in this language.
    pub lang: Option<Lang>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            limit: 5,
            tags: Vec::new(),
            lang: None,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The matching entry (with its source).
    pub entry: Arc<Entry>,
    /// The fused ranking score, 0..=1 relative to this query's best candidate.
    pub score: f32,
    /// How sure we are this entry answers the query, 0..=1, comparable across queries: flows
    /// fall back to a person or a "did you mean" below a threshold.
    pub confidence: f32,
    /// The raw BM25 score (0 when the word signal did not propose this entry).
    pub bm25: f32,
    /// The character n-gram cosine with the closest question or phrasing.
    pub char_sim: f32,
}

struct Fields {
    question: Field,
    answer: Field,
    tags: Field,
    lang: Field,
    ord: Field,
}

/// A built snapshot. See the module docs for its invariants.
pub(crate) struct Snapshot {
    pub(crate) entries: Vec<Arc<Entry>>,
    synonyms: Synonyms,
    tuning: Tuning,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// Kept so the searcher's segments stay open for the snapshot's life.
    _reader: IndexReader,
    searcher: Searcher,
    /// Per segment, the `ord` column.
    ords: Vec<Column<u64>>,
    chars: CharIndex,
    /// Normalised question/phrasing → entry, for the exact-match shortcut.
    exact: HashMap<String, u32>,
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn ord_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Snapshot {
    /// Indexes `entries` (ids are assumed unique: the loader checks).
    pub(crate) fn build(
        entries: Vec<Entry>,
        synonyms: Synonyms,
        tuning: Tuning,
    ) -> Result<Snapshot> {
        let mut sb = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WordTokenizer::NAME)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Fields {
            question: sb.add_text_field("question", text.clone()),
            answer: sb.add_text_field("answer", text),
            tags: sb.add_text_field("tags", STRING),
            lang: sb.add_text_field("lang", STRING),
            ord: sb.add_u64_field("ord", FAST),
        };
        let index = Index::create_in_ram(sb.build());
        index.tokenizers().register(WordTokenizer::NAME, analyzer());
        let mut writer: IndexWriter<TantivyDocument> =
            index
                .writer_with_num_threads(1, 32 << 20)
                .map_err(KbError::index("create the writer"))?;
        let mut exact = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            for q in e.questions() {
                doc.add_text(fields.question, q);
                exact
                    .entry(normalize(q).trim().to_owned())
                    .or_insert(ord_u32(i));
            }
            doc.add_text(fields.answer, &e.answer);
            for t in &e.tags {
                doc.add_text(fields.tags, t);
            }
            doc.add_text(fields.lang, e.lang.as_str());
            doc.add_u64(fields.ord, i as u64);
            writer
                .add_document(doc)
                .map_err(KbError::index("add a document"))?;
        }
        writer.commit().map_err(KbError::index("commit"))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(KbError::index("open a reader"))?;
        let searcher = reader.searcher();
        let ords = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("ord"))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(KbError::index("read the ord column"))?;
        let answer_weight = tuning.answer_char_weight;
        let chars = CharIndex::build(entries.iter().enumerate().flat_map(|(i, e)| {
            let answer =
                (answer_weight > 0.0).then_some((ord_u32(i), e.answer.as_str(), answer_weight));
            e.questions()
                .map(move |q| (ord_u32(i), q, 1.0))
                .chain(answer)
        }));
        Ok(Snapshot {
            entries: entries.into_iter().map(Arc::new).collect(),
            synonyms,
            tuning,
            fields,
            analyzer: analyzer(),
            _reader: reader,
            searcher,
            ords,
            chars,
            exact,
        })
    }

    /// The analysed (segmented, stemmed) terms of `text`, without repeats.
    fn terms(&self, text: &str) -> Vec<String> {
        let mut a = self.analyzer.clone();
        let mut stream = a.token_stream(text);
        let mut out: Vec<String> = Vec::new();
        while let Some(t) = stream.next() {
            if !out.contains(&t.text) {
                out.push(t.text.clone());
            }
        }
        out
    }

    /// tantivy's BM25 idf of `term` in the question field.
    fn idf(&self, term: &str) -> f32 {
        let n = self.searcher.num_docs() as f32;
        let df = self
            .searcher
            .doc_freq(&Term::from_field_text(self.fields.question, term))
            .unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn allowed(&self, opts: &SearchOptions, ord: u32) -> bool {
        let Some(e) = self.entries.get(ord as usize) else {
            return false;
        };
        opts.lang.is_none_or(|l| e.lang == l)
            && (opts.tags.is_empty() || e.tags.iter().any(|t| opts.tags.contains(t)))
    }

    fn word_query(
        &self,
        own: &[String],
        expansion: &[String],
        opts: &SearchOptions,
    ) -> Box<dyn Query> {
        let t = &self.tuning;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut add = |term: &str, boost: f32| {
            for (field, b) in [
                (self.fields.question, 1.0),
                (self.fields.answer, t.answer_boost),
            ] {
                let q = TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                );
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(q), boost * b)),
                ));
            }
        };
        for term in own {
            add(term, 1.0);
        }
        for term in expansion {
            add(term, t.synonym_boost);
        }
        let text: Box<dyn Query> = Box::new(BooleanQuery::new(should));
        if opts.tags.is_empty() && opts.lang.is_none() {
            return text;
        }
        // Filters must restrict, not score: wrap them in a zero constant score.
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
        if !opts.tags.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = opts
                .tags
                .iter()
                .map(|tag| {
                    let q = TermQuery::new(
                        Term::from_field_text(self.fields.tags, tag),
                        IndexRecordOption::Basic,
                    );
                    (Occur::Should, Box::new(q) as Box<dyn Query>)
                })
                .collect();
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 0.0)),
            ));
        }
        if let Some(lang) = opts.lang {
            let q = TermQuery::new(
                Term::from_field_text(self.fields.lang, lang.as_str()),
                IndexRecordOption::Basic,
            );
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(q), 0.0)),
            ));
        }
        Box::new(BooleanQuery::new(must))
    }

    /// BM25 candidates as entry ordinal → score. Collected exhaustively rather than with
    /// tantivy's block-WAND (see [`TopByScore`] for why that is faster on FAQ queries).
    fn bm25(&self, query: &dyn Query) -> Result<HashMap<u32, f32>> {
        let top = self
            .searcher
            .search(query, &TopByScore::new(self.tuning.candidates))
            .map_err(KbError::index("search"))?;
        Ok(top
            .into_iter()
            .filter_map(|(score, addr)| {
                let ord = self
                    .ords
                    .get(addr.segment_ord as usize)?
                    .first(addr.doc_id)?;
                Some((u32::try_from(ord).ok()?, score))
            })
            .collect())
    }

    /// Searches; hits are best first, at most `opts.limit`.
    pub(crate) fn search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Hit>> {
        // Entry tags are stored lower-case; accept filters in any case.
        let lowered;
        let opts = if opts.tags.iter().any(|t| t.chars().any(char::is_uppercase)) {
            lowered = SearchOptions {
                tags: opts.tags.iter().map(|t| t.to_lowercase()).collect(),
                ..opts.clone()
            };
            &lowered
        } else {
            opts
        };
        let norm = normalize(query);
        let norm = norm.trim();
        if norm.is_empty() || opts.limit == 0 || self.entries.is_empty() {
            return Ok(Vec::new());
        }
        let t = &self.tuning;
        let own = self.terms(query);
        let mut expansion: Vec<String> = Vec::new();
        for syn in self.synonyms.expand(query) {
            for term in self.terms(&syn) {
                if !own.contains(&term) && !expansion.contains(&term) {
                    expansion.push(term);
                }
            }
        }
        let bm25 = if own.is_empty() && expansion.is_empty() {
            HashMap::new()
        } else {
            self.bm25(self.word_query(&own, &expansion, opts).as_ref())?
        };
        let bm25_entries: Vec<u32> = bm25.keys().copied().collect();
        let chars = self
            .chars
            .scores(query, &bm25_entries, &|e| self.allowed(opts, e));

        // The idf mass a perfect question match would score (tf 1, average length).
        let ideal: f32 = own.iter().map(|w| self.idf(w)).sum();
        let bm25_max = bm25.values().copied().fold(0.0f32, f32::max);
        let cos_max = chars.values().copied().fold(0.0f32, f32::max);
        let mut candidates: Vec<u32> = bm25.keys().copied().collect();
        let mut by_cos: Vec<(u32, f32)> = chars.iter().map(|(k, v)| (*k, *v)).collect();
        let by_best = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if by_cos.len() > t.candidates && t.candidates > 0 {
            by_cos.select_nth_unstable_by(t.candidates - 1, by_best);
            by_cos.truncate(t.candidates);
        }
        for (e, _) in by_cos {
            if !bm25.contains_key(&e) {
                candidates.push(e);
            }
        }
        let exact = self
            .exact
            .get(norm)
            .copied()
            .filter(|e| self.allowed(opts, *e));
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .filter_map(|ord| {
                let entry = self.entries.get(ord as usize)?.clone();
                let b = bm25.get(&ord).copied().unwrap_or(0.0);
                let c = chars.get(&ord).copied().unwrap_or(0.0);
                let bn = if bm25_max > 0.0 { b / bm25_max } else { 0.0 };
                let cn = if cos_max > 0.0 { c / cos_max } else { 0.0 };
                let mut score = t.bm25_weight * bn + (1.0 - t.bm25_weight) * cn;
                let coverage = if ideal > 0.0 {
                    (b / ideal).min(1.0)
                } else {
                    0.0
                };
                let mut confidence =
                    t.confidence_bm25_weight * coverage + (1.0 - t.confidence_bm25_weight) * c;
                if exact == Some(ord) {
                    score = score.max(1.0);
                    confidence = 1.0;
                }
                Some(Hit {
                    entry,
                    score: score.clamp(0.0, 1.0),
                    confidence: confidence.clamp(0.0, 1.0),
                    bm25: b,
                    char_sim: c,
                })
            })
            .collect();
        hits.sort_unstable_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.confidence.total_cmp(&a.confidence))
                .then(a.entry.id.cmp(&b.entry.id))
        });
        hits.truncate(opts.limit);
        Ok(hits)
    }
}
