//! Lease tables in the metadata catalogue: apply functions for table commands. Conditions are
//! evaluated here, when the metadata group applies the write, against the item as every replica
//! holds it at that log index: two racing conditional writes can never both succeed, whichever
//! node received them and whoever leads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tributary_raft::meta::TableCommand;
use tributary_types::table::{
    AttributeValue, Condition, Item, apply_updates, condition_failed, validate_attribute_name,
    validate_table_name,
};
use tributary_types::{Error, ErrorCode};

use super::state::MetaState;

/// Tables the cluster may hold, and items per table: lease tables are small (one item per shard
/// and a few per worker); the whole catalogue is rewritten on every metadata apply.
pub const MAX_TABLES: usize = 256;
pub const MAX_ITEMS_PER_TABLE: usize = 100_000;
/// An item's encoded size limit (DynamoDB: 400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    pub key_attribute: String,
    pub created_at_ms: u64,
    pub items: BTreeMap<String, Item>,
}

impl MetaState {
    pub fn table(&self, name: &str) -> Result<&TableMeta, Error> {
        self.tables
            .get(name)
            .ok_or_else(|| Error::not_found(format!("Table {name} not found")))
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut TableMeta, Error> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| Error::not_found(format!("Table {name} not found")))
    }

    /// Applies a table command; UpdateItem answers the new item.
    pub(super) fn apply_table(&mut self, command: &TableCommand) -> Result<Option<Item>, Error> {
        match command {
            TableCommand::CreateTable {
                table,
                key_attribute,
                created_at_ms,
            } => {
                validate_table_name(table)?;
                validate_attribute_name(key_attribute)?;
                if self.tables.contains_key(table) {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("Table {table} already exists"),
                    ));
                }
                if self.tables.len() >= MAX_TABLES {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!("The cluster holds at most {MAX_TABLES} tables"),
                    ));
                }
                self.tables.insert(
                    table.clone(),
                    TableMeta {
                        key_attribute: key_attribute.clone(),
                        created_at_ms: *created_at_ms,
                        items: BTreeMap::new(),
                    },
                );
                Ok(None)
            }
            TableCommand::DeleteTable { table } => {
                self.table(table)?;
                self.tables.remove(table);
                Ok(None)
            }
            TableCommand::PutItem {
                table,
                item,
                condition,
            } => {
                let meta = self.table_mut(table)?;
                let key = item_key(meta, item)?;
                check_item(item)?;
                check(meta, table, &key, condition.as_ref())?;
                if !meta.items.contains_key(&key) && meta.items.len() >= MAX_ITEMS_PER_TABLE {
                    return Err(too_many_items(table));
                }
                meta.items.insert(key, item.clone());
                Ok(None)
            }
            TableCommand::UpdateItem {
                table,
                key,
                updates,
                condition,
            } => {
                let meta = self.table_mut(table)?;
                check(meta, table, key, condition.as_ref())?;
                let mut item = match meta.items.get(key) {
                    Some(item) => item.clone(),
                    None if meta.items.len() >= MAX_ITEMS_PER_TABLE => {
                        return Err(too_many_items(table));
                    }
                    None => [(meta.key_attribute.clone(), AttributeValue::S(key.clone()))]
                        .into_iter()
                        .collect(),
                };
                apply_updates(&mut item, &meta.key_attribute, updates)?;
                check_item(&item)?;
                meta.items.insert(key.clone(), item.clone());
                Ok(Some(item))
            }
            TableCommand::DeleteItem {
                table,
                key,
                condition,
            } => {
                let meta = self.table_mut(table)?;
                check(meta, table, key, condition.as_ref())?;
                meta.items.remove(key);
                Ok(None)
            }
        }
    }
}

/// The item's key: its key attribute, a string.
fn item_key(meta: &TableMeta, item: &Item) -> Result<String, Error> {
    match item.get(&meta.key_attribute) {
        Some(AttributeValue::S(key)) if !key.is_empty() => Ok(key.clone()),
        _ => Err(Error::invalid_argument(format!(
            "The item needs its key attribute {} as a non-empty string",
            meta.key_attribute
        ))),
    }
}

fn check_item(item: &Item) -> Result<(), Error> {
    for (name, value) in item {
        validate_attribute_name(name)?;
        value.validate()?;
    }
    let size = postcard::to_stdvec(item)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ITEM_BYTES {
        return Err(Error::invalid_argument(format!(
            "Item size {size} bytes exceeds the limit of {MAX_ITEM_BYTES}"
        )));
    }
    Ok(())
}

