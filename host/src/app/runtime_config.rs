//! The runtime configuration file (`--runtime-config-file`), in Spin's format, limited to key-value stores.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                       # SQLite; relative paths are relative to this file
//! path = ".spin/sqlite_key_value.db"  # without `path`, the store lives in memory
//!
//! [key_value_store.cache]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use super::toml_file;

/// The label every Spin application may use without configuring it.
pub const DEFAULT_STORE: &str = "default";

/// Where the `default` store lives when no runtime config names it: Spin's own default, relative to the
/// manifest's directory.
pub const DEFAULT_SQLITE_PATH: &str = ".spin/sqlite_key_value.db";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Key-value stores by label.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, KeyValueBackend>,
}

/// One `[key_value_store.<label>]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum KeyValueBackend {
    /// Spin's built-in store: a SQLite database.
    #[serde(rename = "spin")]
    Sqlite {
        /// The database file; in memory when absent.
        path: Option<PathBuf>,
    },
    /// A Redis server.
    #[serde(rename = "redis")]
    Redis {
        /// `redis://host:port[/db]`.
        url: String,
    },
}

impl RuntimeConfig {
    /// Reads `file` if given; paths in it are resolved against its directory. The `default` store falls
    /// back to a SQLite file under `app_dir`, as in Spin.
    pub fn load(file: Option<&Path>, app_dir: &Path) -> Result<Self> {
        let mut config = match file {
            Some(file) => {
                let mut config: Self = toml_file::read(file)?;
                let base = file.parent().unwrap_or(Path::new(""));
                for backend in config.key_value_store.values_mut() {
                    if let KeyValueBackend::Sqlite { path: Some(path) } = backend {
                        *path = base.join(&*path);
                    }
                }
                config
            }
            None => Self::default(),
        };
        config
            .key_value_store
            .entry(DEFAULT_STORE.to_string())
            .or_insert_with(|| KeyValueBackend::Sqlite {
                path: Some(app_dir.join(DEFAULT_SQLITE_PATH)),
            });
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<(RuntimeConfig, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runtime-config.toml");
        std::fs::write(&file, text).unwrap();
        RuntimeConfig::load(Some(&file), Path::new("/app")).map(|config| (config, dir))
    }

    #[test]
    fn without_a_file_default_is_sqlite_beside_the_manifest() {
        let config = RuntimeConfig::load(None, Path::new("/app")).unwrap();
        assert_eq!(
            config.key_value_store[DEFAULT_STORE],
            KeyValueBackend::Sqlite {
                path: Some(PathBuf::from("/app/.spin/sqlite_key_value.db"))
            }
        );
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_file() {
        let (config, dir) =
            load("[key_value_store.default]\ntype = \"spin\"\npath = \"data/kv.db\"\n").unwrap();
        assert_eq!(
            config.key_value_store[DEFAULT_STORE],
            KeyValueBackend::Sqlite {
                path: Some(dir.path().join("data/kv.db"))
            }
        );
    }

    #[test]
    fn reads_redis_and_in_memory_stores() {
        let (config, _dir) = load(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [key_value_store.scratch]\ntype = \"spin\"\n",
        )
        .unwrap();
        assert_eq!(
            config.key_value_store["cache"],
            KeyValueBackend::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(
            config.key_value_store["scratch"],
            KeyValueBackend::Sqlite { path: None }
        );
        assert!(matches!(
            config.key_value_store[DEFAULT_STORE],
            KeyValueBackend::Sqlite { path: Some(_) }
        ));
    }

    #[test]
    fn rejects_unknown_types_fields_and_sections() {
        for (text, expected) in [
            (
                "[key_value_store.default]\ntype = \"azure_cosmos\"\n",
                "unknown variant `azure_cosmos`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"\nuser = \"me\"\n",
                "unknown field `user`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\n",
                "missing field `url`",
            ),
            (
                "[sqlite_database.default]\ntype = \"spin\"\n",
                "unknown field `sqlite_database`",
            ),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains("runtime-config.toml:"), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let error =
            RuntimeConfig::load(Some(Path::new("/nope/rc.toml")), Path::new("/app")).unwrap_err();
        assert!(format!("{error:#}").contains("/nope/rc.toml"));
    }
}
