//! The key-value unit's section of the runtime configuration file, in Spin's format:
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

use serde::Deserialize;

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
    /// Resolves SQLite paths with `resolve` (against the file's directory), and adds the `default` store as a
    /// SQLite file under `app_dir`, as Spin does, unless the file configures it.
    pub fn resolved(
        mut self,
        resolve: impl Fn(&Path) -> PathBuf,
        app_dir: &Path,
    ) -> BTreeMap<String, KeyValueBackend> {
        for backend in self.key_value_store.values_mut() {
            if let KeyValueBackend::Sqlite { path: Some(path) } = backend {
                *path = resolve(path);
            }
        }
        self.key_value_store
            .entry(DEFAULT_STORE.to_string())
            .or_insert_with(|| KeyValueBackend::Sqlite {
                path: Some(app_dir.join(DEFAULT_SQLITE_PATH)),
            });
        self.key_value_store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(text: &str) -> Result<BTreeMap<String, KeyValueBackend>, toml::de::Error> {
        let config: RuntimeConfig = toml::from_str(text)?;
        Ok(config.resolved(|path| Path::new("/config").join(path), Path::new("/app")))
    }

    #[test]
    fn without_a_section_default_is_sqlite_beside_the_manifest() {
        let stores = resolved("").unwrap();
        assert_eq!(
            stores[DEFAULT_STORE],
            KeyValueBackend::Sqlite {
                path: Some(PathBuf::from("/app/.spin/sqlite_key_value.db"))
            }
        );
    }

    #[test]
    fn sqlite_paths_are_resolved_like_the_file_says() {
        let stores =
            resolved("[key_value_store.default]\ntype = \"spin\"\npath = \"data/kv.db\"\n")
                .unwrap();
        assert_eq!(
            stores[DEFAULT_STORE],
            KeyValueBackend::Sqlite {
                path: Some(PathBuf::from("/config/data/kv.db"))
            }
        );
    }

    #[test]
    fn reads_redis_and_in_memory_stores() {
        let stores = resolved(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [key_value_store.scratch]\ntype = \"spin\"\n",
        )
        .unwrap();
        assert_eq!(
            stores["cache"],
            KeyValueBackend::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(stores["scratch"], KeyValueBackend::Sqlite { path: None });
        assert!(matches!(
            stores[DEFAULT_STORE],
            KeyValueBackend::Sqlite { path: Some(_) }
        ));
    }

    #[test]
    fn rejects_unknown_types_and_fields() {
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
        ] {
            let error = resolved(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