/// Evaluates a write's condition against the current item; a failure carries that item.
fn check(
    meta: &TableMeta,
    table: &str,
    key: &str,
    condition_opt: Option<&Condition>,
) -> Result<(), Error> {
    let Some(condition) = condition_opt else {
        return Ok(());
    };
    condition.validate()?;
    let current_opt = meta.items.get(key);
    if condition.holds(current_opt) {
        return Ok(());
    }
    let mut error = condition_failed(table, key);
    error.current_item_opt = current_opt.cloned().map(Box::new);
    Err(error)
}

fn too_many_items(table: &str) -> Error {
    Error::new(
        ErrorCode::LimitExceeded,
        format!("Table {table} holds at most {MAX_ITEMS_PER_TABLE} items"),
    )
}

#[cfg(test)]
mod tests {
    use tributary_raft::meta::MetaCommand;
    use tributary_types::table::{Comparator, Update};

    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_string())
    }

    fn table(command: TableCommand) -> MetaCommand {
        MetaCommand::Table(command)
    }

    fn take(owner: &str, counter: &str) -> MetaCommand {
        table(TableCommand::UpdateItem {
            table: "app".into(),
            key: "shard-0".into(),
            updates: vec![
                Update::Set {
                    attribute: "leaseOwner".into(),
                    value: s(owner),
                },
                Update::Add {
                    attribute: "leaseCounter".into(),
                    value: AttributeValue::N("1".into()),
                },
            ],
            condition: Some(Condition::Compare {
                attribute: "leaseCounter".into(),
                comparator: Comparator::Eq,
                value: AttributeValue::N(counter.into()),
            }),
        })
    }

    #[test]
    fn conditional_writes_decide_in_log_order() {
        let mut state = MetaState::default();
        let create = table(TableCommand::CreateTable {
            table: "app".into(),
            key_attribute: "leaseKey".into(),
            created_at_ms: 1,
        });
        state.apply(&create).unwrap();
        assert_eq!(
            state.apply(&create).unwrap_err().code,
            ErrorCode::ResourceInUse
        );
        let put = table(TableCommand::PutItem {
            table: "app".into(),
            item: [
                ("leaseKey".to_string(), s("shard-0")),
                ("leaseCounter".to_string(), AttributeValue::N("0".into())),
            ]
            .into_iter()
            .collect(),
            condition: Some(Condition::AttributeNotExists("leaseKey".into())),
        });
        state.apply(&put).unwrap();
        let again = state.apply(&put).unwrap_err();
        assert_eq!(again.code, ErrorCode::ConditionalCheckFailed);
        assert!(
            again.current_item_opt.is_some(),
            "the failure carries the item"
        );

        // Two workers race to take the lease at counter 0: the first applied wins.
        state.apply(&take("worker-a", "0")).unwrap();
        let lost = state.apply(&take("worker-b", "0")).unwrap_err();
        assert_eq!(lost.code, ErrorCode::ConditionalCheckFailed);
        let item = &state.table("app").unwrap().items["shard-0"];
        assert_eq!(item["leaseOwner"], s("worker-a"));
        assert_eq!(item["leaseCounter"], AttributeValue::N("1".into()));
    }

    #[test]
    fn items_need_their_key_and_tables_must_exist() {
        let mut state = MetaState::default();
        let put = |item: Item| {
            table(TableCommand::PutItem {
                table: "app".into(),
                item,
                condition: None,
            })
        };
        assert_eq!(
            state.apply(&put(Item::new())).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
        state
            .apply(&table(TableCommand::CreateTable {
                table: "app".into(),
                key_attribute: "leaseKey".into(),
                created_at_ms: 1,
            }))
            .unwrap();
        let keyless: Item = [("other".to_string(), s("x"))].into_iter().collect();
        assert_eq!(
            state.apply(&put(keyless)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let numeric_key: Item = [("leaseKey".to_string(), AttributeValue::N("1".into()))]
            .into_iter()
            .collect();
        assert_eq!(
            state.apply(&put(numeric_key)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let huge: Item = [
            ("leaseKey".to_string(), s("k")),
            ("blob".to_string(), s(&"x".repeat(MAX_ITEM_BYTES))),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            state.apply(&put(huge)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}
