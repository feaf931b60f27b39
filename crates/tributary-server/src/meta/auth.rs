//! Users, access keys and policies in the metadata catalogue: apply functions for
//! [`AuthCommand`]s. Secrets are stored as the proposer sealed them with the key ring.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tributary_raft::meta::AuthCommand;
use tributary_types::{Error, ErrorCode};

use super::state::MetaState;
use crate::auth::policy::PolicyDocument;

/// Users and policies a cluster may hold, and policies attached to one user (IAM's default).
pub const MAX_USERS: usize = 1_000;
pub const MAX_POLICIES: usize = 1_000;
pub const MAX_POLICIES_PER_USER: usize = 10;
/// The longest user name (IAM's limit).
pub const MAX_USER_NAME: usize = 64;
/// The user `--admin-key-file` makes, and the policy it gets.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_POLICY: &str = "AdministratorAccess";
pub const ADMIN_POLICY_DOCUMENT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub users: BTreeMap<String, UserMeta>,
    pub policies: BTreeMap<String, PolicyMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMeta {
    pub access_keys: Vec<AccessKeyMeta>,
    pub policies: BTreeSet<String>,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyMeta {
    pub access_key_id: String,
    /// A postcard-encoded `keyring::Sealed`.
    pub sealed_secret: Vec<u8>,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMeta {
    /// The JSON document as given (validated when put).
    pub document: String,
    /// The document parsed once, when applied, so no call parses it again.
    pub parsed: PolicyDocument,
    pub updated_at_ms: u64,
}

impl AuthState {
    /// The user an access key belongs to, and the key.
    pub fn access_key(&self, access_key_id: &str) -> Option<(&str, &AccessKeyMeta)> {
        self.users.iter().find_map(|(name, user)| {
            user.access_keys
                .iter()
                .find(|key| key.access_key_id == access_key_id)
                .map(|key| (name.as_str(), key))
        })
    }
}

/// IAM's user and policy names: letters, digits and `+=,.@_-`, 1..=64 (128 for policies).
pub fn validate_name(kind: &str, name: &str, max: usize) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "{kind} name '{name}' must be 1-{max} letters, digits or +=,.@_-"
        )))
    }
}

fn user_not_found(user: &str) -> Error {
    Error::not_found(format!("User {user} not found"))
}

fn policy_not_found(policy: &str) -> Error {
    Error::not_found(format!("Policy {policy} not found"))
}

