//! The server's P-256 key ring: one PKCS#8 PEM file per key (mode 0600) and a small
//! manifest naming the active key. Older keys stay so that tokens sealed with them still open.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use p256::{PublicKey, SecretKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ecies::compressed;

const MANIFEST: &str = "keyring.json";
const LOCK: &str = ".lock";

/// Key id: the first 8 bytes of SHA-256 over the compressed public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kid(pub [u8; 8]);

impl Kid {
    pub fn of(public: &PublicKey) -> Self {
        let digest = Sha256::digest(compressed(public));
        let mut kid = [0u8; 8];
        kid.copy_from_slice(&digest[..8]);
        Kid(kid)
    }

    pub fn parse(hex_str: &str) -> Option<Self> {
        let bytes = hex::decode(hex_str).ok()?;
        Some(Kid(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({self})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("a server key already exists in {0} (use --rotate to make a new active key)")]
    AlreadyExists(PathBuf),
    #[error("no server key in {0} (run `relayapi keygen`)")]
    Missing(PathBuf),
    #[error("cannot read or write the key ring at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {0} is not a P-256 PKCS#8 private key")]
    BadKeyFile(PathBuf),
    #[error("the key file {0} does not match its key id")]
    KidMismatch(PathBuf),
    #[error(
        "the key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("the key ring manifest {0} is damaged")]
    BadManifest(PathBuf),
}

/// What may be shown about a key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub active: bool,
    pub public_key_pem: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    active: String,
    keys: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    kid: String,
    created_at: DateTime<Utc>,
}

pub struct KeyRing {
    dir: PathBuf,
    active: Kid,
    keys: HashMap<Kid, SecretKey>,
    entries: Vec<ManifestEntry>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("dir", &self.dir)
            .field("active", &self.active)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl KeyRing {
    /// The key-ring folder inside a data dir.
    pub fn dir_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys")
    }

    /// Loads the ring; `Missing` when no key was ever made.
    pub fn load(dir: &Path) -> Result<Self, KeyRingError> {
        let _lock = lock(dir, false)?;
        Self::load_unlocked(dir)
    }

