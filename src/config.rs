//! Settings, in one pipeline: defaults < `relayapi.toml` < `RELAYAPI_*` environment < flags.
//!
//! [`Config`] is every setting with its type and, in its `Default`, its default: the
//! file, the environment and the flags are layers over it, merged once (figment) and
//! checked once, before any command runs. Clap reads each flag and its environment
//! variable into the same types; `--help` shows the defaults from [`Config::default`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::server::ServeConfig;

/// The file read when `--config` is not given, from the working directory, if present.
pub const DEFAULT_CONFIG_FILE: &str = "relayapi.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings: {0}")]
    Invalid(String),
    #[error("no data directory: set --data-dir or RELAYAPI_DATA_DIR (no home directory found)")]
    NoDataDir,
}

/// Every setting, as `relayapi.toml` names it (like its flag, with `_` for `-`). Unknown
/// keys are errors, so a typo never silently does nothing.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder for the key ring and the default SQLite database.
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// PostgreSQL: the most connections a process keeps open (a fleet of N relays needs N
    /// times this, and two more each, within the server's `max_connections`).
    pub database_connections: u32,
    /// `serve`: the address to listen on.
    pub listen: SocketAddr,
    /// `serve`: the largest request body accepted.
    pub max_body: ByteSize,
    /// `serve`: the memory the bodies of all requests in flight may hold together.
    pub max_body_memory: ByteSize,
    pub connect_timeout: Span,
    pub upstream_timeout: Span,
    pub idle_timeout: Span,
    pub client_timeout: Span,
    pub grace_period: Span,
    pub client_secret_lifetime: Span,
    /// `serve`: the largest WebSocket message a realtime session relays.
    pub max_message: ByteSize,
    pub max_session: Span,
    /// `serve`: proxies whose `X-Forwarded-For` is believed: CIDRs or single addresses.
    #[serde(deserialize_with = "ip_ranges")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics: bool,
    pub metrics_listen: Option<SocketAddr>,
    /// `serve`: the environment variable holding the admin API's secret (never the secret).
    pub admin_token_env: Option<String>,
    pub admin_listen: Option<SocketAddr>,
    /// `serve`: HTTPS with this certificate chain and key (PEM), read again on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    /// The relay's own defaults come from [`ServeConfig::default`], where they are written.
    fn default() -> Self {
        let serve = ServeConfig::default();
        Self {
            data_dir: None,
            database_url: None,
            database_connections: crate::store::PG_CONNECTIONS,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: ByteSize(serve.max_body),
            max_body_memory: ByteSize(serve.max_body_memory),
            connect_timeout: Span(serve.connect_timeout),
            upstream_timeout: Span(serve.upstream_timeout),
            idle_timeout: Span(serve.idle_timeout),
            client_timeout: Span(serve.client_timeout),
            grace_period: Span(serve.grace_period),
            client_secret_lifetime: Span(serve.client_secret_lifetime),
            max_message: ByteSize(serve.max_message),
            max_session: Span(serve.max_session),
            trusted_proxies: serve.trusted_proxies,
            metrics: serve.metrics_route,
            metrics_listen: None,
            admin_token_env: None,
            admin_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The printed form, with the database password masked.
        f.write_str(&self.to_toml())
    }
}

impl Config {
    /// Merges the layers: defaults, then the named file (which must exist) or
    /// `relayapi.toml` in the working directory when there is one, then `cli` (flags and
    /// their environment variables, as clap read them; unset values left out).
    pub fn load(file: Option<&Path>, cli: &[&dyn CliLayer]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let path = match file {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        if let Some(path) = path {
            // Opened here first so that a missing or unreadable file is its own clear error.
            std::fs::File::open(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            figment = figment.merge(Toml::file_exact(&path));
        }
        for layer in cli {
            figment = layer.merge_into(figment);
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.check()?;
        Ok(config)
    }

    /// What no single value's type can check.
    fn check(&self) -> Result<(), ConfigError> {
        if self.max_body_memory.0 < self.max_body.0 {
            return Err(ConfigError::Invalid(format!(
                "max_body_memory ({}) is smaller than max_body ({}): no body that large could ever be read",
                self.max_body_memory, self.max_body
            )));
        }
        Ok(())
    }

    /// The effective settings as `relayapi.toml` would hold them; the database password
    /// masked.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = shown.database_url.as_deref().map(redact_url);
        let mut text = toml::to_string(&shown).unwrap_or_default();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }

    /// Each setting's default as its flag's help shows it: `(key, text)`.
    pub fn default_texts() -> Vec<(String, String)> {
        let toml::Value::Table(table) =
            toml::Value::try_from(Config::default()).expect("defaults serialize")
        else {
            return Vec::new();
        };
        table
            .into_iter()
            .filter_map(|(key, value)| match value {
                toml::Value::String(s) => Some((key, s)),
                toml::Value::Boolean(_) | toml::Value::Array(_) => None,
                toml::Value::Integer(n) => Some((key, n.to_string())),
                _ => None,
            })
            .collect()
    }
}

/// One line per problem, naming the key and where its value came from.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => source.to_string(),
                    None => m.name.to_string(),
                })
                .unwrap_or_default();
            let kind = e.kind.to_string();
            match (key.is_empty(), source.is_empty()) {
                (false, false) => format!("{key} (from {source}): {kind}"),
                (false, true) => format!("{key}: {kind}"),
                (true, false) => format!("{source}: {kind}"),
                (true, true) => kind,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Settings clap read (flags over their environment variables), to merge over the file;
/// any `Serialize` type whose unset values serialize to nothing.
pub trait CliLayer {
    fn merge_into(&self, figment: Figment) -> Figment;
}

impl<T: Serialize> CliLayer for T {
    fn merge_into(&self, figment: Figment) -> Figment {
        figment.merge(Serialized::defaults(self))
    }
}

/// A CIDR, or one address as its own range.
pub fn parse_ip_range(s: &str) -> Result<ipnet::IpNet, String> {
    crate::policy::parse_ip_range(s).map_err(|e| e.to_string())
}

fn ip_ranges<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_ip_range(s).map_err(serde::de::Error::custom))
        .collect()
}

