//! A worked example of a kefu plugin: `store_hours` answers when a store is open.
//!
//! Copy this crate to start your own skill. It shows the three things every skill does:
//! - **Read typed arguments** with [`SkillRequest::arg_str`] / [`SkillRequest::opt_str`]; a
//!   missing or malformed argument is a [`SkillError::BadArgument`] (the flow's mistake).
//! - **Answer with an outcome value**: [`SkillOutcome::Found`] with data the flow keeps in a
//!   slot (and optionally ready-made messages), [`SkillOutcome::NotFound`] when nothing matches.
//!   Outcomes are normal answers; errors are for failures (a back-end that is down).
//! - **Use the caller the runtime supplies** ([`kefu_plugin::Caller`]): here only the locale,
//!   to word the message; a skill holding personal data would scope it by `caller.user`, never
//!   by anything the user typed.
//!
//! The data is a static table given at construction ([`StoreHours::new`]); a real plugin would
//! read a file or call a back-end in `call`, which is async for that reason. See
//! `docs/plugins.md` for the walk-through and `examples/embed.rs` for registering it with the
//! runtime.

use std::collections::BTreeMap;

use kefu_plugin::{Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest, async_trait};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The week's days in the order the table uses, lower-case English.
pub const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// One store's opening hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Shown to users (`Downtown`, `机场店`).
    pub name: String,
    /// Opening hours per day (`"09:00-21:00"`), keyed by lower-case English day; a day that is
    /// missing is a closed day.
    pub hours: BTreeMap<String, String>,
}

/// The `store_hours` skill: arguments `store` (required, a store id) and `day` (optional, an
/// English weekday in any case; without it the whole week is returned).
#[derive(Debug, Clone, Default)]
pub struct StoreHours {
    stores: BTreeMap<String, Store>,
}

impl StoreHours {
    /// A skill answering from `stores`, keyed by store id.
    pub fn new(stores: BTreeMap<String, Store>) -> Self {
        Self { stores }
    }

    /// A small demo table (ids `downtown` and `airport`), for the examples and tests.
    pub fn demo() -> Self {
        let week = |open: &str, weekend: Option<&str>| -> BTreeMap<String, String> {
            DAYS.iter()
                .filter_map(|d| {
                    let h = if d.starts_with('s') {
                        weekend
                    } else {
                        Some(open)
                    };
                    h.map(|h| ((*d).to_owned(), h.to_owned()))
                })
                .collect()
        };
        let mut stores = BTreeMap::new();
        stores.insert(
            "downtown".to_owned(),
            Store {
                name: "Downtown".to_owned(),
                hours: week("09:00-21:00", Some("10:00-18:00")),
            },
        );
        stores.insert(
            "airport".to_owned(),
            Store {
                name: "Airport".to_owned(),
                hours: week("06:00-23:00", None),
            },
        );
        Self::new(stores)
    }
}

#[async_trait]
impl Skill for StoreHours {
    fn name(&self) -> &str {
        "store_hours"
    }

    fn info(&self) -> SkillInfo {
        SkillInfo {
            description: "When a store is open, for one day or the whole week".to_owned(),
            required_args: vec!["store".to_owned()],
            optional_args: vec!["day".to_owned()],
        }
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        let id = req.arg_str("store")?.to_lowercase();
        let Some(store) = self.stores.get(&id) else {
            // Not an error: the flow can ask the user which store they meant.
            return Ok(SkillOutcome::not_found(format!("no store `{id}`")));
        };
        let zh = req.caller.locale == "zh";
        let Some(day) = req.opt_str("day") else {
            return Ok(SkillOutcome::found(
                json!({ "store": store.name, "hours": store.hours }),
            ));
        };
        let day = day.to_lowercase();
        if !DAYS.contains(&day.as_str()) {
            return Err(SkillError::BadArgument {
                name: "day".to_owned(),
                reason: format!("`{day}` is not a weekday (monday..sunday)"),
            });
        }
        let hours = store.hours.get(&day);
        let message = match (hours, zh) {
            (Some(h), false) => format!("{} is open {h} on {day}.", store.name),
            (None, false) => format!("{} is closed on {day}.", store.name),
            (Some(h), true) => format!("{}在{}的营业时间是 {h}。", store.name, zh_day(&day)),
            (None, true) => format!("{}在{}休息。", store.name, zh_day(&day)),
        };
        Ok(SkillOutcome::Found {
            data: json!({ "store": store.name, "day": day, "open": hours.is_some(), "hours": hours }),
            messages: vec![message],
        })
    }
}

fn zh_day(day: &str) -> &'static str {
    match day {
        "monday" => "周一",
        "tuesday" => "周二",
        "wednesday" => "周三",
        "thursday" => "周四",
        "friday" => "周五",
        "saturday" => "周六",
        _ => "周日",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_plugin::Caller;

    fn ask(store: &str, day: Option<&str>, locale: &str) -> SkillRequest {
        let caller = Caller {
            locale: locale.to_owned(),
            ..Caller::default()
        };
        let req = SkillRequest::new("store_hours", caller).with_arg("store", store);
        match day {
            Some(d) => req.with_arg("day", d),
            None => req,
        }
    }

    // A skill is plain async Rust: test it by calling it, no runtime needed.
    #[tokio::test]
    async fn answers_one_day_in_the_callers_language() {
        let skill = StoreHours::demo();
        let out = skill
            .call(ask("Downtown", Some("Saturday"), "en"))
            .await
            .unwrap();
        assert_eq!(
            out,
            SkillOutcome::Found {
                data: json!({"store": "Downtown", "day": "saturday", "open": true, "hours": "10:00-18:00"}),
                messages: vec!["Downtown is open 10:00-18:00 on saturday.".to_owned()],
            }
        );
        let out = skill
            .call(ask("airport", Some("sunday"), "zh"))
            .await
            .unwrap();
        let SkillOutcome::Found { data, messages } = out else {
            panic!("found expected")
        };
        assert_eq!(data["open"], false);
        assert_eq!(messages, vec!["Airport在周日休息。"]);
    }

    #[tokio::test]
    async fn the_whole_week_without_a_day() {
        let out = StoreHours::demo()
            .call(ask("airport", None, "en"))
            .await
            .unwrap();
        let SkillOutcome::Found { data, messages } = out else {
            panic!("found expected")
        };
        assert!(messages.is_empty(), "the flow words it");
        assert_eq!(data["hours"].as_object().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn unknown_stores_are_not_found_and_bad_days_are_bad_arguments() {
        let skill = StoreHours::demo();
        assert_eq!(
            skill.call(ask("moon", None, "en")).await.unwrap().kind(),
            "not_found"
        );
        let err = skill
            .call(ask("airport", Some("someday"), "en"))
            .await
            .unwrap_err();
        assert!(matches!(err, SkillError::BadArgument { ref name, .. } if name == "day"));
        let missing = skill
            .call(SkillRequest::new("store_hours", Caller::default()))
            .await
            .unwrap_err();
        assert_eq!(missing.to_string(), "argument `store`: missing");
    }
}
