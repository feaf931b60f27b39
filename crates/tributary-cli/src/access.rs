//! `tributary user` and `tributary policy`: who may do what on a cluster run with
//! `--auth required`; and `tributary keys`: the key ring file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use tributary_server::keyring;

use crate::ClientArgs;
use crate::output::{print_json, print_table};

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// A user with a new access key; prints the secret access key, this once.
    Create {
        name: String,
        /// Policies to attach at once (repeatable).
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    /// Delete a user and its access keys.
    Delete { name: String },
    /// Users, their access key ids and policies.
    List,
}

#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Create or replace a policy from an IAM-like JSON document.
    Put {
        name: String,
        /// The document: a file path, or the JSON itself.
        #[arg(long)]
        document: String,
    },
    /// Attach a policy to a user.
    Attach {
        name: String,
        #[arg(long)]
        user: String,
    },
    /// Detach a policy from a user.
    Detach {
        name: String,
        #[arg(long)]
        user: String,
    },
    /// Delete a policy attached to no user.
    Delete { name: String },
    /// Policies, their documents and users.
    List,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// A new key ring file with one key (default: `default`), readable by its owner only.
    Create {
        #[arg(long)]
        out: PathBuf,
        /// Key names (repeatable).
        #[arg(long = "key", default_value = keyring::DEFAULT_KEY)]
        keys: Vec<String>,
    },
    /// Add a version to a key (a new key if absent): new data is sealed with it, old data stays
    /// readable. Copy the file to every node afterwards (nodes read it at start).
    Rotate {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = keyring::DEFAULT_KEY)]
        key: String,
    },
}

pub async fn run_user(command: UserCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        UserCommand::Create { name, policies } => {
            let created = client.create_user(&name, policies).await?;
            if args.json {
                print_json(&json!({
                    "user_name": created.user_name,
                    "arn": created.arn,
                    "access_key_id": created.access_key_id,
                    "secret_access_key": created.secret_access_key,
                }));
            } else {
                println!("Created user {} ({})", created.user_name, created.arn);
                println!("access key id:     {}", created.access_key_id);
                println!("secret access key: {}", created.secret_access_key);
                println!("(the secret is shown this once)");
            }
        }
        UserCommand::Delete { name } => {
            client.delete_user(&name).await?;
            if args.json {
                print_json(&json!({"user_name": name, "deleted": true}));
            } else {
                println!("Deleted user {name}");
            }
        }
        UserCommand::List => {
            let users = client.list_users().await?;
            if args.json {
                let users: Vec<_> = users
                    .iter()
                    .map(|u| {
                        json!({"user_name": u.user_name, "arn": u.arn,
                            "access_key_ids": u.access_key_ids, "policies": u.policy_names,
                            "created_at_ms": u.created_at_ms})
                    })
                    .collect();
                print_json(&json!({ "users": users }));
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.user_name.clone(),
                            u.access_key_ids.join(","),
                            u.policy_names.join(","),
                        ]
                    })
                    .collect();
                print_table(&["USER", "ACCESS KEYS", "POLICIES"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_policy(command: PolicyCommand, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = args.client()?;
    match command {
        PolicyCommand::Put { name, document } => {
            let text = if document.trim_start().starts_with('{') {
                document
            } else {
                std::fs::read_to_string(&document)
                    .with_context(|| format!("reading the policy document {document}"))?
            };
            client.put_policy(&name, &text).await?;
            done(
                args,
                &json!({"policy_name": name, "put": true}),
                &format!("Put policy {name}"),
            );
        }
        PolicyCommand::Attach { name, user } => {
            client.attach_policy(&name, &user).await?;
            done(
                args,
                &json!({"policy_name": name, "user_name": user, "attached": true}),
                &format!("Attached policy {name} to user {user}"),
            );
        }
        PolicyCommand::Detach { name, user } => {
            client.detach_policy(&name, &user).await?;
            done(
                args,
                &json!({"policy_name": name, "user_name": user, "detached": true}),
                &format!("Detached policy {name} from user {user}"),
            );
        }
        PolicyCommand::Delete { name } => {
            client.delete_policy(&name).await?;
            done(
                args,
                &json!({"policy_name": name, "deleted": true}),
                &format!("Deleted policy {name}"),
            );
        }
        PolicyCommand::List => {
            let policies = client.list_policies().await?;
            if args.json {
                let policies: Vec<_> = policies
                    .iter()
                    .map(|p| {
                        json!({"policy_name": p.policy_name, "arn": p.arn,
                            "document": serde_json::from_str::<serde_json::Value>(&p.policy_document)
                                .unwrap_or_else(|_| json!(p.policy_document)),
                            "users": p.user_names, "updated_at_ms": p.updated_at_ms})
                    })
                    .collect();
                print_json(&json!({ "policies": policies }));
            } else {
                let rows: Vec<Vec<String>> = policies
                    .iter()
                    .map(|p| vec![p.policy_name.clone(), p.user_names.join(",")])
                    .collect();
                print_table(&["POLICY", "USERS"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn done(args: &ClientArgs, value: &serde_json::Value, text: &str) {
    if args.json {
        print_json(value);
    } else {
        println!("{text}");
    }
}

pub fn run_keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create { out, keys } => {
            keyring::create_file(&out, &keys)?;
            println!(
                "wrote the key ring {} with keys {}; give every node --key-ring {}",
                out.display(),
                keys.join(", "),
                out.display()
            );
        }
        KeysCommand::Rotate { file, key } => {
            let versions = keyring::rotate_file(&file, &key)?;
            println!(
                "key {key} now has {versions} versions in {}; copy it to every node, then restart them one at a time",
                file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
