//! Managing users and policies, and bootstrapping the first administrator.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tributary_raft::meta::{AuthCommand, MetaCommand};
use tributary_types::{Error, ErrorCode};

use super::policy::PolicyDocument;
use crate::meta::auth::{ADMIN_USER, MAX_USER_NAME, validate_name};
use crate::node::Node;
use crate::now_ms;

/// Access key ids look like AWS's: a fixed prefix and 16 upper-case letters or digits.
const ACCESS_KEY_PREFIX: &str = "TRIB";
/// Secret access keys: 40 characters, as AWS's.
const SECRET_CHARS: usize = 40;
/// How often the admin bootstrap retries while the metadata group has no leader.
const BOOTSTRAP_RETRY: Duration = Duration::from_millis(500);

/// A new user's access key: the only time its secret is shown.
pub struct CreatedKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct UserSummary {
    pub name: String,
    pub access_key_ids: Vec<String>,
    pub policies: Vec<String>,
    pub created_at_ms: u64,
}

pub struct PolicySummary {
    pub name: String,
    pub document: String,
    pub users: Vec<String>,
    pub updated_at_ms: u64,
}

fn random_string(alphabet: &[u8], len: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal("no randomness for a key"))?;
    // 256 is a multiple of neither alphabet; the bias (< 1%) does not matter for 16-40 chars
    // drawn from 2^128+ possibilities.
    Ok(bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

/// A new random access key: `TRIB` and 16 letters or digits, and a 40-character secret.
pub fn new_key() -> Result<CreatedKey, Error> {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Ok(CreatedKey {
        access_key_id: format!("{ACCESS_KEY_PREFIX}{}", random_string(UPPER, 16)?),
        secret_access_key: random_string(SECRET, SECRET_CHARS)?,
    })
}

impl Node {
    fn require_auth(&self) -> Result<(), Error> {
        if self.auth_mode() == super::AuthMode::None {
            return Err(Error::invalid_argument(
                "users and policies need nodes run with --auth required",
            ));
        }
        Ok(())
    }

    /// A new user with a new access key, and `policies` attached.
    pub async fn create_user(&self, user: &str, policies: &[String]) -> Result<CreatedKey, Error> {
        self.require_auth()?;
        validate_name("user", user, MAX_USER_NAME)?;
        self.catch_up_metadata().await;
        let missing: Vec<&String> = self.meta.read(|state| {
            policies
                .iter()
                .filter(|p| !state.auth.policies.contains_key(*p))
                .collect()
        });
        if !missing.is_empty() {
            return Err(Error::not_found(format!("Policies {missing:?} not found")));
        }
        let key = new_key()?;
        let sealed_secret = self.seal_secret(&key.access_key_id, &key.secret_access_key)?;
        self.meta_write(MetaCommand::Auth(AuthCommand::CreateUser {
            user: user.to_string(),
            access_key_id: key.access_key_id.clone(),
            sealed_secret,
            at_ms: now_ms(),
        }))
        .await?;
        for policy in policies {
            self.attach_policy(user, policy).await?;
        }
        Ok(key)
    }

    pub async fn delete_user(&self, user: &str) -> Result<(), Error> {
        self.require_auth()?;
        self.meta_write(MetaCommand::Auth(AuthCommand::DeleteUser {
            user: user.to_string(),
        }))
        .await
    }

    pub async fn list_users(&self) -> Vec<UserSummary> {
        self.catch_up_metadata().await;
        self.meta.read(|state| {
            state
                .auth
                .users
                .iter()
                .map(|(name, user)| UserSummary {
                    name: name.clone(),
                    access_key_ids: user
                        .access_keys
                        .iter()
                        .map(|k| k.access_key_id.clone())
                        .collect(),
                    policies: user.policies.iter().cloned().collect(),
                    created_at_ms: user.created_at_ms,
                })
                .collect()
        })
    }

    pub async fn put_policy(&self, policy: &str, document: &str) -> Result<(), Error> {
        self.require_auth()?;
        validate_name("policy", policy, 128)?;
        PolicyDocument::parse(document)?;
        self.meta_write(MetaCommand::Auth(AuthCommand::PutPolicy {
            policy: policy.to_string(),
            document: document.to_string(),
            at_ms: now_ms(),
        }))
        .await
    }

    pub async fn delete_policy(&self, policy: &str) -> Result<(), Error> {
        self.require_auth()?;
        self.meta_write(MetaCommand::Auth(AuthCommand::DeletePolicy {
            policy: policy.to_string(),
        }))
        .await
    }

    pub async fn attach_policy(&self, user: &str, policy: &str) -> Result<(), Error> {
        self.require_auth()?;
        self.meta_write(MetaCommand::Auth(AuthCommand::AttachPolicy {
            user: user.to_string(),
            policy: policy.to_string(),
        }))
        .await
    }

    pub async fn detach_policy(&self, user: &str, policy: &str) -> Result<(), Error> {
        self.require_auth()?;
        self.meta_write(MetaCommand::Auth(AuthCommand::DetachPolicy {
            user: user.to_string(),
            policy: policy.to_string(),
        }))
        .await
    }

    pub async fn list_policies(&self) -> Vec<PolicySummary> {
        self.catch_up_metadata().await;
        self.meta.read(|state| {
            state
                .auth
                .policies
                .iter()
                .map(|(name, policy)| PolicySummary {
                    name: name.clone(),
                    document: policy.document.clone(),
                    users: state
                        .auth
                        .users
                        .iter()
                        .filter(|(_, user)| user.policies.contains(name))
                        .map(|(user, _)| user.clone())
                        .collect(),
                    updated_at_ms: policy.updated_at_ms,
                })
                .collect()
        })
    }
}

/// `--admin-key-file`: makes the user `admin` with this key once the metadata group takes
/// writes, unless a user `admin` exists (then a different key in the file is reported).
pub(crate) async fn bootstrap_admin(node: Arc<Node>, access_key_id: String, secret: String) {
    let mut stop = node.stop_signal();
    loop {
        let attempt = async {
            let sealed_secret = node.seal_secret(&access_key_id, &secret)?;
            node.meta_write(MetaCommand::Auth(AuthCommand::BootstrapAdmin {
                access_key_id: access_key_id.clone(),
                sealed_secret,
                at_ms: now_ms(),
            }))
            .await
        };
        match attempt.await {
            Ok(()) => break,
            Err(error) if error.code == ErrorCode::ResourceInUse => {
                tracing::error!(%error, "the --admin-key-file key belongs to another user; no admin bootstrapped");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "waiting for the metadata group to bootstrap the admin");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BOOTSTRAP_RETRY) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
    match node.access_key_secret(&access_key_id) {
        Some((user, _)) if user == ADMIN_USER => {
            tracing::info!(%access_key_id, "administrator '{ADMIN_USER}' ready")
        }
        _ => tracing::warn!(
            %access_key_id,
            "a user '{ADMIN_USER}' exists with another key: the --admin-key-file key is not used"
        ),
    }
}

/// Reads an admin key file: `ACCESS_KEY_ID:SECRET` on one line, or the AWS credentials format
/// (its first profile).
pub fn read_admin_key_file(path: &std::path::Path) -> anyhow::Result<(String, String)> {
    let mut credentials = tributary_kinesis::sigv4::Credentials::default();
    credentials
        .load_file(path)
        .map_err(|e| anyhow::anyhow!("--admin-key-file {e}"))?;
    let mut pairs = credentials.pairs();
    let Some((id, secret)) = pairs.next() else {
        anyhow::bail!("--admin-key-file {} holds no access key", path.display());
    };
    if pairs.next().is_some() {
        anyhow::bail!(
            "--admin-key-file {} holds more than one access key",
            path.display()
        );
    }
    Ok((id, secret))
}