impl MetaState {
    pub(super) fn apply_auth(&mut self, command: &AuthCommand) -> Result<(), Error> {
        let auth = &mut self.auth;
        match command {
            AuthCommand::CreateUser {
                user,
                access_key_id,
                sealed_secret,
                at_ms,
            } => {
                validate_name("user", user, MAX_USER_NAME)?;
                if auth.users.contains_key(user) {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("User {user} already exists"),
                    ));
                }
                if auth.users.len() >= MAX_USERS {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!("The cluster holds at most {MAX_USERS} users"),
                    ));
                }
                if auth.access_key(access_key_id).is_some() {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("Access key {access_key_id} already exists"),
                    ));
                }
                auth.users.insert(
                    user.clone(),
                    UserMeta {
                        access_keys: vec![AccessKeyMeta {
                            access_key_id: access_key_id.clone(),
                            sealed_secret: sealed_secret.clone(),
                            created_at_ms: *at_ms,
                        }],
                        policies: BTreeSet::new(),
                        created_at_ms: *at_ms,
                    },
                );
            }
            AuthCommand::DeleteUser { user } => {
                auth.users
                    .remove(user)
                    .ok_or_else(|| user_not_found(user))?;
            }
            AuthCommand::PutPolicy {
                policy,
                document,
                at_ms,
            } => {
                validate_name("policy", policy, 128)?;
                if !auth.policies.contains_key(policy) && auth.policies.len() >= MAX_POLICIES {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!("The cluster holds at most {MAX_POLICIES} policies"),
                    ));
                }
                let parsed = PolicyDocument::parse(document)?;
                auth.policies.insert(
                    policy.clone(),
                    PolicyMeta {
                        document: document.clone(),
                        parsed,
                        updated_at_ms: *at_ms,
                    },
                );
            }
            AuthCommand::DeletePolicy { policy } => {
                if !auth.policies.contains_key(policy) {
                    return Err(policy_not_found(policy));
                }
                let users: Vec<&String> = auth
                    .users
                    .iter()
                    .filter(|(_, user)| user.policies.contains(policy))
                    .map(|(name, _)| name)
                    .collect();
                if !users.is_empty() {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("Policy {policy} is attached to {users:?}; detach it first"),
                    ));
                }
                auth.policies.remove(policy);
            }
            AuthCommand::AttachPolicy { user, policy } => {
                if !auth.policies.contains_key(policy) {
                    return Err(policy_not_found(policy));
                }
                let meta = auth
                    .users
                    .get_mut(user)
                    .ok_or_else(|| user_not_found(user))?;
                if !meta.policies.contains(policy) && meta.policies.len() >= MAX_POLICIES_PER_USER {
                    return Err(Error::new(
                        ErrorCode::LimitExceeded,
                        format!("A user has at most {MAX_POLICIES_PER_USER} policies"),
                    ));
                }
                meta.policies.insert(policy.clone());
            }
            AuthCommand::DetachPolicy { user, policy } => {
                let meta = auth
                    .users
                    .get_mut(user)
                    .ok_or_else(|| user_not_found(user))?;
                if !meta.policies.remove(policy) {
                    return Err(Error::not_found(format!(
                        "Policy {policy} is not attached to user {user}"
                    )));
                }
            }
            AuthCommand::BootstrapAdmin {
                access_key_id,
                sealed_secret,
                at_ms,
            } => {
                if auth.users.contains_key(ADMIN_USER) {
                    return Ok(());
                }
                if auth.access_key(access_key_id).is_some() {
                    return Err(Error::new(
                        ErrorCode::ResourceInUse,
                        format!("Access key {access_key_id} belongs to another user"),
                    ));
                }
                if !auth.policies.contains_key(ADMIN_POLICY) {
                    auth.policies.insert(
                        ADMIN_POLICY.to_string(),
                        PolicyMeta {
                            document: ADMIN_POLICY_DOCUMENT.to_string(),
                            parsed: PolicyDocument::parse(ADMIN_POLICY_DOCUMENT)?,
                            updated_at_ms: *at_ms,
                        },
                    );
                }
                auth.users.insert(
                    ADMIN_USER.to_string(),
                    UserMeta {
                        access_keys: vec![AccessKeyMeta {
                            access_key_id: access_key_id.clone(),
                            sealed_secret: sealed_secret.clone(),
                            created_at_ms: *at_ms,
                        }],
                        policies: BTreeSet::from([ADMIN_POLICY.to_string()]),
                        created_at_ms: *at_ms,
                    },
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_raft::meta::MetaCommand;

    fn create(user: &str, key: &str) -> MetaCommand {
        MetaCommand::Auth(AuthCommand::CreateUser {
            user: user.to_string(),
            access_key_id: key.to_string(),
            sealed_secret: vec![1, 2, 3],
            at_ms: 1,
        })
    }

    fn auth(command: AuthCommand) -> MetaCommand {
        MetaCommand::Auth(command)
    }

    #[test]
    fn users_policies_and_attachments_keep_their_rules() {
        let mut state = MetaState::default();
        state.apply(&create("bob", "AK1")).unwrap();
        assert_eq!(
            state.apply(&create("bob", "AK2")).unwrap_err().code,
            ErrorCode::ResourceInUse
        );
        assert_eq!(
            state.apply(&create("eve", "AK1")).unwrap_err().code,
            ErrorCode::ResourceInUse,
            "an access key belongs to one user"
        );
        assert_eq!(
            state.apply(&create("bad name", "AK3")).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let attach = auth(AuthCommand::AttachPolicy {
            user: "bob".into(),
            policy: "p".into(),
        });
        assert_eq!(
            state.apply(&attach).unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
        state
            .apply(&auth(AuthCommand::PutPolicy {
                policy: "p".into(),
                document: "{}".into(),
                at_ms: 2,
            }))
            .expect_err("a malformed document is refused at apply too");
        state
            .apply(&auth(AuthCommand::PutPolicy {
                policy: "p".into(),
                document: ADMIN_POLICY_DOCUMENT.into(),
                at_ms: 2,
            }))
            .unwrap();
        state.apply(&attach).unwrap();
        assert_eq!(
            state
                .apply(&auth(AuthCommand::DeletePolicy { policy: "p".into() }))
                .unwrap_err()
                .code,
            ErrorCode::ResourceInUse
        );
        state
            .apply(&auth(AuthCommand::DetachPolicy {
                user: "bob".into(),
                policy: "p".into(),
            }))
            .unwrap();
        state
            .apply(&auth(AuthCommand::DeletePolicy { policy: "p".into() }))
            .unwrap();
        assert_eq!(state.auth.access_key("AK1").unwrap().0, "bob");
        state
            .apply(&auth(AuthCommand::DeleteUser { user: "bob".into() }))
            .unwrap();
        assert!(state.auth.access_key("AK1").is_none());
    }

    #[test]
    fn the_admin_is_bootstrapped_once() {
        let mut state = MetaState::default();
        let bootstrap = |key: &str| {
            auth(AuthCommand::BootstrapAdmin {
                access_key_id: key.to_string(),
                sealed_secret: vec![9],
                at_ms: 1,
            })
        };
        state.apply(&bootstrap("ADMINKEY")).unwrap();
        state.apply(&bootstrap("OTHERKEY")).unwrap();
        let admin = &state.auth.users[ADMIN_USER];
        assert_eq!(admin.access_keys.len(), 1);
        assert_eq!(admin.access_keys[0].access_key_id, "ADMINKEY");
        assert!(admin.policies.contains(ADMIN_POLICY));
        assert!(state.auth.policies.contains_key(ADMIN_POLICY));
    }
}
