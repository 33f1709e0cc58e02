//! Layered settings: defaults < `relayapi.toml` < `RELAYAPI_*` environment < flags.
//!
//! Clap resolves flags over environment; this module puts the file and the defaults under
//! them and checks the result before any command runs.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file read when `--config` is not given, from the working directory, if present.
pub const DEFAULT_CONFIG_FILE: &str = "relayapi.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no data directory: set --data-dir or RELAYAPI_DATA_DIR (no home directory found)")]
    NoDataDir,
}

/// `relayapi.toml`. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// `serve` settings, named like its flags.
    pub listen: Option<String>,
    pub max_body: Option<String>,
    pub max_body_memory: Option<String>,
    pub connect_timeout: Option<String>,
    pub upstream_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub client_timeout: Option<String>,
    pub grace_period: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub metrics: Option<bool>,
    pub metrics_listen: Option<String>,
}

impl FileConfig {
    /// Reads the named file (which must exist), or `relayapi.toml` in the working directory
    /// when there is one.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                if !default.exists() {
                    return Ok(Self::default());
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.message().to_string(),
        })
    }
}

/// Settings every command shares, resolved.
#[derive(Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

impl Settings {
    pub fn resolve(
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        file: &FileConfig,
    ) -> Result<Self, ConfigError> {
        let data_dir = match data_dir.or_else(|| file.data_dir.clone()) {
            Some(dir) => dir,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        let database_url = database_url
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| sqlite_url(&data_dir.join("relayapi.db")));
        Ok(Self {
            data_dir,
            database_url,
        })
    }

    /// Is the database the embedded SQLite file?
    pub fn uses_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

/// A size like `1048576`, `512KiB`, `32MiB` or `1GiB` (KB/MB/GB are taken as powers of 1024
/// too: this is a memory bound, not a disk label).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 32MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?} is not a size like 32MiB")),
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is not a usable size"))
}

pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "relayapi").map(|d| d.data_dir().to_path_buf())
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A database URL fit for logs and errors: the password, if any, is replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file: FileConfig =
            toml::from_str("data_dir = \"/from/file\"\ndatabase_url = \"sqlite://f.db\"").unwrap();
        let s = Settings::resolve(Some("/flag".into()), None, &file).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/flag"));
        assert_eq!(s.database_url, "sqlite://f.db");
        let s = Settings::resolve(None, None, &FileConfig::default()).unwrap();
        assert!(s.database_url.ends_with("relayapi.db?mode=rwc"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("data_dri = \"x\"").is_err());
    }

    #[test]
    fn passwords_never_print() {
        let s = Settings {
            data_dir: "/d".into(),
            database_url: "postgres://u:hunter2@db/x".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
