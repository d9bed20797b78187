//! Understanding one message for the engine: intent (the bot's `Nlu`), entities, emotion, and
//! the signals the flow language's policies read (emotion trend, VIP).
//!
//! The flows crate names entities and emotions in its own vocabulary (`id_card`, an amount as
//! a number); this module is the one place that translates the models' richer values into it,
//! so neither crate depends on the other.

use kefu_flows::{Bot, EntityKind as FlowEntityKind, EntityValue, Lang, Signals};
use kefu_models::{
    Emotion, EmotionTrend, Entity, EntityConfig, EntityKind, LookupEntity, LookupEntry,
};
use unicode_normalization::UnicodeNormalization;

/// A message as the interpreter needs it, owned so the turn can await skills in between.
#[derive(Debug, Clone)]
pub(crate) struct Understood {
    /// The user's words for slot extraction (NFKC, whitespace collapsed, case kept).
    pub(crate) words: String,
    /// The reply language.
    pub(crate) lang: Lang,
    /// The intent above the classifier's confidence floor, if any.
    pub(crate) intent: Option<String>,
    /// Its confidence.
    pub(crate) confidence: f32,
    /// Entities found, in the flows' vocabulary.
    pub(crate) entities: Vec<EntityValue>,
    /// The message's emotion.
    pub(crate) emotion: Emotion,
}

/// The user's words as the interpreter sees them (slot values, the `text` template variable):
/// NFKC (full-width letters and digits become ASCII) with whitespace collapsed, but case and
/// wording kept. Lowercasing and synonyms are for the classifier only: `不想要了` is a synonym
/// of 退货 for intents, yet as a return reason it means "changed my mind"; a company name on an
/// invoice keeps its capitals.
pub(crate) fn slot_text(raw: &str) -> String {
    let nfkc: String = raw.nfkc().collect();
    nfkc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when `text` has no words besides the entity values found in it (an order number, an
/// e-mail address, a phone number, with punctuation and digits around them).
pub(crate) fn only_values(text: &str, found: &[Entity]) -> bool {
    if found.is_empty() {
        return false;
    }
    let mut rest = String::with_capacity(text.len());
    let mut at = 0;
    let mut spans: Vec<(usize, usize)> = found.iter().map(|e| (e.start, e.end)).collect();
    spans.sort_unstable();
    for (start, end) in spans {
        if start >= at
            && end <= text.len()
            && text.is_char_boundary(start)
            && text.is_char_boundary(end)
        {
            rest.push_str(&text[at..start]);
            at = end;
        }
    }
    rest.push_str(text.get(at..).unwrap_or(""));
    !rest.chars().any(char::is_alphabetic)
}

/// The models' entity configuration for a bot: every built-in, plus the bot's lookup lists
/// (the models add fuzzy matching to them; regex entities the interpreter matches itself).
pub(crate) fn entity_config(bot: &Bot) -> EntityConfig {
    let mut cfg = EntityConfig::default();
    for (name, def) in bot.entities() {
        if let FlowEntityKind::Lookup(values) = &def.kind {
            cfg.lookups.push(LookupEntity {
                name: name.to_owned(),
                entries: values
                    .iter()
                    .map(|v| LookupEntry {
                        value: v.value.clone(),
                        synonyms: v.synonyms.clone(),
                    })
                    .collect(),
                fuzzy: true,
            });
        }
    }
    cfg
}

/// One entity the models found, in the flows' names and value shapes; `None` for kinds the
/// flows have no slot type for.
pub(crate) fn to_flow_entity(e: &Entity) -> Option<EntityValue> {
    let (name, value) = match e.kind {
        EntityKind::ResidentId => ("id_card", e.value.get("id")?.clone()),
        EntityKind::BankCard => ("bank_card", e.value.get("number")?.clone()),
        EntityKind::Amount => ("amount", e.value.get("value")?.clone()),
        EntityKind::Mobile => ("mobile", e.value.clone()),
        EntityKind::Email => ("email", e.value.clone()),
        EntityKind::Date => ("date", e.value.clone()),
        EntityKind::OrderNumber => ("order_number", e.value.clone()),
        // Designer entities keep their own names and values.
        _ => (e.name.as_str(), e.value.clone()),
    };
    if value.is_null() {
        return None;
    }
    Some(EntityValue {
        name: name.to_owned(),
        value,
    })
}

/// The policy signals of a turn: this message's emotion and the session's trend including it,
/// plus the user's tags (`vip` among them).
pub(crate) fn signals(emotion: &Emotion, trend: &EmotionTrend, tags: &[String]) -> Signals {
    Signals {
        emotion: Some(emotion.label.as_str().to_owned()),
        intensity: emotion.intensity,
        negative_streak: u32::try_from(trend.negative_streak).unwrap_or(u32::MAX),
        slope: trend.slope,
        peak: trend.peak,
        vip: tags.iter().any(|t| t.eq_ignore_ascii_case("vip")),
        tags: tags.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_models::EmotionModel;
    use serde_json::Value;

    #[test]
    fn entities_are_translated_to_the_flows_vocabulary() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let found: Vec<EntityValue> =
            kefu_models::extract_entities("手机 13812345678，金额两百块，明天送到 a@b.com", today)
                .iter()
                .filter_map(to_flow_entity)
                .collect();
        let get = |n: &str| found.iter().find(|e| e.name == n).map(|e| e.value.clone());
        assert_eq!(get("mobile"), Some(Value::from("13812345678")));
        assert_eq!(get("amount").and_then(|v| v.as_f64()), Some(200.0));
        assert_eq!(get("date"), Some(Value::from("2026-11-22")));
        assert_eq!(get("email"), Some(Value::from("a@b.com")));
    }

    #[test]
    fn a_message_of_only_values_shows_no_language() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        for (text, only) in [
            ("A12345678", true),
            (" a12345678 。", true),
            ("finance@example.com", true),
            ("发到 finance@example.com", false),
            ("my order is A12345678", false),
            ("hello", false),
        ] {
            let found = kefu_models::extract_entities(text, today);
            assert_eq!(only_values(text, &found), only, "{text}");
        }
    }

    #[test]
    fn signals_carry_the_trend_and_vip() {
        let model = EmotionModel::default();
        let mut history = kefu_models::EmotionHistory::new();
        let mut last = model.score("ok");
        for text in [
            "你们太差劲了！！！",
            "气死我了，到现在还没发货！！",
            "垃圾服务，我非常不满意！！！",
        ] {
            last = model.score(text);
            history.push(&last);
        }
        let s = signals(&last, &history.trend(), &["VIP".to_owned()]);
        assert_eq!(s.negative_streak, 3, "{s:?}");
        assert!(s.vip);
        assert!(s.emotion.is_some());
    }
}
