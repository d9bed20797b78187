//! [`EmotionHistory`]: a session's recent emotions and the trend features policies use.
//!
//! The history is persisted with the session's snapshot, which is rewritten on every turn, so
//! its encoding is compact: one string of space-separated turns, each a label letter (`a`nger,
//! an`x`iety, `s`adness, `j`oy, `n`eutral) and the intensity in hundredths, oldest first:
//! `"n0 x35 a82 a100"` (about 4 bytes a turn instead of ~35 for a JSON object; the encoding is
//! exact because intensities are kept rounded to 0.01). Loading also accepts the earlier shape,
//! a JSON array of `{"label":"anger","intensity":0.82}`, so sessions stored before still load.
//! Either way, a longer history keeps its last [`HISTORY_LEN`] turns and intensities are
//! clamped to 0..=1, so stored data can never break the bound; an unreadable turn is an error
//! (the snapshot is corrupt), never a panic.
//!
//! Trend features ([`EmotionHistory::trend`]), over "negativity" per turn: the intensity
//! for anger/anxiety/sadness, minus the intensity for joy, 0 for neutral:
//! - `negative_streak`: negative turns in a row at the end (e.g. 3 → soothe, then a human);
//! - `anger_streak`: angry turns in a row at the end;
//! - `slope`: least-squares slope of negativity over the last [`SLOPE_WINDOW`] turns, per
//!   turn (> 0: getting worse);
//! - `peak`: the highest negativity in the history (0 when never negative);
//! - `last_label` / `last_intensity`: the latest turn.

use std::collections::VecDeque;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Emotion, EmotionLabel};

/// How many turns a history keeps.
pub const HISTORY_LEN: usize = 20;
/// How many recent turns the slope is fitted on.
pub const SLOPE_WINDOW: usize = 5;

/// One remembered turn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmotionTurn {
    /// The turn's label.
    pub label: EmotionLabel,
    /// Its intensity, 0..=1, rounded to two decimals.
    pub intensity: f32,
}

impl EmotionTurn {
    /// Signed negativity: + for negative labels, - for joy, 0 for neutral.
    pub fn negativity(&self) -> f32 {
        match self.label {
            l if l.is_negative() => self.intensity,
            EmotionLabel::Joy => -self.intensity,
            _ => 0.0,
        }
    }
}

/// The last [`HISTORY_LEN`] turns' emotions of a session, oldest first. Serialised in the
/// compact string form described in the module docs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmotionHistory {
    turns: VecDeque<EmotionTurn>,
}

impl From<Vec<EmotionTurn>> for EmotionHistory {
    fn from(turns: Vec<EmotionTurn>) -> Self {
        let mut h = Self::default();
        for t in turns {
            h.push_turn(t.label, t.intensity);
        }
        h
    }
}

impl From<EmotionHistory> for Vec<EmotionTurn> {
    fn from(h: EmotionHistory) -> Self {
        h.turns.into()
    }
}

/// The letter of a label in the compact form.
fn label_letter(label: EmotionLabel) -> char {
    match label {
        EmotionLabel::Anger => 'a',
        EmotionLabel::Anxiety => 'x',
        EmotionLabel::Sadness => 's',
        EmotionLabel::Joy => 'j',
        EmotionLabel::Neutral => 'n',
    }
}

fn letter_label(letter: u8) -> Option<EmotionLabel> {
    Some(match letter {
        b'a' => EmotionLabel::Anger,
        b'x' => EmotionLabel::Anxiety,
        b's' => EmotionLabel::Sadness,
        b'j' => EmotionLabel::Joy,
        b'n' => EmotionLabel::Neutral,
        _ => return None,
    })
}

impl EmotionHistory {
    /// The compact form: `"n0 x35 a82"` (see the module docs).
    fn to_compact(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(self.turns.len() * 4);
        for (i, t) in self.turns.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            // Intensities are kept rounded to hundredths in 0..=1, so this is exact and 0..=100.
            let hundredths = (t.intensity * 100.0).round() as u32;
            // Writing into a String cannot fail.
            let _ = write!(out, "{}{hundredths}", label_letter(t.label));
        }
        out
    }

    /// Parses the compact form; a longer history keeps its last [`HISTORY_LEN`] turns.
    fn from_compact(s: &str) -> std::result::Result<Self, CompactError> {
        let mut h = Self::default();
        for token in s.split_ascii_whitespace() {
            let bad = || CompactError {
                token: token.chars().take(16).collect(),
            };
            let (&letter, digits) = token.as_bytes().split_first().ok_or_else(bad)?;
            let label = letter_label(letter).ok_or_else(bad)?;
            // At most three digits: the value is 0..=100 (larger ones are clamped below).
            if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let hundredths = digits
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            h.push_turn(label, hundredths as f32 / 100.0);
        }
        Ok(h)
    }
}

/// A compact emotion history with an unreadable turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable emotion turn `{token}` (expected a label letter a/x/s/j/n and 0..=100)")]
struct CompactError {
    /// The turn as stored (at most 16 characters of it).
    token: String,
}

