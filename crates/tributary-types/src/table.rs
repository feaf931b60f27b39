//! Lease tables: DynamoDB-shaped items, conditions and updates, as plain data with pure
//! evaluation (the metadata state machine applies them, so every replica decides alike).
//!
//! Conditions and updates are structured (no expression strings). Semantics follow DynamoDB:
//! - `=` needs the same type and value (`{S:"6"}` is not `{N:"6"}`); `<>` is its negation, so it
//!   holds for a missing attribute; `<`, `<=`, `>`, `>=` compare strings (bytewise), numbers
//!   (numerically) and binaries (unsigned bytes) of the same type and are false otherwise;
//! - `begins_with` applies to strings and binaries;
//! - SET replaces, REMOVE deletes (missing is fine), ADD adds to a number (a missing attribute
//!   counts as 0) or unions a string set (a missing attribute counts as empty).
//!
//! Attribute paths are top-level names; nested paths are not supported.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode};

/// An attribute value, as DynamoDB types them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeValue {
    S(String),
    /// A number, kept as the decimal text it was given in (validated).
    N(String),
    B(Bytes),
    Bool(bool),
    Null,
    Ss(BTreeSet<String>),
    L(Vec<AttributeValue>),
    M(BTreeMap<String, AttributeValue>),
}

/// An item: attribute name → value.
pub type Item = BTreeMap<String, AttributeValue>;

/// A number, exact while it is an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

fn parse_number(text: &str) -> Result<Number, Error> {
    if let Ok(int) = text.parse::<i128>() {
        return Ok(Number::Int(int));
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => Ok(Number::Float(float)),
        _ => Err(Error::invalid_argument(format!("'{text}' is not a number"))),
    }
}

fn compare_numbers(a: Number, b: Number) -> Option<Ordering> {
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
        (a, b) => as_f64(a).partial_cmp(&as_f64(b)),
    }
}

fn as_f64(number: Number) -> f64 {
    match number {
        Number::Int(int) => int as f64,
        Number::Float(float) => float,
    }
}

