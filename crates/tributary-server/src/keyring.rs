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
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tributary_raft::shard::BatchKey;
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

/// One version of a named key: the AES-256-GCM key it seals small values with directly, and its
/// bytes, from which record batch keys are derived.
struct KeyVersion {
    aead: LessSafeKey,
    bytes: [u8; KEY_LEN],
}

/// Keys loaded from a key ring file.
pub struct KeyRing {
    keys: BTreeMap<String, Vec<KeyVersion>>,
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
                let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
                    anyhow::anyhow!("version {} of key {name} is not {KEY_LEN} bytes", index + 1)
                })?;
                let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
                    anyhow::anyhow!("version {} of key {name} is unusable", index + 1)
                })?;
                loaded.push(KeyVersion {
                    aead: LessSafeKey::new(unbound),
                    bytes,
                });
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
            .aead
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
        let key = version_of(versions, &sealed.key, sealed.version)?;
        let mut buffer = sealed.ciphertext.clone();
        let plaintext = key
            .aead
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

    /// How many versions each key has.
    pub fn version_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.keys
            .iter()
            .map(|(name, versions)| (name.as_str(), versions.len()))
    }

    /// A sealer for one put batch under the newest version of `key` (see [`BatchSealer`]).
    pub fn batch_sealer(&self, key: &str) -> Result<BatchSealer, Error> {
        let versions = self.versions(key)?;
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::internal("no randomness for a batch salt"))?;
        let batch_key = BatchKey {
            key: key.to_string(),
            version: versions.len() as u32,
            salt,
        };
        let aead = derive_batch_key(&versions[versions.len() - 1], &salt)?;
        Ok(BatchSealer { aead, batch_key })
    }

    fn versions(&self, key: &str) -> Result<&Vec<KeyVersion>, Error> {
        self.keys.get(key).ok_or_else(|| {
            Error::new(
                ErrorCode::KmsNotFound,
                format!("key {key} is not in this node's key ring"),
            )
        })
    }
}

fn version_of<'a>(
    versions: &'a [KeyVersion],
    key: &str,
    version: u32,
) -> Result<&'a KeyVersion, Error> {
    (version as usize)
        .checked_sub(1)
        .and_then(|index| versions.get(index))
        .ok_or_else(|| {
            Error::new(
                ErrorCode::KmsNotFound,
                format!("version {version} of key {key} is not in this node's key ring"),
            )
        })
}

/// HKDF's `info` for record batch keys: a derived key is for this use only.
const BATCH_KEY_INFO: &[u8] = b"tributary record batch key v1";

