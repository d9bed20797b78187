//! [`EmotionHistory`]: a session's recent emotions and the trend features policies use.
//!
//! The history is persisted with the session, so it is small: at most [`HISTORY_LEN`]
//! turns of (label, intensity rounded to 0.01), serialised as a JSON array
//! (`[{"label":"anger","intensity":0.82}, ...]`). Deserialising a longer array keeps its
//! last [`HISTORY_LEN`] turns, and intensities are clamped to 0..=1, so stored data can
//! never break the bound.
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

use serde::{Deserialize, Serialize};

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

/// The last [`HISTORY_LEN`] turns' emotions of a session, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<EmotionTurn>", into = "Vec<EmotionTurn>")]
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

    #[test]
    fn history_is_bounded_and_round_trips() {
        let mut h = EmotionHistory::new();
        for i in 0..50 {
            h.push_turn(EmotionLabel::Anxiety, i as f32 / 50.0);
        }
        assert_eq!(h.len(), HISTORY_LEN);
        let json = match serde_json::to_string(&h) {
            Ok(j) => j,
            Err(e) => panic!("{e}"),
        };
        assert!(json.len() < 1_000, "{json}");
        let back: EmotionHistory = match serde_json::from_str(&json) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(back, h);
        // A stored array longer than the bound, with bad intensities, is tamed.
        let long: Vec<String> = (0..30)
            .map(|_| r#"{"label":"anger","intensity":7.5}"#.to_owned())
            .collect();
        let tamed: EmotionHistory = match serde_json::from_str(&format!("[{}]", long.join(","))) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(tamed.len(), HISTORY_LEN);
        assert!(tamed.turns().all(|t| t.intensity == 1.0));
        assert_eq!(EmotionHistory::new().trend().last_label, None);
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
