//! The `redis` key-value backend. Like Spin's, keys are stored as they are (not prefixed by label), so a
//! label owns the whole database its URL points at.

use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{backend_error, Error, Store};

/// Bounds start-up and each command, so an unreachable server fails fast instead of hanging requests.
const TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_RETRIES: usize = 2;
/// The longest pause between reconnection attempts, in milliseconds (the default backoff waits minutes).
const MAX_RETRY_DELAY_MS: u64 = 500;

pub struct RedisStore {
    /// Multiplexed and reconnecting; cloning shares the one connection.
    connection: ConnectionManager,
}

impl RedisStore {
    /// Connects to `url`, failing if the server cannot be reached now.
    pub async fn connect(url: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).with_context(|| format!("invalid Redis URL {url}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(CONNECT_RETRIES)
            .set_max_delay(MAX_RETRY_DELAY_MS);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .with_context(|| format!("cannot connect to Redis at {url}"))?;
        Ok(Self { connection })
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.connection
            .clone()
            .get(key)
            .await
            .map_err(backend_error)
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.connection
            .clone()
            .set(key, value)
            .await
            .map_err(backend_error)
    }

    async fn delete(&self, key: String) -> Result<(), Error> {
        self.connection
            .clone()
            .del(key)
            .await
            .map_err(backend_error)
    }

    async fn exists(&self, key: String) -> Result<bool, Error> {
        self.connection
            .clone()
            .exists(key)
            .await
            .map_err(backend_error)
    }

    async fn get_keys(&self) -> Result<Vec<String>, Error> {
        let mut connection = self.connection.clone();
        let mut keys = connection.scan::<String>().await.map_err(backend_error)?;
        let mut all = Vec::new();
        while let Some(key) = keys.next_item().await {
            all.push(key.map_err(backend_error)?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A throwaway `redis-server` on a free loopback port, stopped on drop.
    struct TestServer {
        child: Child,
        url: String,
    }

    impl TestServer {
        fn start() -> Option<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .spawn()
                .ok()?;
            Some(Self {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            })
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn connect(url: &str) -> RedisStore {
        for _ in 0..50 {
            if let Ok(store) = RedisStore::connect(url).await {
                return store;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("redis-server at {url} did not start");
    }

    #[tokio::test]
    async fn round_trips_through_a_real_server() {
        let Some(server) = TestServer::start() else {
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return;
        };
        let store = connect(&server.url).await;
        assert_eq!(store.get("k".into()).await.unwrap(), None);
        store.set("k".into(), vec![0, 1, 255]).await.unwrap();
        store.set("j".into(), b"x".to_vec()).await.unwrap();
        assert_eq!(store.get("k".into()).await.unwrap(), Some(vec![0, 1, 255]));
        assert!(store.exists("k".into()).await.unwrap());
        let mut keys = store.get_keys().await.unwrap();
        keys.sort();
        assert_eq!(keys, ["j", "k"]);
        store.delete("k".into()).await.unwrap();
        assert!(!store.exists("k".into()).await.unwrap());
    }

    #[tokio::test]
    async fn unreachable_servers_fail_at_connect() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = RedisStore::connect(&format!("redis://127.0.0.1:{port}"))
            .await
            .err()
            .unwrap();
        assert!(
            format!("{error:#}").contains("cannot connect to Redis"),
            "{error:#}"
        );
    }
}