/// The AES-256-GCM key of one batch: HKDF-SHA256 of a key version with the batch's salt.
fn derive_batch_key(version: &KeyVersion, salt: &[u8; 16]) -> Result<LessSafeKey, Error> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&version.bytes);
    let okm = prk
        .expand(&[BATCH_KEY_INFO], &AES_256_GCM)
        .map_err(|_| Error::internal("deriving a batch key failed"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Record `position` of a batch: its nonce under the batch's own key.
fn record_nonce(position: u32) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[NONCE_LEN - 4..].copy_from_slice(&position.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// Seals the records of one put batch. Each batch gets its own AES-256-GCM key, derived from the
/// newest version of a named key and a random 128-bit salt, and record `k` is sealed with nonce
/// `k`. A derived key seals one batch only, so nonces never repeat under a key however many
/// records the named key protects (random 96-bit nonces under one key would be safe for only
/// about 2^32 records), and a batch costs one derivation rather than one per record.
pub struct BatchSealer {
    aead: LessSafeKey,
    batch_key: BatchKey,
}

impl BatchSealer {
    pub fn batch_key(&self) -> &BatchKey {
        &self.batch_key
    }

    /// The sealed form of one record: AES-256-GCM of `[partition key length (u16, big endian)]
    /// [partition key][data]`, tag appended. `aad` (the stream name) must be given again to open.
    pub fn seal(
        &self,
        position: u32,
        aad: &[u8],
        partition_key: &str,
        data: &[u8],
    ) -> Result<Bytes, Error> {
        let key_len = u16::try_from(partition_key.len())
            .map_err(|_| Error::invalid_argument("partition key too long to seal"))?;
        let mut buffer = Vec::with_capacity(2 + partition_key.len() + data.len() + 16);
        buffer.extend_from_slice(&key_len.to_be_bytes());
        buffer.extend_from_slice(partition_key.as_bytes());
        buffer.extend_from_slice(data);
        self.aead
            .seal_in_place_append_tag(record_nonce(position), Aad::from(aad), &mut buffer)
            .map_err(|_| Error::internal("sealing a record failed"))?;
        Ok(Bytes::from(buffer))
    }
}

/// Opens sealed records, deriving each batch's key once for its run of records.
pub struct RecordOpener<'a> {
    ring_opt: Option<&'a KeyRing>,
    aad: &'a [u8],
    cached_opt: Option<(String, u32, [u8; 16], LessSafeKey)>,
}

impl<'a> RecordOpener<'a> {
    pub fn new(ring_opt: Option<&'a KeyRing>, aad: &'a [u8]) -> RecordOpener<'a> {
        RecordOpener {
            ring_opt,
            aad,
            cached_opt: None,
        }
    }

    /// The partition key and data of record `position` of the batch sealed under
    /// (`key`, `version`, `salt`).
    pub fn open(
        &mut self,
        key: &str,
        version: u32,
        salt: &[u8; 16],
        position: u32,
        ciphertext: &[u8],
    ) -> Result<(String, Bytes), Error> {
        let cached = matches!(&self.cached_opt,
            Some((k, v, s, _)) if k == key && *v == version && s == salt);
        if !cached {
            let ring = self.ring_opt.ok_or_else(|| {
                Error::new(
                    ErrorCode::KmsNotFound,
                    format!(
                        "the record is sealed with key {key}, and this node has no key ring (--key-ring FILE)"
                    ),
                )
            })?;
            let versions = ring.versions(key)?;
            let aead = derive_batch_key(version_of(versions, key, version)?, salt)?;
            self.cached_opt = Some((key.to_string(), version, *salt, aead));
        }
        let (_, _, _, aead) = self.cached_opt.as_ref().expect("derived above");
        let mut buffer = ciphertext.to_vec();
        let corrupt = || {
            Error::internal(format!(
                "a record sealed with key {key} version {version} does not open: corrupt, or a different key under the same name"
            ))
        };
        let plain_len = aead
            .open_in_place(record_nonce(position), Aad::from(self.aad), &mut buffer)
            .map_err(|_| corrupt())?
            .len();
        buffer.truncate(plain_len);
        if buffer.len() < 2 {
            return Err(corrupt());
        }
        let key_len = usize::from(u16::from_be_bytes([buffer[0], buffer[1]]));
        let key_end = 2 + key_len;
        if buffer.len() < key_end {
            return Err(corrupt());
        }
        let partition_key = std::str::from_utf8(&buffer[2..key_end])
            .map_err(|_| corrupt())?
            .to_string();
        let mut data = Bytes::from(buffer);
        Ok((partition_key, data.split_off(key_end)))
    }
}

/// How often a node looks at its key ring file for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The key ring a node runs with, if any, read again when its file changes so that
/// `tributary keys rotate` takes effect without a restart. A changed file that does not load, or
/// that lost a key or a version the running ring has (data sealed under it would no longer open),
/// is refused: the running ring stays, and the refusal is logged and counted.
pub struct Keys {
    path_opt: Option<PathBuf>,
    current: RwLock<Loaded>,
}

/// The ring in use and the stamp of the file it was loaded from.
#[derive(Clone)]
struct Loaded {
    ring_opt: Option<Arc<KeyRing>>,
    stamp_opt: Option<FileStamp>,
}

/// A file's length and modification time: what tells a reload that it changed.
type FileStamp = (u64, Option<SystemTime>);

impl Keys {
    pub fn load(path_opt: Option<&Path>) -> anyhow::Result<Keys> {
        let (ring_opt, stamp_opt) = match path_opt {
            Some(path) => (
                Some(Arc::new(KeyRing::load(path)?)),
                Some(file_stamp(path)?),
            ),
            None => (None, None),
        };
        Ok(Keys {
            path_opt: path_opt.map(Path::to_path_buf),
            current: RwLock::new(Loaded {
                ring_opt,
                stamp_opt,
            }),
        })
    }

    /// The key ring in use now, if the node has one.
    pub fn current(&self) -> Option<Arc<KeyRing>> {
        self.current
            .read()
            .expect("key ring lock poisoned")
            .ring_opt
            .clone()
    }

    /// The key ring, or KMS_NOT_FOUND naming what needed it.
    pub fn require(&self, purpose: &str) -> Result<Arc<KeyRing>, Error> {
        self.current().ok_or_else(|| {
            Error::new(
                ErrorCode::KmsNotFound,
                format!("{purpose} needs a key ring on every node (--key-ring FILE)"),
            )
        })
    }

    /// Loads the file again if it changed since the last load; `Ok(true)` when a new ring is in
    /// use.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let Some(path) = &self.path_opt else {
            return Ok(false);
        };
        let stamp = file_stamp(path)?;
        let running = self.current.read().expect("key ring lock poisoned").clone();
        if running.stamp_opt == Some(stamp) {
            return Ok(false);
        }
        let ring = KeyRing::load(path)?;
        if let Some(running) = &running.ring_opt {
            for (name, count) in running.version_counts() {
                let now = ring.keys.get(name).map_or(0, Vec::len);
                if now < count {
                    // The same stamp is not recorded: the file is checked again next time.
                    bail!(
                        "key {name} had {count} versions and the file now has {now}; a version still in use would no longer open"
                    );
                }
            }
        }
        crate::telemetry::record_key_ring(&ring);
        *self.current.write().expect("key ring lock poisoned") = Loaded {
            ring_opt: Some(Arc::new(ring)),
            stamp_opt: Some(stamp),
        };
        Ok(true)
    }
}