impl Serialize for EmotionHistory {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_compact())
    }
}

impl<'de> Deserialize<'de> for EmotionHistory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        // `deserialize_any`: the string is the current form, a sequence the earlier one. It also
        // works through serde's buffered content (the state is `#[serde(flatten)]`ed around it).
        deserializer.deserialize_any(HistoryVisitor)
    }
}

struct HistoryVisitor;

impl<'de> Visitor<'de> for HistoryVisitor {
    type Value = EmotionHistory;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an emotion history: a string like \"n0 a82\" or a list of turns")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
        EmotionHistory::from_compact(s).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut h = EmotionHistory::default();
        while let Some(t) = seq.next_element::<EmotionTurn>()? {
            h.push_turn(t.label, t.intensity);
        }
        Ok(h)
    }
}

/// The trend features of a history; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmotionTrend {
    /// Negative turns in a row, ending with the latest.
    pub negative_streak: usize,
    /// Angry turns in a row, ending with the latest.
    pub anger_streak: usize,
    /// Slope of negativity per turn over the last [`SLOPE_WINDOW`] turns (> 0: worse).
    pub slope: f32,
    /// Highest negativity seen (0..=1).
    pub peak: f32,
    /// The latest turn's label (`None` for an empty history).
    pub last_label: Option<EmotionLabel>,
    /// The latest turn's intensity (0 for an empty history).
    pub last_intensity: f32,
    /// Number of turns remembered.
    pub turns: usize,
}

