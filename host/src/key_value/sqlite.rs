//! The `spin` key-value backend: a SQLite file (or memory, without a path) with Spin's own table layout,
//! so a database written by `spin up` reads the same here and back.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};

use super::{backend_error, Error, Store};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    /// Writes go through one connection (rusqlite connections are not `Sync`), on the blocking pool: a
    /// commit may wait for the disk.
    writer: Arc<Mutex<Connection>>,
    /// Reads of a file database run inline on their own connections, one per core: with a write-ahead
    /// log they never wait for a writer, and a read of a hot page is a few microseconds, far less than
    /// the two thread hand-offs of the blocking pool (the cache-hit path is mostly reads). Empty in
    /// memory, where the one connection serves reads too.
    readers: Arc<[Mutex<Connection>]>,
    /// The store's label: rows of several stores share one table.
    name: Arc<str>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one.
    pub fn open(path: Option<&Path>, name: &str) -> Result<Self> {
        let writer = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let connection = open_file(path)?;
                // Each `set` is a transaction of its own: in the default rollback-journal mode every one
                // pays several fsyncs. With a write-ahead log and NORMAL sync a commit is one append, and
                // the database stays consistent after a crash (only the last commits may be lost).
                connection
                    .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                    .and_then(|()| connection.execute_batch("PRAGMA synchronous = NORMAL"))
                    .with_context(|| {
                        format!("cannot set up write-ahead logging in {}", path.display())
                    })?;
                connection
            }
            None => {
                let connection = Connection::open_in_memory()
                    .context("cannot open an in-memory SQLite database")?;
                connection.busy_timeout(BUSY_TIMEOUT)?;
                connection
            }
        };
        writer
            .execute(
                "CREATE TABLE IF NOT EXISTS spin_key_value (
                    store TEXT NOT NULL,
                    key   TEXT NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (store, key)
                )",
                [],
            )
            .with_context(|| match path {
                Some(path) => format!("cannot create the key-value table in {}", path.display()),
                None => "cannot create the key-value table".to_string(),
            })?;
        let readers = match path {
            Some(path) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (0..cores)
                    .map(|_| {
                        let reader = open_file(path)?;
                        reader.execute_batch("PRAGMA query_only = ON")?;
                        Ok(Mutex::new(reader))
                    })
                    .collect::<Result<_>>()?
            }
            None => Arc::from([]),
        };
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers,
            name: name.into(),
        })
    }

    /// Runs `statement` on the writer's connection on the blocking pool, so SQLite's file I/O never stalls
    /// the async executor.
    async fn write<T: Send + 'static>(
        &self,
        statement: impl FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let writer = self.writer.clone();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            let connection = writer.lock().map_err(|_| poisoned())?;
            statement(&connection, &name).map_err(backend_error)
        })
        .await
        .map_err(backend_error)?
    }

    /// Runs the read-only `statement` right here, on a free reader connection (the writer's in memory).
    fn read<T>(
        &self,
        statement: impl FnOnce(&Connection, &str) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let connection = match self
            .readers
            .iter()
            .find_map(|reader| reader.try_lock().ok())
        {
            Some(reader) => reader,
            // Every reader is busy (more threads than cores read at once), or the store is in memory.
            None => self
                .readers
                .first()
                .unwrap_or(&self.writer)
                .lock()
                .map_err(|_| poisoned())?,
        };
        statement(&connection, &self.name).map_err(backend_error)
    }
}

/// Opens `path` with the busy timeout every connection of a store uses.
fn open_file(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path)
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    Ok(connection)
}

fn poisoned() -> Error {
    Error::Other("sqlite connection poisoned".into())
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.read(|db, store| {
            db.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row((store, &key), |row| row.get(0))
                .optional()
        })
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.write(move |db, store| {
            db.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute((store, &key, &value))
            .map(drop)
        })
        .await
    }

    async fn delete(&self, key: String) -> Result<(), Error> {
        self.write(move |db, store| {
            db.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute((store, &key))
                .map(drop)
        })
        .await
    }

    async fn exists(&self, key: String) -> Result<bool, Error> {
        self.read(|db, store| {
            db.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
            )?
            .query_row((store, &key), |row| row.get(0))
        })
    }

    async fn get_keys(&self) -> Result<Vec<String>, Error> {
        self.read(|db, store| {
            db.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                .query_map([store], |row| row.get(0))?
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_through_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".spin/sqlite_key_value.db");
        let store = SqliteStore::open(Some(&path), "default").unwrap();

        assert_eq!(store.get("k".into()).await.unwrap(), None);
        assert!(!store.exists("k".into()).await.unwrap());
        store.set("k".into(), b"one".to_vec()).await.unwrap();
        store.set("k".into(), b"two".to_vec()).await.unwrap();
        store.set("a".into(), vec![0, 255]).await.unwrap();
        assert_eq!(
            store.get("k".into()).await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(store.exists("k".into()).await.unwrap());
        assert_eq!(store.get_keys().await.unwrap(), ["a", "k"]);
        store.delete("k".into()).await.unwrap();
        assert_eq!(store.get("k".into()).await.unwrap(), None);
        drop(store);

        // The data outlives the connection, and labels sharing a file do not see each other's keys.
        let reopened = SqliteStore::open(Some(&path), "default").unwrap();
        assert_eq!(reopened.get("a".into()).await.unwrap(), Some(vec![0, 255]));
        let other = SqliteStore::open(Some(&path), "other").unwrap();
        assert!(other.get_keys().await.unwrap().is_empty());
    }

    #[test]
    fn files_are_opened_in_wal_mode_with_normal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(Some(&dir.path().join("kv.db")), "default").unwrap();
        let db = store.writer.lock().unwrap();
        let mode: String = db
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // 1 is NORMAL.
        let sync: i64 = db
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1);
    }

    #[tokio::test]
    async fn uses_spins_table_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        let store = SqliteStore::open(Some(&path), "default").unwrap();
        store.set("k".into(), b"v".to_vec()).await.unwrap();
        let db = Connection::open(&path).unwrap();
        let row: (String, String, Vec<u8>) = db
            .query_row("SELECT store, key, value FROM spin_key_value", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(row, ("default".to_string(), "k".to_string(), b"v".to_vec()));
    }

    #[tokio::test]
    #[allow(
        clippy::await_holding_lock,
        reason = "the reads must answer while the writer's lock is held"
    )]
    async fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(Some(&dir.path().join("kv.db")), "default").unwrap();
        store.set("k".into(), b"v".to_vec()).await.unwrap();
        // Inside a write transaction on the writer's connection, committed data stays readable.
        let writer = store.writer.lock().unwrap();
        writer
            .execute_batch("BEGIN IMMEDIATE; DELETE FROM spin_key_value;")
            .unwrap();
        assert_eq!(store.get("k".into()).await.unwrap(), Some(b"v".to_vec()));
        assert!(store.exists("k".into()).await.unwrap());
        writer.execute_batch("COMMIT").unwrap();
        drop(writer);
        assert_eq!(store.get("k".into()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn without_a_path_the_store_lives_in_memory() {
        let store = SqliteStore::open(None, "default").unwrap();
        store.set("k".into(), b"v".to_vec()).await.unwrap();
        assert!(store.exists("k".into()).await.unwrap());
    }
}
