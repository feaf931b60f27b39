//! Lease-table values between protobuf and `tributary_types::table`, for the server and the SDK.

use std::collections::BTreeMap;

use tributary_types::Error;
use tributary_types::table::{AttributeValue, Comparator, Condition, Item, Update};

use crate::v1;
use crate::v1::attribute_value::Value;
use crate::v1::condition::Kind;
use crate::v1::update_action::Action;

pub fn value_to_proto(value: &AttributeValue) -> v1::AttributeValue {
    let value = match value {
        AttributeValue::S(s) => Value::S(s.clone()),
        AttributeValue::N(n) => Value::N(n.clone()),
        AttributeValue::B(b) => Value::B(b.to_vec()),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null => Value::Null(true),
        AttributeValue::Ss(set) => Value::Ss(v1::StringSet {
            values: set.iter().cloned().collect(),
        }),
        AttributeValue::L(list) => Value::L(v1::AttributeList {
            values: list.iter().map(value_to_proto).collect(),
        }),
        AttributeValue::M(map) => Value::M(item_to_proto(map)),
    };
    v1::AttributeValue { value: Some(value) }
}

pub fn value_from_proto(value: v1::AttributeValue) -> Result<AttributeValue, Error> {
    let value = match value.value {
        None => return Err(Error::invalid_argument("An attribute value has no type")),
        Some(Value::S(s)) => AttributeValue::S(s),
        Some(Value::N(n)) => AttributeValue::N(n),
        Some(Value::B(b)) => AttributeValue::B(b.into()),
        Some(Value::Bool(b)) => AttributeValue::Bool(b),
        Some(Value::Null(_)) => AttributeValue::Null,
        Some(Value::Ss(set)) => AttributeValue::Ss(set.values.into_iter().collect()),
        Some(Value::L(list)) => AttributeValue::L(
            list.values
                .into_iter()
                .map(value_from_proto)
                .collect::<Result<_, _>>()?,
        ),
        Some(Value::M(map)) => AttributeValue::M(item_from_proto(map)?),
    };
    value.validate()?;
    Ok(value)
}

pub fn item_to_proto(item: &Item) -> v1::AttributeMap {
    v1::AttributeMap {
        values: item
            .iter()
            .map(|(name, value)| (name.clone(), value_to_proto(value)))
            .collect(),
    }
}

pub fn item_from_proto(map: v1::AttributeMap) -> Result<Item, Error> {
    map.values
        .into_iter()
        .map(|(name, value)| Ok((name, value_from_proto(value)?)))
        .collect::<Result<BTreeMap<_, _>, Error>>()
}

fn comparator_name(comparator: Comparator) -> &'static str {
    match comparator {
        Comparator::Eq => "EQ",
        Comparator::Ne => "NE",
        Comparator::Lt => "LT",
        Comparator::Le => "LE",
        Comparator::Gt => "GT",
        Comparator::Ge => "GE",
    }
}

fn comparator_from_name(name: &str) -> Result<Comparator, Error> {
    Ok(match name {
        "EQ" => Comparator::Eq,
        "NE" => Comparator::Ne,
        "LT" => Comparator::Lt,
        "LE" => Comparator::Le,
        "GT" => Comparator::Gt,
        "GE" => Comparator::Ge,
        other => {
            return Err(Error::invalid_argument(format!(
                "Comparator '{other}' is not one of EQ, NE, LT, LE, GT, GE"
            )));
        }
    })
}

fn required(value: Option<v1::AttributeValue>, what: &str) -> Result<AttributeValue, Error> {
    value_from_proto(value.ok_or_else(|| Error::invalid_argument(format!("{what} needs a value")))?)
}

pub fn condition_to_proto(condition: &Condition) -> v1::Condition {
    let list = |all: &[Condition]| v1::Conditions {
        conditions: all.iter().map(condition_to_proto).collect(),
    };
    let kind = match condition {
        Condition::AttributeExists(name) => Kind::AttributeExists(name.clone()),
        Condition::AttributeNotExists(name) => Kind::AttributeNotExists(name.clone()),
        Condition::Compare {
            attribute,
            comparator,
            value,
        } => Kind::Compare(v1::Comparison {
            attribute: attribute.clone(),
            comparator: comparator_name(*comparator).to_string(),
            value: Some(value_to_proto(value)),
        }),
        Condition::BeginsWith { attribute, prefix } => Kind::BeginsWith(v1::BeginsWith {
            attribute: attribute.clone(),
            prefix: Some(value_to_proto(prefix)),
        }),
        Condition::And(all) => Kind::And(list(all)),
        Condition::Or(all) => Kind::Or(list(all)),
        Condition::Not(inner) => Kind::Not(list(std::slice::from_ref(inner))),
    };
    v1::Condition { kind: Some(kind) }
}