fn file_stamp(path: &Path) -> anyhow::Result<FileStamp> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((metadata.len(), metadata.modified().ok()))
}

/// The background task that picks up key ring changes.
pub(crate) async fn reload(node: Arc<crate::Node>) {
    let mut stop = node.stop_signal();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELOAD_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match node.keys.reload_if_changed() {
            Ok(false) => {}
            Ok(true) => {
                crate::telemetry::record_key_ring_reload(true);
                tracing::info!("reloaded the key ring");
            }
            Err(error) => {
                crate::telemetry::record_key_ring_reload(false);
                tracing::error!(
                    error = format!("{error:#}"),
                    "the changed key ring does not load; the previous keys stay in use"
                );
            }
        }
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

    #[test]
    fn batches_get_their_own_keys_and_open_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        create_file(&path, &["default".to_string()]).unwrap();
        let ring = KeyRing::load(&path).unwrap();
        let first = ring.batch_sealer("default").unwrap();
        let second = ring.batch_sealer("default").unwrap();
        assert_ne!(first.batch_key().salt, second.batch_key().salt);
        let a = first.seal(0, b"s", "pk", b"same data").unwrap();
        let b = second.seal(0, b"s", "pk", b"same data").unwrap();
        assert_ne!(a, b, "the same record sealed in two batches differs");
        assert_eq!(a.len(), 2 + 2 + 9 + 16);

        rotate_file(&path, "default").unwrap();
        let rotated = KeyRing::load(&path).unwrap();
        let third = rotated.batch_sealer("default").unwrap();
        assert_eq!(third.batch_key().version, 2);
        let c = third.seal(7, b"s", "", b"newer").unwrap();

        let mut opener = RecordOpener::new(Some(&rotated), b"s");
        let key = first.batch_key();
        assert_eq!(
            opener
                .open(&key.key, key.version, &key.salt, 0, &a)
                .unwrap(),
            ("pk".to_string(), Bytes::from_static(b"same data"))
        );
        let key = third.batch_key();
        assert_eq!(
            opener
                .open(&key.key, key.version, &key.salt, 7, &c)
                .unwrap(),
            (String::new(), Bytes::from_static(b"newer"))
        );
        // Another position, a flipped bit or a version the ring lacks: refused.
        assert!(
            opener
                .open(&key.key, key.version, &key.salt, 6, &c)
                .is_err()
        );
        let mut flipped = c.to_vec();
        flipped[3] ^= 1;
        assert!(
            opener
                .open(&key.key, key.version, &key.salt, 7, &flipped)
                .is_err()
        );
        let mut old_ring = RecordOpener::new(Some(&ring), b"s");
        let missing = old_ring
            .open(&key.key, key.version, &key.salt, 7, &c)
            .unwrap_err();
        assert_eq!(missing.code, ErrorCode::KmsNotFound);
    }

    #[test]
    fn a_key_ring_reload_never_drops_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        create_file(&path, &["default".to_string()]).unwrap();
        rotate_file(&path, "default").unwrap();
        let keys = Keys::load(Some(&path)).unwrap();
        assert!(!keys.reload_if_changed().unwrap(), "nothing changed");

        let before = std::fs::read_to_string(&path).unwrap();
        let second = before.rsplit('"').nth(1).unwrap().to_string();
        std::fs::write(&path, before.replace(&format!(", \"{second}\""), "")).unwrap();
        let error = keys.reload_if_changed().unwrap_err();
        assert!(format!("{error}").contains("had 2 versions"), "{error}");
        assert_eq!(
            keys.current().unwrap().version_counts().next(),
            Some(("default", 2))
        );

        std::fs::write(&path, &before).unwrap();
        rotate_file(&path, "default").unwrap();
        assert!(keys.reload_if_changed().unwrap());
        assert_eq!(
            keys.current().unwrap().version_counts().next(),
            Some(("default", 3))
        );
    }
}
