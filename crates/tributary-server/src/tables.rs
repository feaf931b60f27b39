//! Lease tables, as a node serves them: writes go through the metadata group (conditions are
//! evaluated at apply); reads first catch this node's catalogue up with the metadata leader
//! (ReadIndex), so they are strongly consistent, and fail with WRITE_QUORUM_UNAVAILABLE rather
//! than answer from a replica that cannot confirm it is current.

use tributary_raft::meta::{MetaCommand, TableCommand};
use tributary_types::Error;
use tributary_types::table::{Condition, Item, Update};

use crate::node::Node;
use crate::now_ms;

/// The key attribute of a table created without one (KCL lease tables use it).
pub const DEFAULT_KEY_ATTRIBUTE: &str = "leaseKey";
/// Scan's default and largest page.
pub const MAX_SCAN_LIMIT: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescription {
    pub name: String,
    pub key_attribute: String,
    pub item_count: u64,
    pub created_at_ms: u64,
}

impl Node {
    async fn consistent_read<T>(
        &self,
        read: impl FnOnce(&crate::meta::MetaState) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.sync_metadata().await.map_err(|error| {
            Error::quorum_unavailable(format!(
                "cannot confirm the lease tables are current: {}",
                error.message
            ))
        })?;
        self.meta.read(read)
    }

    pub async fn create_table(
        &self,
        table: &str,
        key_attribute_opt: Option<&str>,
    ) -> Result<(), Error> {
        let command = TableCommand::CreateTable {
            table: table.to_string(),
            key_attribute: key_attribute_opt
                .unwrap_or(DEFAULT_KEY_ATTRIBUTE)
                .to_string(),
            created_at_ms: now_ms(),
        };
        self.meta_write(MetaCommand::Table(command)).await
    }

    pub async fn delete_table(&self, table: &str) -> Result<(), Error> {
        let command = TableCommand::DeleteTable {
            table: table.to_string(),
        };
        self.meta_write(MetaCommand::Table(command)).await
    }

    pub async fn list_tables(&self) -> Result<Vec<String>, Error> {
        self.consistent_read(|state| Ok(state.tables.keys().cloned().collect()))
            .await
    }

    pub async fn describe_table(&self, table: &str) -> Result<TableDescription, Error> {
        self.consistent_read(|state| {
            let meta = state.table(table)?;
            Ok(TableDescription {
                name: table.to_string(),
                key_attribute: meta.key_attribute.clone(),
                item_count: meta.items.len() as u64,
                created_at_ms: meta.created_at_ms,
            })
        })
        .await
    }

    pub async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<(), Error> {
        let command = TableCommand::PutItem {
            table: table.to_string(),
            item,
            condition,
        };
        self.meta_write(MetaCommand::Table(command)).await
    }

    pub async fn get_item(&self, table: &str, key: &str) -> Result<Option<Item>, Error> {
        self.consistent_read(|state| Ok(state.table(table)?.items.get(key).cloned()))
            .await
    }

    /// Updates (or creates) an item and answers it as written.
    pub async fn update_item(
        &self,
        table: &str,
        key: &str,
        updates: Vec<Update>,
        condition: Option<Condition>,
    ) -> Result<Item, Error> {
        if key.is_empty() {
            return Err(Error::invalid_argument("The key must not be empty"));
        }
        let command = TableCommand::UpdateItem {
            table: table.to_string(),
            key: key.to_string(),
            updates,
            condition,
        };
        self.meta_write_item(MetaCommand::Table(command))
            .await?
            .ok_or_else(|| Error::internal("UpdateItem answered no item"))
    }

    pub async fn delete_item(
        &self,
        table: &str,
        key: &str,
        condition: Option<Condition>,
    ) -> Result<(), Error> {
        let command = TableCommand::DeleteItem {
            table: table.to_string(),
            key: key.to_string(),
            condition,
        };
        self.meta_write(MetaCommand::Table(command)).await
    }

    /// Items in key order after `exclusive_start_opt`, and the last key when more follow.
    pub async fn scan(
        &self,
        table: &str,
        limit_opt: Option<u32>,
        exclusive_start_opt: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), Error> {
        let limit = limit_opt.unwrap_or(MAX_SCAN_LIMIT);
        if !(1..=MAX_SCAN_LIMIT).contains(&limit) {
            return Err(Error::invalid_argument(format!(
                "Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {MAX_SCAN_LIMIT}"
            )));
        }
        let limit = limit as usize;
        self.consistent_read(|state| {
            let meta = state.table(table)?;
            let mut page: Vec<(&String, &Item)> = meta
                .items
                .iter()
                .filter(|(key, _)| exclusive_start_opt.is_none_or(|start| key.as_str() > start))
                .take(limit + 1)
                .collect();
            let more = page.len() > limit;
            page.truncate(limit);
            let last_opt = more
                .then(|| page.last().map(|(key, _)| (*key).clone()))
                .flatten();
            Ok((
                page.into_iter().map(|(_, item)| item.clone()).collect(),
                last_opt,
            ))
        })
        .await
    }
}