/// A size in bytes, written like `32MiB` (also `512KiB`, `1GiB`, or a plain number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if n >= 1 << shift && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(0) => Err(serde::de::Error::custom("a size of 0 is not usable")),
            Written::Bytes(n) => Ok(ByteSize(n)),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A positive duration, written like `90s`, `30m` or `24h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|_| format!("{s:?} is not a duration like 30s, 5m or 24h"))?;
        if d.is_zero() {
            return Err(format!("{s:?} is zero"));
        }
        Ok(Span(d))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Settings every command shares, resolved.
#[derive(Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_connections: u32,
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
    pub fn resolve(config: &Config) -> Result<Self, ConfigError> {
        let data_dir = match &config.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        let database_url = config
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&data_dir.join("relayapi.db")));
        if config.database_connections == 0 {
            return Err(ConfigError::Invalid(
                "database_connections must be at least 1".into(),
            ));
        }
        Ok(Self {
            data_dir,
            database_url,
            database_connections: config.database_connections,
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

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        max_body: Option<ByteSize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        idle_timeout: Option<Span>,
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relayapi.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let (_dir, path) = file("max_body = \"1MiB\"\nidle_timeout = \"5s\"\nmetrics = true\n");
        let unset = Flags {
            max_body: None,
            idle_timeout: None,
        };
        let from_file = Config::load(Some(&path), &[&unset]).unwrap();
        assert_eq!(from_file.max_body, ByteSize(1 << 20));
        assert_eq!(from_file.idle_timeout, Span(Duration::from_secs(5)));
        assert!(from_file.metrics);
        assert_eq!(from_file.client_timeout, Config::default().client_timeout);

        let set = Flags {
            max_body: Some(ByteSize(2 << 20)),
            idle_timeout: None,
        };
        let flagged = Config::load(Some(&path), &[&set]).unwrap();
        assert_eq!(flagged.max_body, ByteSize(2 << 20));
        assert_eq!(flagged.idle_timeout, Span(Duration::from_secs(5)));
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_named_with_its_file() {
        let (_dir, path) = file("listne = \"127.0.0.1:1\"\n");
        let e = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(e.contains("listne") && e.contains("relayapi.toml"), "{e}");
        let (_dir, path) = file("max_body = \"lots\"\n");
        let e = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(e.contains("max_body") && e.contains("relayapi.toml"), "{e}");
        let (_dir, path) = file("max_body = \"1GiB\"\n");
        let e = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(e.contains("max_body_memory"), "{e}");
        let e = Config::load(Some(Path::new("/nonexistent/relayapi.toml")), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn sizes_and_spans_read_back_what_they_print() {
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        for n in [1, 1000, 1 << 10, 3 << 20, (1 << 30) + 1, 5 << 30] {
            let size = ByteSize(n);
            assert_eq!(size.to_string().parse::<ByteSize>().unwrap(), size);
        }
        assert_eq!(ByteSize(32 << 20).to_string(), "32MiB");
        for secs in [1, 90, 300, 86_400] {
            let span = Span(Duration::from_secs(secs));
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
        }
        assert!("0s".parse::<Span>().is_err());
        let defaults = Config::default();
        let back: Config = toml::from_str(&defaults.to_toml()).unwrap();
        assert!(back == defaults, "the printed defaults read back the same");
    }

    #[test]
    fn passwords_never_print() {
        let s = Settings {
            data_dir: "/d".into(),
            database_url: "postgres://u:hunter2@db/x".into(),
            database_connections: 1,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let c = Config {
            database_url: Some("postgres://u:hunter2@db/x".into()),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.to_toml().contains("hunter2"));
    }
}