pub fn condition_from_proto(condition: v1::Condition) -> Result<Condition, Error> {
    let list = |all: v1::Conditions| {
        all.conditions
            .into_iter()
            .map(condition_from_proto)
            .collect::<Result<Vec<_>, _>>()
    };
    let condition = match condition.kind {
        None => return Err(Error::invalid_argument("A condition has no kind")),
        Some(Kind::AttributeExists(name)) => Condition::AttributeExists(name),
        Some(Kind::AttributeNotExists(name)) => Condition::AttributeNotExists(name),
        Some(Kind::Compare(c)) => Condition::Compare {
            comparator: comparator_from_name(&c.comparator)?,
            value: required(c.value, "A comparison")?,
            attribute: c.attribute,
        },
        Some(Kind::BeginsWith(b)) => Condition::BeginsWith {
            prefix: required(b.prefix, "begins_with")?,
            attribute: b.attribute,
        },
        Some(Kind::And(all)) => Condition::And(list(all)?),
        Some(Kind::Or(all)) => Condition::Or(list(all)?),
        Some(Kind::Not(one)) => {
            let mut inner = list(one)?;
            if inner.len() != 1 {
                return Err(Error::invalid_argument("NOT takes exactly one condition"));
            }
            Condition::Not(Box::new(inner.remove(0)))
        }
    };
    condition.validate()?;
    Ok(condition)
}

pub fn update_to_proto(update: &Update) -> v1::UpdateAction {
    let action = match update {
        Update::Set { attribute, value } => Action::Set(v1::AttributeAssignment {
            attribute: attribute.clone(),
            value: Some(value_to_proto(value)),
        }),
        Update::Remove { attribute } => Action::Remove(attribute.clone()),
        Update::Add { attribute, value } => Action::Add(v1::AttributeAssignment {
            attribute: attribute.clone(),
            value: Some(value_to_proto(value)),
        }),
    };
    v1::UpdateAction {
        action: Some(action),
    }
}

pub fn update_from_proto(update: v1::UpdateAction) -> Result<Update, Error> {
    Ok(match update.action {
        None => return Err(Error::invalid_argument("An update has no action")),
        Some(Action::Set(set)) => Update::Set {
            value: required(set.value, "SET")?,
            attribute: set.attribute,
        },
        Some(Action::Remove(attribute)) => Update::Remove { attribute },
        Some(Action::Add(add)) => Update::Add {
            value: required(add.value, "ADD")?,
            attribute: add.attribute,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_conditions_and_updates_round_trip() {
        let item: Item = [
            ("leaseKey".to_string(), AttributeValue::S("shard-1".into())),
            ("n".to_string(), AttributeValue::N("7".into())),
            (
                "nested".to_string(),
                AttributeValue::L(vec![AttributeValue::Null, AttributeValue::Bool(true)]),
            ),
            (
                "set".to_string(),
                AttributeValue::Ss(["a".to_string()].into()),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(item_from_proto(item_to_proto(&item)).unwrap(), item);
        let condition = Condition::And(vec![
            Condition::AttributeExists("leaseKey".into()),
            Condition::Not(Box::new(Condition::Compare {
                attribute: "n".into(),
                comparator: Comparator::Ge,
                value: AttributeValue::N("3".into()),
            })),
        ]);
        assert_eq!(
            condition_from_proto(condition_to_proto(&condition)).unwrap(),
            condition
        );
        let update = Update::Add {
            attribute: "n".into(),
            value: AttributeValue::N("1".into()),
        };
        assert_eq!(update_from_proto(update_to_proto(&update)).unwrap(), update);
        let untyped = v1::AttributeValue { value: None };
        assert!(value_from_proto(untyped).is_err());
    }
}