impl AttributeValue {
    /// Checks numbers (recursively) and set contents.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            AttributeValue::N(text) => parse_number(text).map(|_| ()),
            AttributeValue::L(values) => values.iter().try_for_each(AttributeValue::validate),
            AttributeValue::M(values) => values.values().try_for_each(AttributeValue::validate),
            AttributeValue::Ss(set) if set.is_empty() => {
                Err(Error::invalid_argument("A string set must not be empty"))
            }
            _ => Ok(()),
        }
    }

    /// The ordering of two scalar values of the same type, for `<`, `<=`, `>`, `>=`.
    fn ordering(&self, other: &AttributeValue) -> Option<Ordering> {
        match (self, other) {
            (AttributeValue::S(a), AttributeValue::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (AttributeValue::B(a), AttributeValue::B(b)) => Some(a.as_ref().cmp(b.as_ref())),
            (AttributeValue::N(a), AttributeValue::N(b)) => {
                compare_numbers(parse_number(a).ok()?, parse_number(b).ok()?)
            }
            _ => None,
        }
    }

    /// DynamoDB equality: same type and value; numbers compare numerically.
    fn equals(&self, other: &AttributeValue) -> bool {
        match (self, other) {
            (AttributeValue::N(_), AttributeValue::N(_)) => {
                self.ordering(other) == Some(Ordering::Equal)
            }
            _ => self == other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition on the current item (absent when the item does not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    AttributeExists(String),
    AttributeNotExists(String),
    Compare {
        attribute: String,
        comparator: Comparator,
        value: AttributeValue,
    },
    BeginsWith {
        attribute: String,
        prefix: AttributeValue,
    },
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

/// How deeply conditions may nest.
pub const MAX_CONDITION_DEPTH: usize = 16;

impl Condition {
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_at(0)
    }

    fn validate_at(&self, depth: usize) -> Result<(), Error> {
        if depth > MAX_CONDITION_DEPTH {
            return Err(Error::invalid_argument(format!(
                "Conditions nest at most {MAX_CONDITION_DEPTH} deep"
            )));
        }
        match self {
            Condition::AttributeExists(name) | Condition::AttributeNotExists(name) => {
                validate_attribute_name(name)
            }
            Condition::Compare {
                attribute, value, ..
            } => {
                validate_attribute_name(attribute)?;
                value.validate()
            }
            Condition::BeginsWith { attribute, prefix } => {
                validate_attribute_name(attribute)?;
                match prefix {
                    AttributeValue::S(_) | AttributeValue::B(_) => Ok(()),
                    _ => Err(Error::invalid_argument(
                        "begins_with takes a string or binary prefix",
                    )),
                }
            }
            Condition::And(all) | Condition::Or(all) => {
                if all.is_empty() {
                    return Err(Error::invalid_argument(
                        "AND/OR need at least one condition",
                    ));
                }
                all.iter().try_for_each(|c| c.validate_at(depth + 1))
            }
            Condition::Not(inner) => inner.validate_at(depth + 1),
        }
    }

    /// Whether the condition holds for `item_opt` (`None`: no such item).
    pub fn holds(&self, item_opt: Option<&Item>) -> bool {
        let get = |name: &str| item_opt.and_then(|item| item.get(name));
        match self {
            Condition::AttributeExists(name) => get(name).is_some(),
            Condition::AttributeNotExists(name) => get(name).is_none(),
            Condition::Compare {
                attribute,
                comparator,
                value,
            } => {
                let Some(current) = get(attribute) else {
                    return *comparator == Comparator::Ne;
                };
                match comparator {
                    Comparator::Eq => current.equals(value),
                    Comparator::Ne => !current.equals(value),
                    Comparator::Lt => current.ordering(value) == Some(Ordering::Less),
                    Comparator::Le => matches!(
                        current.ordering(value),
                        Some(Ordering::Less | Ordering::Equal)
                    ),
                    Comparator::Gt => current.ordering(value) == Some(Ordering::Greater),
                    Comparator::Ge => matches!(
                        current.ordering(value),
                        Some(Ordering::Greater | Ordering::Equal)
                    ),
                }
            }
            Condition::BeginsWith { attribute, prefix } => match (get(attribute), prefix) {
                (Some(AttributeValue::S(s)), AttributeValue::S(p)) => s.starts_with(p.as_str()),
                (Some(AttributeValue::B(b)), AttributeValue::B(p)) => b.starts_with(p),
                _ => false,
            },
            Condition::And(all) => all.iter().all(|c| c.holds(item_opt)),
            Condition::Or(all) => all.iter().any(|c| c.holds(item_opt)),
            Condition::Not(inner) => !inner.holds(item_opt),
        }
    }
}

/// One action of an UpdateItem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    Set {
        attribute: String,
        value: AttributeValue,
    },
    Remove {
        attribute: String,
    },
    /// Adds to a number or unions into a string set.
    Add {
        attribute: String,
        value: AttributeValue,
    },
}

impl Update {
    fn attribute(&self) -> &str {
        match self {
            Update::Set { attribute, .. }
            | Update::Remove { attribute }
            | Update::Add { attribute, .. } => attribute,
        }
    }
}

/// Applies `updates` to `item` (which holds at least its key); the key attribute cannot change.
pub fn apply_updates(
    item: &mut Item,
    key_attribute: &str,
    updates: &[Update],
) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for update in updates {
        let attribute = update.attribute();
        validate_attribute_name(attribute)?;
        if attribute == key_attribute {
            return Err(Error::invalid_argument(format!(
                "The key attribute {key_attribute} cannot be updated"
            )));
        }
        if !seen.insert(attribute.to_string()) {
            return Err(Error::invalid_argument(format!(
                "Two updates name the attribute {attribute}"
            )));
        }
    }
    for update in updates {
        match update {
            Update::Set { attribute, value } => {
                value.validate()?;
                item.insert(attribute.clone(), value.clone());
            }
            Update::Remove { attribute } => {
                item.remove(attribute);
            }
            Update::Add { attribute, value } => {
                value.validate()?;
                let added = match (item.get(attribute), value) {
                    (None, AttributeValue::N(_)) | (None, AttributeValue::Ss(_)) => value.clone(),
                    (Some(AttributeValue::N(a)), AttributeValue::N(b)) => {
                        AttributeValue::N(add_numbers(a, b)?)
                    }
                    (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => {
                        AttributeValue::Ss(a.union(b).cloned().collect())
                    }
                    _ => {
                        return Err(Error::invalid_argument(format!(
                            "ADD to {attribute} needs a number or a string set of the attribute's type"
                        )));
                    }
                };
                item.insert(attribute.clone(), added);
            }
        }
    }
    Ok(())
}

fn add_numbers(a: &str, b: &str) -> Result<String, Error> {
    match (parse_number(a)?, parse_number(b)?) {
        (Number::Int(a), Number::Int(b)) => a
            .checked_add(b)
            .map(|sum| sum.to_string())
            .ok_or_else(|| Error::invalid_argument("Number overflow in ADD")),
        (a, b) => Ok((as_f64(a) + as_f64(b)).to_string()),
    }
}

/// Table names follow DynamoDB: 3..255 characters of `[a-zA-Z0-9_.-]`.
pub fn validate_table_name(name: &str) -> Result<(), Error> {
    let valid = (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "Table name '{name}' must have 3 to 255 characters of [a-zA-Z0-9_.-]"
        )))
    }
}

