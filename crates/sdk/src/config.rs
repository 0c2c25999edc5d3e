//! Configuration as Kubernetes gives it to a container: environment
//! variables (`env`, `envFrom` a ConfigMap or Secret, the downward API) and
//! files in mounted volumes (a ConfigMap or Secret volume is a directory with
//! one file per key).
//!
//! skiff's runtime preopens each `volumeMount` at its `mountPath`, so these
//! helpers use the same absolute paths as in a Linux container. Relative
//! paths are taken from [`config_dir`]: `CONFIG_DIR` if the container sets
//! it, else `/etc/config`, the mount path Kubernetes' own ConfigMap examples
//! use.
//!
//! ```no_run
//! // env GREETING, or the file /etc/config/GREETING, or a default:
//! let greeting = sdk::config_value("GREETING").unwrap_or_else(|| "hello".to_string());
//! // a number, with a message naming the variable when it is not one:
//! let interval_ms: u64 = sdk::config_parse_or("INTERVAL_MS", 5000).unwrap_or(5000);
//! // a Secret mounted at /etc/secret:
//! let token = sdk::read_config_file("/etc/secret/token");
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where relative config paths are read when `CONFIG_DIR` is not set.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/config";

/// Why a configuration value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file does not exist (is the volume mounted, and is the key in the
    /// ConfigMap or Secret?).
    NotFound(PathBuf),
    /// The file exists but could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
    /// The file is not UTF-8 text; read it with [`read_config_bytes`].
    NotUtf8(PathBuf),
    /// A value is set but does not parse as the type asked for.
    Invalid {
        /// The variable or file key.
        key: String,
        /// The value found.
        value: String,
        /// Why it did not parse.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotFound(p) => write!(
                f,
                "{} not found: check the pod's volumeMounts and that the ConfigMap or Secret has that key",
                p.display()
            ),
            ConfigError::Io { path, message } => {
                write!(f, "reading {}: {message}", path.display())
            }
            ConfigError::NotUtf8(p) => write!(f, "{} is not UTF-8 text", p.display()),
            ConfigError::Invalid { key, value, reason } => {
                write!(f, "invalid value {value:?} for {key}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The environment variable `key`, or `None` when it is unset or not valid
/// UTF-8.
pub fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The environment variable `key`, or `default` when it is unset.
pub fn env_or(key: &str, default: &str) -> String {
    env(key).unwrap_or_else(|| default.to_string())
}

/// The environment variable `key` parsed as `T`, or `default` when it is
/// unset; an error names the variable when it is set but does not parse.
pub fn env_parse_or<T>(key: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    parse_or(key, env(key), default)
}

/// The directory relative config paths are read from: `CONFIG_DIR`, or
/// [`DEFAULT_CONFIG_DIR`].
pub fn config_dir() -> PathBuf {
    env("CONFIG_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR))
}

/// Reads a config file as text; a relative `path` is taken from
/// [`config_dir`] (`read_config_file("db-url")` reads
/// `/etc/config/db-url`).
pub fn read_config_file(path: impl AsRef<Path>) -> Result<String, ConfigError> {
    let path = resolve(&config_dir(), path.as_ref());
    let bytes = read_bytes_at(&path)?;
    String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8(path))
}

/// Reads a config file as bytes (a binary Secret key, a certificate); a
/// relative `path` is taken from [`config_dir`].
pub fn read_config_bytes(path: impl AsRef<Path>) -> Result<Vec<u8>, ConfigError> {
    read_bytes_at(&resolve(&config_dir(), path.as_ref()))
}

/// A setting from wherever Kubernetes put it: the environment variable
/// `key` if set, else the file `key` in [`config_dir`] with trailing
/// whitespace removed (ConfigMap values often end with a newline), else
/// `None`.
pub fn config_value(key: &str) -> Option<String> {
    lookup(key, env, &config_dir())
}

/// [`config_value`] parsed as `T`, or `default` when neither is set; an error
/// names the key when the value does not parse.
pub fn config_parse_or<T>(key: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    parse_or(key, config_value(key), default)
}

fn lookup(key: &str, env: impl Fn(&str) -> Option<String>, dir: &Path) -> Option<String> {
    if let Some(v) = env(key) {
        return Some(v);
    }
    // A key with a path separator is not a ConfigMap key: never leave `dir`.
    if key.is_empty() || key.contains('/') || key == "." || key == ".." {
        return None;
    }
    let bytes = std::fs::read(dir.join(key)).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(text.trim_end().to_string())
}

fn parse_or<T>(key: &str, value: Option<String>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            key: key.to_string(),
            value: v.clone(),
            reason: e.to_string(),
        }),
    }
}

fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

fn read_bytes_at(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ConfigError::NotFound(path.to_path_buf()),
        _ => ConfigError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    })
}

#[cfg(test)]
// Tests build their inputs by hand, so a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fresh directory like a mounted ConfigMap volume.
    fn volume(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("skiff-sdk-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, v) in files {
            std::fs::write(dir.join(k), v).unwrap();
        }
        dir
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn env_wins_over_the_mounted_file() {
        // envFrom and a configMap volume of the same ConfigMap agree; an
        // explicit env entry overrides the file.
        let dir = volume(
            "env-wins",
            &[("GREETING", b"from file\n"), ("OTHER", b"  spaced  \n\n")],
        );
        assert_eq!(
            lookup("GREETING", env_of(&[("GREETING", "from env")]), &dir).as_deref(),
            Some("from env")
        );
        assert_eq!(
            lookup("GREETING", env_of(&[]), &dir).as_deref(),
            Some("from file")
        );
        // Trailing whitespace goes (YAML `|` blocks end in a newline), leading stays.
        assert_eq!(
            lookup("OTHER", env_of(&[]), &dir).as_deref(),
            Some("  spaced")
        );
        assert_eq!(lookup("MISSING", env_of(&[]), &dir), None);
    }

    #[test]
    fn keys_never_leave_the_config_dir() {
        let dir = volume("escape", &[("a", b"1")]);
        let inner = dir.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        assert_eq!(lookup("../a", env_of(&[]), &inner), None);
        assert_eq!(lookup("..", env_of(&[]), &inner), None);
        assert_eq!(lookup("", env_of(&[]), &inner), None);
        assert_eq!(lookup("a", env_of(&[]), &inner), None);
    }

    #[test]
    fn parse_or_defaults_and_names_the_bad_key() {
        assert_eq!(parse_or::<u64>("INTERVAL_MS", None, 5000), Ok(5000));
        assert_eq!(
            parse_or::<u64>("INTERVAL_MS", Some(" 250 ".into()), 5000),
            Ok(250)
        );
        let err = parse_or::<u64>("INTERVAL_MS", Some("fast".into()), 5000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"fast\" for INTERVAL_MS: invalid digit found in string"
        );
    }

    #[test]
    fn env_helpers_read_the_process_environment() {
        // A name no other test uses, so parallel tests do not race on it.
        std::env::set_var("SKIFF_SDK_TEST_ENV_HELPERS", "42");
        assert_eq!(env("SKIFF_SDK_TEST_ENV_HELPERS").as_deref(), Some("42"));
        assert_eq!(env_or("SKIFF_SDK_TEST_ENV_HELPERS", "7"), "42");
        assert_eq!(env_parse_or("SKIFF_SDK_TEST_ENV_HELPERS", 7u32), Ok(42));
        assert_eq!(env("SKIFF_SDK_TEST_UNSET"), None);
        assert_eq!(env_or("SKIFF_SDK_TEST_UNSET", "7"), "7");
        assert_eq!(env_parse_or("SKIFF_SDK_TEST_UNSET", 7u32), Ok(7));
    }

    #[test]
    fn config_files_absolute_relative_missing_and_binary() {
        let dir = volume("files", &[("token", b"s3cret"), ("blob", &[0xff, 0x00])]);
        assert_eq!(read_config_file(dir.join("token")).as_deref(), Ok("s3cret"));
        assert_eq!(read_config_bytes(dir.join("blob")), Ok(vec![0xff, 0x00]));
        assert_eq!(
            read_config_file(dir.join("blob")),
            Err(ConfigError::NotUtf8(dir.join("blob")))
        );
        let missing = read_config_file(dir.join("nope")).unwrap_err();
        assert_eq!(missing, ConfigError::NotFound(dir.join("nope")));
        assert!(missing.to_string().contains("volumeMounts"), "{missing}");
        assert_eq!(
            resolve(Path::new("/etc/config"), Path::new("db-url")),
            PathBuf::from("/etc/config/db-url")
        );
        assert_eq!(
            resolve(Path::new("/etc/config"), Path::new("/etc/secret/t")),
            PathBuf::from("/etc/secret/t")
        );
        // A directory is not a file.
        assert!(matches!(
            read_config_file(&dir),
            Err(ConfigError::Io { .. })
        ));
    }
}
