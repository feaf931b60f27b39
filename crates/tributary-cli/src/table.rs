//! `tributary table create|list|describe|scan|get|put|delete`: lease tables. Items print and
//! parse as DynamoDB JSON (`{"leaseKey": {"S": "shardId-000000000000"}, "leaseCounter": {"N": "3"}}`).

use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tributary_client::{AttributeValue, Condition, Item};

use crate::ClientArgs;
use crate::output::{print_json, print_table};

#[derive(clap::Subcommand)]
pub enum TableCommand {
    /// Create a table with a string hash key (default attribute `leaseKey`).
    Create {
        name: String,
        #[arg(long)]
        key_attribute: Option<String>,
    },
    List,
    /// Key attribute, item count, creation time.
    Describe {
        name: String,
    },
    /// Every item, in key order, one DynamoDB-JSON line each.
    Scan {
        name: String,
    },
    /// One item by key.
    Get {
        name: String,
        key: String,
    },
    /// Put an item given as DynamoDB JSON.
    Put {
        name: String,
        item: String,
        /// Only if no item has this key yet (CONDITIONAL_CHECK_FAILED otherwise).
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Delete the table, or with --key one item.
    Delete {
        name: String,
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn run(command: TableCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        TableCommand::Create {
            name,
            key_attribute,
        } => {
            client.create_table(&name, key_attribute.as_deref()).await?;
            done(
                args,
                json!({"table": name, "created": true}),
                &format!("created table {name}"),
            );
        }
        TableCommand::List => {
            let names = client.list_tables().await?;
            if args.json {
                print_json(&json!({"tables": names}));
            } else {
                names.iter().for_each(|name| println!("{name}"));
            }
        }
        TableCommand::Describe { name } => {
            let table = client.describe_table(&name).await?;
            let value = json!({
                "table": table.table_name,
                "key_attribute": table.key_attribute,
                "item_count": table.item_count,
                "creation_timestamp": table.creation_timestamp_ms,
            });
            if args.json {
                print_json(&value);
            } else {
                print_table(
                    &["TABLE", "KEY ATTRIBUTE", "ITEMS"],
                    &[vec![
                        table.table_name,
                        table.key_attribute,
                        table.item_count.to_string(),
                    ]],
                );
            }
        }
        TableCommand::Scan { name } => {
            for item in client.scan(&name).await? {
                print_json(&item_to_json(&item));
            }
        }
        TableCommand::Get { name, key } => match client.get_item(&name, &key).await? {
            Some(item) => print_json(&item_to_json(&item)),
            None => {
                eprintln!("RESOURCE_NOT_FOUND: no item with key {key} in table {name}");
                return Ok(ExitCode::FAILURE);
            }
        },
        TableCommand::Put {
            name,
            item,
            if_not_exists,
        } => {
            let value: Value = serde_json::from_str(&item).context("the item is not JSON")?;
            let item = item_from_json(&value)?;
            let condition_opt = if if_not_exists {
                let key_attribute = client.describe_table(&name).await?.key_attribute;
                Some(Condition::AttributeNotExists(key_attribute))
            } else {
                None
            };
            client
                .put_item(&name, &item, condition_opt.as_ref())
                .await?;
            done(args, json!({"table": name, "put": true}), "put 1 item");
        }
        TableCommand::Delete { name, key } => match key {
            Some(key) => {
                client.delete_item(&name, &key, None).await?;
                done(
                    args,
                    json!({"table": name, "key": key, "deleted": true}),
                    &format!("deleted item {key}"),
                );
            }
            None => {
                client.delete_table(&name).await?;
                done(
                    args,
                    json!({"table": name, "deleted": true}),
                    &format!("deleted table {name}"),
                );
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn done(args: &ClientArgs, value: Value, text: &str) {
    if args.json {
        print_json(&value);
    } else {
        println!("{text}");
    }
}

/// An item as DynamoDB JSON.
pub fn item_to_json(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), value_to_json(value)))
            .collect(),
    )
}

fn value_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": STANDARD.encode(b)}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null => json!({"NULL": true}),
        AttributeValue::Ss(set) => json!({"SS": set}),
        AttributeValue::L(list) => json!({"L": list.iter().map(value_to_json).collect::<Vec<_>>()}),
        AttributeValue::M(map) => json!({"M": item_to_json(map)}),
    }
}

/// Parses DynamoDB JSON into an item.
pub fn item_from_json(value: &Value) -> anyhow::Result<Item> {
    let Value::Object(map) = value else {
        bail!("an item is a JSON object of attributes");
    };
    map.iter()
        .map(|(name, value)| Ok((name.clone(), value_from_json(value)?)))
        .collect()
}

fn value_from_json(value: &Value) -> anyhow::Result<AttributeValue> {
    let typed: &Map<String, Value> = match value {
        Value::Object(typed) if typed.len() == 1 => typed,
        other => bail!("an attribute value is one typed entry like {{\"S\": \"x\"}}, not {other}"),
    };
    let (kind, inner) = typed.iter().next().expect("one entry");
    let text = || {
        inner
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{kind} takes a string"))
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(STANDARD.decode(text()?).context("B takes base64")?.into()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().context("BOOL takes true or false")?),
        "NULL" => AttributeValue::Null,
        "SS" => AttributeValue::Ss(
            inner
                .as_array()
                .context("SS takes a list of strings")?
                .iter()
                .map(|v| v.as_str().map(str::to_string).context("SS takes strings"))
                .collect::<anyhow::Result<_>>()?,
        ),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .context("L takes a list")?
                .iter()
                .map(value_from_json)
                .collect::<anyhow::Result<_>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        other => bail!("unknown attribute type {other} (S, N, B, BOOL, NULL, SS, L, M)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_json_round_trips() {
        let text = r#"{"leaseKey":{"S":"shard-1"},"leaseCounter":{"N":"3"},"parentShardId":{"SS":["a","b"]},
            "meta":{"M":{"x":{"L":[{"NULL":true},{"BOOL":false},{"B":"AAE="}]}}}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let item = item_from_json(&value).unwrap();
        assert_eq!(item["leaseCounter"], AttributeValue::N("3".into()));
        assert_eq!(item_from_json(&item_to_json(&item)).unwrap(), item);
        assert!(item_from_json(&serde_json::json!({"k": {"X": 1}})).is_err());
        assert!(item_from_json(&serde_json::json!({"k": "bare"})).is_err());
    }
}