/// Attribute names are 1..255 bytes.
pub fn validate_attribute_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::invalid_argument(format!(
            "Attribute name '{name}' must have 1 to 255 bytes"
        )));
    }
    Ok(())
}

/// The error of a failed condition (the current item may travel with it).
pub fn condition_failed(table: &str, key: &str) -> Error {
    Error::new(
        ErrorCode::ConditionalCheckFailed,
        format!("The conditional request failed (table {table}, key {key})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_string())
    }

    fn n(text: &str) -> AttributeValue {
        AttributeValue::N(text.to_string())
    }

    fn lease() -> Item {
        [
            ("leaseKey".to_string(), s("shardId-000000000001")),
            ("leaseOwner".to_string(), s("worker-a")),
            ("leaseCounter".to_string(), n("7")),
        ]
        .into_iter()
        .collect()
    }

    fn compare(attribute: &str, comparator: Comparator, value: AttributeValue) -> Condition {
        Condition::Compare {
            attribute: attribute.to_string(),
            comparator,
            value,
        }
    }

    #[test]
    fn comparisons_follow_dynamodb_types() {
        let item = lease();
        let holds = |c: Condition| c.holds(Some(&item));
        assert!(holds(compare("leaseCounter", Comparator::Eq, n("7.0"))));
        assert!(
            !holds(compare("leaseCounter", Comparator::Eq, s("7"))),
            "S is not N"
        );
        assert!(
            holds(compare("leaseCounter", Comparator::Lt, n("10"))),
            "numeric, not text"
        );
        assert!(
            !holds(compare("leaseCounter", Comparator::Lt, s("8"))),
            "no cross-type order"
        );
        assert!(holds(compare("leaseOwner", Comparator::Ge, s("worker-a"))));
        assert!(
            holds(compare("missing", Comparator::Ne, s("x"))),
            "<> holds when missing"
        );
        assert!(!holds(compare("missing", Comparator::Eq, s("x"))));
        assert!(!holds(compare("missing", Comparator::Lt, n("1"))));
        assert!(holds(Condition::BeginsWith {
            attribute: "leaseKey".into(),
            prefix: s("shardId-")
        }));
    }

    #[test]
    fn logic_and_existence_work_on_missing_items() {
        let absent = Condition::AttributeNotExists("leaseKey".into());
        assert!(absent.holds(None));
        assert!(!absent.holds(Some(&lease())));
        let owner_and_counter = Condition::And(vec![
            compare("leaseOwner", Comparator::Eq, s("worker-a")),
            compare("leaseCounter", Comparator::Eq, n("7")),
        ]);
        assert!(owner_and_counter.holds(Some(&lease())));
        assert!(!owner_and_counter.holds(None));
        let either = Condition::Or(vec![
            Condition::Not(Box::new(Condition::AttributeExists("leaseOwner".into()))),
            compare("leaseOwner", Comparator::Eq, s("worker-b")),
        ]);
        assert!(!either.holds(Some(&lease())));
        assert!(Condition::And(vec![]).validate().is_err());
    }

    #[test]
    fn updates_set_remove_and_add() {
        let mut item = lease();
        let updates = [
            Update::Add {
                attribute: "leaseCounter".into(),
                value: n("1"),
            },
            Update::Set {
                attribute: "checkpoint".into(),
                value: s("TRIM_HORIZON"),
            },
            Update::Remove {
                attribute: "leaseOwner".into(),
            },
            Update::Add {
                attribute: "parentShardId".into(),
                value: AttributeValue::Ss(["shardId-0".to_string()].into()),
            },
        ];
        apply_updates(&mut item, "leaseKey", &updates).unwrap();
        assert_eq!(item["leaseCounter"], n("8"));
        assert_eq!(item["checkpoint"], s("TRIM_HORIZON"));
        assert!(!item.contains_key("leaseOwner"));
        let add_float = [Update::Add {
            attribute: "leaseCounter".into(),
            value: n("0.5"),
        }];
        apply_updates(&mut item, "leaseKey", &add_float).unwrap();
        assert_eq!(item["leaseCounter"], n("8.5"));
        let bad = [Update::Set {
            attribute: "leaseKey".into(),
            value: s("other"),
        }];
        assert!(
            apply_updates(&mut item, "leaseKey", &bad).is_err(),
            "keys are fixed"
        );
        let wrong_type = [Update::Add {
            attribute: "checkpoint".into(),
            value: n("1"),
        }];
        assert!(apply_updates(&mut item, "leaseKey", &wrong_type).is_err());
        assert!(n("abc").validate().is_err());
    }
}
