//! Entities: the kinds of values the NLU looks for in a message (`entities:` in YAML).
//!
//! A bot declares its own entities — a `regex` or a `lookup` list of values with synonyms —
//! and always has the built-in ones ([`BuiltinEntity`]). The extraction proper is done by
//! the understanding models (which read [`crate::Bot::entities`]); this crate validates the
//! declarations, lets a slot take an entity as its type (`type: sku`, `type: mobile`) and
//! uses an entity value the NLU found (see [`crate::TurnInput::with_entity`]) to fill a slot.
//!
//! Invariant: a custom entity never shadows a built-in name or a slot type name, so
//! `type: x` in a slot always means one thing.

use crate::slot::{EnumValue, SlotType};

/// The built-in entities every bot has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinEntity {
    /// An order number (8–20 letters and digits with at least one digit).
    OrderNumber,
    /// A mainland China mobile number.
    Mobile,
    /// An e-mail address.
    Email,
    /// A calendar date with its year.
    Date,
    /// An amount of money.
    Amount,
    /// A mainland resident ID number.
    IdCard,
    /// A bank card number.
    BankCard,
}

impl BuiltinEntity {
    /// Every built-in entity.
    pub const ALL: [BuiltinEntity; 7] = [
        BuiltinEntity::OrderNumber,
        BuiltinEntity::Mobile,
        BuiltinEntity::Email,
        BuiltinEntity::Date,
        BuiltinEntity::Amount,
        BuiltinEntity::IdCard,
        BuiltinEntity::BankCard,
    ];

    /// The name used in YAML (`order_number`, `mobile`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinEntity::OrderNumber => "order_number",
            BuiltinEntity::Mobile => "mobile",
            BuiltinEntity::Email => "email",
            BuiltinEntity::Date => "date",
            BuiltinEntity::Amount => "amount",
            BuiltinEntity::IdCard => "id_card",
            BuiltinEntity::BankCard => "bank_card",
        }
    }

    /// The built-in entity called `name`.
    pub fn from_name(name: &str) -> Option<BuiltinEntity> {
        BuiltinEntity::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The slot type holding this entity's values.
    pub fn slot_type(self) -> SlotType {
        match self {
            BuiltinEntity::OrderNumber => SlotType::OrderId,
            BuiltinEntity::Mobile => SlotType::Phone,
            BuiltinEntity::Email => SlotType::Email,
            BuiltinEntity::Date => SlotType::Date,
            BuiltinEntity::Amount => SlotType::Amount,
            BuiltinEntity::IdCard => SlotType::IdCard,
            BuiltinEntity::BankCard => SlotType::BankCard,
        }
    }
}

/// One entity: built-in, or declared under `entities:`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EntityDef {
    /// What the entity is, for people and LLM-based extractors.
    pub description: Option<String>,
    /// How values are recognised.
    pub kind: EntityKind,
}

/// How an entity's values are recognised.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EntityKind {
    /// One of the built-ins.
    Builtin(BuiltinEntity),
    /// Text matching a regex (first capture group if any, else the whole match).
    Regex(regex::Regex),
    /// One of a list of values, each with synonyms (e.g. cities, product lines).
    Lookup(Vec<EnumValue>),
}

impl EntityDef {
    /// The slot type a slot declared as `type: <this entity>` gets.
    pub fn slot_type(&self) -> SlotType {
        match &self.kind {
            EntityKind::Builtin(b) => b.slot_type(),
            EntityKind::Regex(pattern) => SlotType::Regex {
                pattern: pattern.clone(),
            },
            EntityKind::Lookup(values) => SlotType::Enum {
                values: values.clone(),
            },
        }
    }
}
