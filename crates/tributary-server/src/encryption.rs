//! Start/StopStreamEncryption: server-side encryption of a stream's records with a key of the
//! nodes' key ring (the stand-in for KMS).
//!
//! Once a stream is encrypted, the node that receives a put seals each record (partition key and
//! data) with AES-256-GCM under a key derived for the batch (`keyring::BatchSealer`) before it goes
//! to the shard's leader, so the Raft log, the record store, snapshots and calls between nodes only
//! ever hold it sealed. Reads open records on the replica that serves them. Records written before
//! StartStreamEncryption stay in clear, and those written before StopStreamEncryption stay sealed
//! (and readable); each record reports which (`EncryptionType`), as in Kinesis.
//!
//! As in Kinesis, the change reaches every node within a moment (here: the catalogue's replication
//! lag) rather than atomically; a put's answer says whether its records were encrypted.

use tributary_raft::meta::{MetaCommand, StreamEncryption};
use tributary_types::{EncryptionType, Error, StreamName};

use crate::keyring::{DEFAULT_KEY, validate_key_name};
use crate::node::Node;
use crate::now_ms;

/// Kinesis' AWS-managed key for Kinesis; here the key ring's `default` key.
pub const AWS_MANAGED_KEY_ALIAS: &str = "alias/aws/kinesis";
/// KeyId is 1..2048 characters (Kinesis).
const MAX_KEY_ID_CHARS: usize = 2048;

/// The key ring key a Kinesis `KeyId` names:
/// - `alias/aws/kinesis`, or an ARN of that alias: `default`;
/// - `alias/NAME`, `arn:aws:kms:REGION:ACCOUNT:alias/NAME` or `arn:aws:kms:REGION:ACCOUNT:key/NAME`:
///   `NAME`;
/// - anything else is the key's name itself.
pub fn key_name(key_id: &str) -> Result<String, Error> {
    if key_id.is_empty() || key_id.chars().count() > MAX_KEY_ID_CHARS {
        return Err(Error::invalid_argument(format!(
            "Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and {MAX_KEY_ID_CHARS}"
        )));
    }
    let resource = match key_id.strip_prefix("arn:") {
        Some(rest) => {
            // arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts.as_slice() {
                [_, "kms", _, _, resource] => *resource,
                _ => {
                    return Err(Error::invalid_argument(format!(
                        "KeyId {key_id} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/NAME or :alias/NAME)"
                    )));
                }
            }
        }
        None => key_id,
    };
    let name = if resource == AWS_MANAGED_KEY_ALIAS {
        DEFAULT_KEY
    } else if let Some(name) = resource.strip_prefix("alias/") {
        name
    } else if let Some(name) = resource.strip_prefix("key/").filter(|_| resource != key_id) {
        name
    } else {
        resource
    };
    validate_key_name(name).map_err(|e| Error::invalid_argument(format!("KeyId {key_id}: {e}")))?;
    Ok(name.to_string())
}

/// Start/StopStreamEncryption take `EncryptionType` KMS, the only kind there is.
fn require_kms(encryption_type: &str) -> Result<(), Error> {
    match encryption_type.parse::<EncryptionType>()? {
        EncryptionType::Kms => Ok(()),
        EncryptionType::None => Err(Error::invalid_argument(
            "EncryptionType must be KMS (NONE is what StopStreamEncryption leaves)",
        )),
    }
}

impl Node {
    /// StartStreamEncryption: new records of the stream are sealed with the key `key_id` names,
    /// which must be in this node's key ring (KMS_NOT_FOUND otherwise; every node needs the same
    /// key ring file). Starting again with the same key changes nothing.
    pub async fn start_stream_encryption(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        require_kms(encryption_type)?;
        let key = key_name(key_id)?;
        let ring = self.keys.require("StartStreamEncryption")?;
        if !ring.contains(&key) {
            return Err(Error::new(
                tributary_types::ErrorCode::KmsNotFound,
                format!("KeyId {key_id} names key {key}, which is not in this node's key ring"),
            ));
        }
        let stream = self.stream_meta(&name).await?;
        let encryption = StreamEncryption {
            key_id: key_id.to_string(),
            key,
        };
        if stream.encryption_opt.as_ref() == Some(&encryption) {
            return Ok(());
        }
        self.meta_write(MetaCommand::SetStreamEncryption {
            name,
            encryption_opt: Some(encryption),
            at_ms: now_ms(),
        })
        .await
    }

    /// StopStreamEncryption: new records are stored in clear again; sealed ones stay sealed and
    /// readable. Stopping a stream that is not encrypted changes nothing.
    pub async fn stop_stream_encryption(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<(), Error> {
        let name: StreamName = name.parse()?;
        require_kms(encryption_type)?;
        key_name(key_id)?;
        let stream = self.stream_meta(&name).await?;
        if stream.encryption_opt.is_none() {
            return Ok(());
        }
        self.meta_write(MetaCommand::SetStreamEncryption {
            name,
            encryption_opt: None,
            at_ms: now_ms(),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_name_key_ring_keys() {
        assert_eq!(key_name("alias/aws/kinesis").unwrap(), "default");
        assert_eq!(
            key_name("arn:aws:kms:eu-west-1:000000000000:alias/aws/kinesis").unwrap(),
            "default"
        );
        assert_eq!(key_name("alias/orders").unwrap(), "orders");
        assert_eq!(
            key_name("arn:aws:kms:us-east-1:123456789012:alias/orders").unwrap(),
            "orders"
        );
        assert_eq!(
            key_name("arn:aws:kms:us-east-1:123456789012:key/orders-2026").unwrap(),
            "orders-2026"
        );
        assert_eq!(key_name("orders").unwrap(), "orders");
        assert_eq!(key_name("key/orders").unwrap(), "key/orders");
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:kms:r",
            "alias/",
            "has space",
            &"k".repeat(2049),
        ] {
            let error = key_name(bad).unwrap_err();
            assert_eq!(
                error.code,
                tributary_types::ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn only_kms_is_an_encryption_type_to_start_or_stop() {
        assert!(require_kms("KMS").is_ok());
        assert!(require_kms("NONE").is_err());
        assert!(require_kms("kms").is_err());
    }
}
