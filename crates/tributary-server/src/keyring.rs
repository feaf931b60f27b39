//! The key ring: named AES-256 keys in a local file (`--key-ring`), the stand-in for a KMS.
//!
//! Each key has versions; the newest seals, every version opens, so rotating a key
//! (`tributary keys rotate`) keeps everything sealed before readable. Sealed data names its key and
//! version ([`Sealed`]). Every node of a cluster needs the same file: a node seals, any replica
//! opens. The interface is small on purpose ([`KeyRing::seal`], [`KeyRing::open`]) so a real KMS or
//! Vault can stand behind it later.
//!
//! File format (TOML), one table per key, versions oldest first, each 32 bytes in base64:
//!
//! ```toml
//! [keys.default]
//! versions = ["q0Xc...=", "Zk3T...="]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tributary_types::{Error, ErrorCode};

/// The key `tributary keys create` makes, and the one Kinesis' AWS-managed key id
/// (`alias/aws/kinesis`) stands for.
pub const DEFAULT_KEY: &str = "default";
/// Key bytes (AES-256).
const KEY_LEN: usize = 32;

/// Data sealed with AES-256-GCM under one version of a named key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key: String,
    pub version: u32,
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRingFile {
    #[serde(default)]
    keys: BTreeMap<String, KeyVersions>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyVersions {
    versions: Vec<String>,
}

/// Keys loaded from a key ring file.
pub struct KeyRing {
    keys: BTreeMap<String, Vec<LessSafeKey>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and version counts only: never key bytes.
        let versions: BTreeMap<&String, usize> =
            self.keys.iter().map(|(name, v)| (name, v.len())).collect();
        f.debug_struct("KeyRing").field("keys", &versions).finish()
    }
}

impl KeyRing {
    pub fn load(path: &Path) -> anyhow::Result<KeyRing> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the key ring {}", path.display()))?;
        let file: KeyRingFile = toml::from_str(&text)
            .with_context(|| format!("parsing the key ring {}", path.display()))?;
        let mut keys = BTreeMap::new();
        for (name, versions) in file.keys {
            validate_key_name(&name)?;
            if versions.versions.is_empty() {
                bail!("key {name} in {} has no versions", path.display());
            }
            let mut loaded = Vec::new();
            for (index, encoded) in versions.versions.iter().enumerate() {
                let bytes = STANDARD.decode(encoded.trim()).with_context(|| {
                    format!("version {} of key {name} is not base64", index + 1)
                })?;
                let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
                    anyhow::anyhow!("version {} of key {name} is not {KEY_LEN} bytes", index + 1)
                })?;
                loaded.push(LessSafeKey::new(unbound));
            }
            keys.insert(name, loaded);
        }
        if keys.is_empty() {
            bail!("the key ring {} holds no key", path.display());
        }
        Ok(KeyRing { keys })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    pub fn key_names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Seals `plaintext` with the newest version of `key`; `aad` binds it to its context (it
    /// must be given again to open it).
    pub fn seal(&self, key: &str, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, Error> {
        let versions = self.versions(key)?;
        let version = versions.len() as u32;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::internal("no randomness for a nonce"))?;
        let mut ciphertext = plaintext.to_vec();
        versions[versions.len() - 1]
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut ciphertext,
            )
            .map_err(|_| Error::internal("sealing failed"))?;
        Ok(Sealed {
            key: key.to_string(),
            version,
            nonce,
            ciphertext,
        })
    }

    /// Opens what [`KeyRing::seal`] sealed with the same `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, Error> {
        let versions = self.versions(&sealed.key)?;
        let key = (sealed.version as usize)
            .checked_sub(1)
            .and_then(|index| versions.get(index))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::KmsNotFound,
                    format!(
                        "version {} of key {} is not in this node's key ring",
                        sealed.version, sealed.key
                    ),
                )
            })?;
        let mut buffer = sealed.ciphertext.clone();
        let plaintext = key
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .map_err(|_| {
                Error::internal(format!(
                    "data sealed with key {} version {} does not open: corrupt, or a different key under the same name",
                    sealed.key, sealed.version
                ))
            })?;
        Ok(plaintext.to_vec())
    }

    fn versions(&self, key: &str) -> Result<&Vec<LessSafeKey>, Error> {
        self.keys.get(key).ok_or_else(|| {
            Error::new(
                ErrorCode::KmsNotFound,
                format!("key {key} is not in this node's key ring"),
            )
        })
    }
}

/// Key names: letters, digits, `-`, `_`, `/` (so `alias/...`-like names work), 1..=256.
pub fn validate_key_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'));
    if !ok {
        bail!("key name '{name}' must be 1-256 letters, digits, '-', '_', '.' or '/'");
    }
    Ok(())
}

fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a key"))?;
    Ok(STANDARD.encode(bytes))
}

/// Writes a new key ring file with one fresh key per name (mode 0600; refuses to overwrite).
pub fn create_file(path: &Path, names: &[String]) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} exists; a key ring is never overwritten", path.display());
    }
    let mut file = KeyRingFile::default();
    for name in names {
        validate_key_name(name)?;
        file.keys.insert(
            name.clone(),
            KeyVersions {
                versions: vec![random_key()?],
            },
        );
    }
    write_file(path, &file, true)
}

/// Adds a new version to `name` (a new key when there is none); the new version seals from the
/// moment a node loads the file. Returns the key's version count.
pub fn rotate_file(path: &Path, name: &str) -> anyhow::Result<usize> {
    validate_key_name(name)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut file: KeyRingFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let versions = file.keys.entry(name.to_string()).or_default();
    versions.versions.push(random_key()?);
    let count = versions.versions.len();
    write_file(path, &file, false)?;
    Ok(count)
}

fn write_file(path: &Path, file: &KeyRingFile, new: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::from(
        "# Tributary key ring: AES-256 keys, versions oldest first; the last version seals.\n\
         # Every node needs the same file. Keep it secret; never delete a version still in use.\n",
    );
    text.push_str(&toml::to_string(file).context("writing the key ring")?);
    // Written to a temporary file and renamed, so a node re-reading it never sees half a file.
    let tmp = path.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    if new && path.exists() {
        bail!("{} appeared while writing it", path.display());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_after_rotation_and_not_with_other_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        create_file(&path, &["default".to_string()]).unwrap();
        assert!(create_file(&path, &["default".to_string()]).is_err());
        let ring = KeyRing::load(&path).unwrap();
        let old = ring.seal("default", b"ctx", b"secret payload").unwrap();
        assert_eq!(old.version, 1);
        assert!(!old.ciphertext.windows(6).any(|w| w == b"secret"));

        assert_eq!(rotate_file(&path, "default").unwrap(), 2);
        let ring = KeyRing::load(&path).unwrap();
        let new = ring.seal("default", b"ctx", b"newer").unwrap();
        assert_eq!(new.version, 2);
        assert_eq!(ring.open(&old, b"ctx").unwrap(), b"secret payload");
        assert_eq!(ring.open(&new, b"ctx").unwrap(), b"newer");
        assert!(ring.open(&old, b"other context").is_err());
        let missing = ring.seal("nope", b"", b"x").unwrap_err();
        assert_eq!(missing.code, ErrorCode::KmsNotFound);
        let text = std::fs::read_to_string(&path).unwrap();
        let first_key = text.split('"').nth(1).unwrap();
        assert_eq!(first_key.len(), 44, "{text}");
        assert!(!format!("{ring:?}").contains(first_key));
    }
}