    /// Loads the ring, creating its first key when there is none. The flag says whether one
    /// was created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), KeyRingError> {
        let _lock = lock(dir, true)?;
        match Self::load_unlocked(dir) {
            Ok(ring) => Ok((ring, false)),
            Err(KeyRingError::Missing(_)) => {
                add_key(dir, None)?;
                Ok((Self::load_unlocked(dir)?, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Makes a new key. Without `rotate` it refuses when a key already exists; with it, the
    /// new key becomes the active one and the old ones stay.
    pub fn generate(dir: &Path, rotate: bool) -> Result<KeyInfo, KeyRingError> {
        let _lock = lock(dir, true)?;
        let existing = read_manifest(dir)?;
        if existing.is_some() && !rotate {
            return Err(KeyRingError::AlreadyExists(dir.to_path_buf()));
        }
        let kid = add_key(dir, existing)?;
        let ring = Self::load_unlocked(dir)?;
        Ok(ring
            .list()
            .into_iter()
            .find(|k| k.kid == kid.to_string())
            .expect("the new key is in the ring"))
    }

    fn load_unlocked(dir: &Path) -> Result<Self, KeyRingError> {
        let manifest = read_manifest(dir)?.ok_or_else(|| KeyRingError::Missing(dir.into()))?;
        let mut keys = HashMap::new();
        for entry in &manifest.keys {
            let path = dir.join(format!("{}.pem", entry.kid));
            let secret = read_key_file(&path)?;
            let kid = Kid::of(&secret.public_key());
            if kid.to_string() != entry.kid {
                return Err(KeyRingError::KidMismatch(path));
            }
            keys.insert(kid, secret);
        }
        let active = Kid::parse(&manifest.active)
            .filter(|kid| keys.contains_key(kid))
            .ok_or_else(|| KeyRingError::BadManifest(dir.join(MANIFEST)))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            active,
            keys,
            entries: manifest.keys,
        })
    }

    /// A ring held in memory only (tests, embedding); the first key is the active one.
    pub fn in_memory(keys: Vec<SecretKey>) -> Self {
        let active = Kid::of(&keys.first().expect("at least one key").public_key());
        let entries = keys
            .iter()
            .map(|k| ManifestEntry {
                kid: Kid::of(&k.public_key()).to_string(),
                created_at: Utc::now(),
            })
            .collect();
        let keys = keys
            .into_iter()
            .map(|k| (Kid::of(&k.public_key()), k))
            .collect();
        Self {
            dir: PathBuf::new(),
            active,
            keys,
            entries,
        }
    }

    pub fn active_kid(&self) -> Kid {
        self.active
    }

    pub fn active_public(&self) -> PublicKey {
        self.keys[&self.active].public_key()
    }

    pub fn secret(&self, kid: &Kid) -> Option<&SecretKey> {
        self.keys.get(kid)
    }

    pub fn list(&self) -> Vec<KeyInfo> {
        self.entries
            .iter()
            .map(|entry| {
                let kid = Kid::parse(&entry.kid).expect("checked on load");
                KeyInfo {
                    kid: entry.kid.clone(),
                    created_at: entry.created_at,
                    active: kid == self.active,
                    public_key_pem: public_pem(&self.keys[&kid].public_key()),
                }
            })
            .collect()
    }
}

pub fn public_pem(key: &PublicKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("P-256 public keys encode as SPKI PEM")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyRingError + '_ {
    move |source| KeyRingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An advisory lock on the ring folder, so that two processes starting at once on a fresh
/// machine do not both create a "first" key.
fn lock(dir: &Path, create_dir: bool) -> Result<File, KeyRingError> {
    if create_dir {
        create_private_dir(dir)?;
    } else if !dir.exists() {
        return Err(KeyRingError::Missing(dir.to_path_buf()));
    }
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    file.lock().map_err(io_err(&path))?;
    Ok(file)
}

fn create_private_dir(dir: &Path) -> Result<(), KeyRingError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, KeyRingError> {
    let path = dir.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|_| KeyRingError::BadManifest(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn read_key_file(path: &Path) -> Result<SecretKey, KeyRingError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyRingError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let pem = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    SecretKey::from_pkcs8_pem(&pem).map_err(|_| KeyRingError::BadKeyFile(path.to_path_buf()))
}

/// Writes a new key file (0600, never overwriting) and then the manifest naming it active.
fn add_key(dir: &Path, existing: Option<Manifest>) -> Result<Kid, KeyRingError> {
    let secret = SecretKey::random(&mut OsRng);
    let kid = Kid::of(&secret.public_key());
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .expect("P-256 keys encode as PKCS#8");
    let path = dir.join(format!("{kid}.pem"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    file.write_all(pem.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(io_err(&path))?;

    let mut keys = existing.map(|m| m.keys).unwrap_or_default();
    keys.push(ManifestEntry {
        kid: kid.to_string(),
        created_at: Utc::now(),
    });
    let manifest = Manifest {
        active: kid.to_string(),
        keys,
    };
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    fs::write(&tmp, json).map_err(io_err(&tmp))?;
    let target = dir.join(MANIFEST);
    fs::rename(&tmp, &target).map_err(io_err(&target))?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_refuses_twice_and_rotates() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let first = KeyRing::generate(&dir, false).unwrap();
        assert!(matches!(
            KeyRing::generate(&dir, false),
            Err(KeyRingError::AlreadyExists(_))
        ));
        let second = KeyRing::generate(&dir, true).unwrap();
        let ring = KeyRing::load(&dir).unwrap();
        assert_eq!(ring.active_kid().to_string(), second.kid);
        assert!(ring.secret(&Kid::parse(&first.kid).unwrap()).is_some());
        assert_eq!(ring.list().len(), 2);
        let mode = fs::metadata(dir.join(format!("{}.pem", first.kid)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_a_key_readable_by_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let info = KeyRing::generate(&dir, false).unwrap();
        let path = dir.join(format!("{}.pem", info.kid));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyRing::load(&dir),
            Err(KeyRingError::InsecurePermissions { .. })
        ));
    }
}