impl EmotionHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a turn's emotion, forgetting the oldest beyond [`HISTORY_LEN`].
    pub fn push(&mut self, emotion: &Emotion) {
        self.push_turn(emotion.label, emotion.intensity);
    }

    /// Records a turn from its parts (intensity clamped to 0..=1; NaN counts as 0).
    pub fn push_turn(&mut self, label: EmotionLabel, intensity: f32) {
        let intensity = if intensity.is_nan() {
            0.0
        } else {
            (intensity.clamp(0.0, 1.0) * 100.0).round() / 100.0
        };
        if self.turns.len() == HISTORY_LEN {
            self.turns.pop_front();
        }
        self.turns.push_back(EmotionTurn { label, intensity });
    }

    /// The remembered turns, oldest first.
    pub fn turns(&self) -> impl Iterator<Item = &EmotionTurn> {
        self.turns.iter()
    }

    /// Number of remembered turns.
    pub fn len(&self) -> usize {
        self.turns.len()
    }

    /// Whether no turn is remembered.
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// Forgets everything (e.g. after a hand-over to a human).
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// The trend features.
    pub fn trend(&self) -> EmotionTrend {
        let streak = |pred: fn(&EmotionTurn) -> bool| {
            self.turns.iter().rev().take_while(|t| pred(t)).count()
        };
        let last = self.turns.back();
        EmotionTrend {
            negative_streak: streak(|t| t.label.is_negative()),
            anger_streak: streak(|t| t.label == EmotionLabel::Anger),
            slope: self.slope(),
            peak: self
                .turns
                .iter()
                .map(EmotionTurn::negativity)
                .fold(0.0, f32::max),
            last_label: last.map(|t| t.label),
            last_intensity: last.map_or(0.0, |t| t.intensity),
            turns: self.turns.len(),
        }
    }

    fn slope(&self) -> f32 {
        let n = self.turns.len().min(SLOPE_WINDOW);
        if n < 2 {
            return 0.0;
        }
        let ys: Vec<f32> = self
            .turns
            .iter()
            .skip(self.turns.len() - n)
            .map(EmotionTurn::negativity)
            .collect();
        let mean_x = (n as f32 - 1.0) / 2.0;
        let mean_y = ys.iter().sum::<f32>() / n as f32;
        let (mut num, mut den) = (0.0f32, 0.0f32);
        for (x, y) in ys.iter().enumerate() {
            let dx = x as f32 - mean_x;
            num += dx * (y - mean_y);
            den += dx * dx;
        }
        if den > 0.0 { num / den } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::EmotionModel;

    #[test]
    fn three_angry_turns_make_a_streak_and_a_rising_slope() {
        let model = EmotionModel::default();
        let mut h = EmotionHistory::new();
        for text in [
            "你好,查一下订单",
            "怎么还没到？？",
            "太气人了！！",
            "你们这是骗子！！！",
        ] {
            h.push(&model.score(text));
        }
        let t = h.trend();
        assert!(t.negative_streak >= 3, "{t:?} {h:?}");
        assert!(t.anger_streak >= 2, "{t:?}");
        assert!(t.slope > 0.0, "{t:?}");
        assert!(t.peak > 0.7, "{t:?}");
        assert_eq!(t.last_label, Some(EmotionLabel::Anger));
        h.push(&model.score("好的,谢谢"));
        let t = h.trend();
        assert_eq!(t.negative_streak, 0);
        assert_eq!(t.last_label, Some(EmotionLabel::Joy));
        assert!(t.peak > 0.7, "the peak is remembered");
    }

    fn from_json(json: &str) -> EmotionHistory {
        match serde_json::from_str(json) {
            Ok(h) => h,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn history_is_bounded_and_round_trips() {
        let mut h = EmotionHistory::new();
        for i in 0..50 {
            h.push_turn(EmotionLabel::ALL[i % 5], i as f32 / 50.0);
        }
        assert_eq!(h.len(), HISTORY_LEN);
        let json = match serde_json::to_string(&h) {
            Ok(j) => j,
            Err(e) => panic!("{e}"),
        };
        // Compact: a string of about 4 bytes a turn (the JSON objects took ~35).
        assert!(json.starts_with('"'), "{json}");
        assert!(
            json.len() <= 2 + HISTORY_LEN * 5,
            "{} bytes: {json}",
            json.len()
        );
        assert_eq!(from_json(&json), h);
        // A stored history longer than the bound, with bad intensities, is tamed.
        let long = vec!["a750"; 30].join(" ");
        let tamed = from_json(&format!("\"{long}\""));
        assert_eq!(tamed.len(), HISTORY_LEN);
        assert!(tamed.turns().all(|t| t.intensity == 1.0));
        assert_eq!(EmotionHistory::new().trend().last_label, None);
        assert_eq!(from_json("\"\""), EmotionHistory::new());
    }

    #[test]
    fn every_rounded_intensity_and_label_survives_the_compact_form() {
        for label in EmotionLabel::ALL {
            for hundredths in 0..=100 {
                let mut h = EmotionHistory::new();
                h.push_turn(label, hundredths as f32 / 100.0);
                h.push_turn(label, hundredths as f32 / 100.0 + 0.004);
                let json = serde_json::to_string(&h).unwrap_or_default();
                assert_eq!(from_json(&json), h, "{json}");
            }
        }
        let mut h = EmotionHistory::new();
        h.push_turn(EmotionLabel::Neutral, 0.0);
        h.push_turn(EmotionLabel::Anxiety, 0.35);
        h.push_turn(EmotionLabel::Anger, 0.82);
        h.push_turn(EmotionLabel::Sadness, 1.0);
        h.push_turn(EmotionLabel::Joy, 0.07);
        assert_eq!(h.to_compact(), "n0 x35 a82 s100 j7");
    }

    #[test]
    fn histories_stored_in_the_earlier_json_shape_still_load() {
        // Exactly what the previous encoding wrote.
        let old = r#"[{"label":"neutral","intensity":0.0},{"label":"anxiety","intensity":0.35},{"label":"anger","intensity":0.82}]"#;
        let h = from_json(old);
        assert_eq!(h.to_compact(), "n0 x35 a82");
        assert_eq!(h.trend().last_label, Some(EmotionLabel::Anger));
        // Its bound and clamping still apply.
        let long: Vec<String> = (0..30)
            .map(|_| r#"{"label":"anger","intensity":7.5}"#.to_owned())
            .collect();
        let tamed = from_json(&format!("[{}]", long.join(",")));
        assert_eq!(tamed.len(), HISTORY_LEN);
        assert!(tamed.turns().all(|t| t.intensity == 1.0));
        // Inside a flattened, defaulted field (as the engine's state holds it).
        #[derive(Deserialize, Serialize, PartialEq, Debug)]
        struct Outer {
            #[serde(flatten)]
            rest: serde_json::Map<String, serde_json::Value>,
            #[serde(default)]
            emotion: EmotionHistory,
        }
        let outer: Outer = match serde_json::from_str(&format!(r#"{{"a":1,"emotion":{old}}}"#)) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(outer.emotion, h);
        let again = serde_json::to_string(&outer).unwrap_or_default();
        let back: Outer = match serde_json::from_str(&again) {
            Ok(o) => o,
            Err(e) => panic!("{again}: {e}"),
        };
        assert_eq!(back, outer);
    }

    #[test]
    fn unreadable_compact_turns_are_errors_not_panics() {
        for bad in [
            "q5",
            "a",
            "a-1",
            "a1.5",
            "a1000",
            "ä5",
            "5",
            "a5x",
            "a99999999999",
            "{}",
        ] {
            let json = serde_json::to_string(bad).unwrap_or_default();
            assert!(
                serde_json::from_str::<EmotionHistory>(&json).is_err(),
                "{bad} should not load"
            );
        }
        assert!(serde_json::from_str::<EmotionHistory>("42").is_err());
        assert!(
            serde_json::from_str::<EmotionHistory>(r#"[{"label":"rage","intensity":1}]"#).is_err()
        );
    }

    #[test]
    fn slope_is_negative_when_calming_down() {
        let mut h = EmotionHistory::new();
        for x in [0.9, 0.7, 0.4, 0.2] {
            h.push_turn(EmotionLabel::Anger, x);
        }
        assert!(h.trend().slope < 0.0);
        h.push_turn(EmotionLabel::Joy, 0.5);
        assert!(h.trend().slope < 0.0);
    }
}
