//! The `redis` key-value backend. Like Spin's, keys are stored as they are (not prefixed by label), so a
//! label owns the whole database its URL points at.
//!
//! Redis is a cache here, so an outage must not take requests down with it: the host starts while Redis is
//! unreachable, operations fail fast (the component then serves uncached) instead of waiting on reconnects,
//! and one warning is logged per outage, with an info line when Redis is back.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, RedisError};
use tokio::sync::Mutex;

use super::{backend_error, Error, Store};

/// Bound connecting and each command, so an unreachable or hung server delays a request by at most this
/// much before the component falls back to serving uncached. A cache that answers slower is no help anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// After a failure, operations fail at once for this long before the next connection attempt.
const RETRY_AFTER: Duration = Duration::from_millis(500);

pub struct RedisStore {
    label: String,
    client: redis::Client,
    link: Mutex<Link>,
}

/// The connection, or why there is none.
#[derive(Default)]
struct Link {
    /// Multiplexed: clones share one socket.
    connection: Option<MultiplexedConnection>,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
    /// Whether an outage has been reported and not yet resolved.
    down: bool,
    /// Counts connections made, so a command that fails on an old connection cannot drop a newer one.
    generation: u64,
}

impl Link {
    /// Keeps a new connection; true if it ends a reported outage.
    fn connected(&mut self, connection: MultiplexedConnection) -> bool {
        let recovered = self.down;
        *self = Link {
            connection: Some(connection),
            retry_at: None,
            down: false,
            generation: self.generation + 1,
        };
        recovered
    }

    /// Drops the connection after a failure and delays the next attempt; true if this starts an outage
    /// (later failures before a reconnect belong to the same one).
    fn failed(&mut self, now: Instant) -> bool {
        self.connection = None;
        self.retry_at = Some(now + RETRY_AFTER);
        !std::mem::replace(&mut self.down, true)
    }
}

impl RedisStore {
    /// Checks `url`; the connection is made on first use, so the host starts even while Redis is down.
    pub fn new(label: &str, url: &str) -> Result<Self> {
        let client = redis::Client::open(url)
            .with_context(|| format!("invalid Redis URL {}", without_credentials(url)))?;
        Ok(Self {
            label: label.to_string(),
            client,
            link: Mutex::default(),
        })
    }

    /// The current connection and its generation, connecting if there is none and the retry delay has
    /// passed.
    async fn connection(&self) -> Result<(MultiplexedConnection, u64), Error> {
        let mut link = self.link.lock().await;
        if let Some(connection) = &link.connection {
            return Ok((connection.clone(), link.generation));
        }
        if link.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(unavailable());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                if link.connected(connection.clone()) {
                    tracing::info!(
                        "key-value store `{}` (Redis) is available again",
                        self.label
                    );
                }
                Ok((connection, link.generation))
            }
            Err(error) => {
                self.lost(&mut link, &error);
                Err(unavailable())
            }
        }
    }

    /// Records a failed connection: wait before the next attempt, and warn once per outage.
    fn lost(&self, link: &mut Link, error: &RedisError) {
        if link.failed(Instant::now()) {
            tracing::warn!(
                error = %error,
                "key-value store `{}` (Redis) is unavailable; requests go on without it until it is back",
                self.label
            );
        }
    }

    /// Runs one command; a connection failure drops the connection so the next operation reconnects.
    async fn run<T, F>(&self, command: impl FnOnce(MultiplexedConnection) -> F) -> Result<T, Error>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let (connection, generation) = self.connection().await?;
        match command(connection).await {
            Ok(value) => Ok(value),
            Err(error)
                if error.is_unrecoverable_error() || error.is_timeout() || error.is_io_error() =>
            {
                let mut link = self.link.lock().await;
                // Another request may have reconnected since this one took its connection: keep that one.
                if link.generation == generation && link.connection.is_some() {
                    self.lost(&mut link, &error);
                }
                Err(unavailable())
            }
            Err(error) => Err(backend_error(error)),
        }
    }
}

/// `url` with any `user:password@` replaced, for error messages.
fn without_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

fn unavailable() -> Error {
    Error::Other("the key-value store is unavailable".to_string())
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.run(|mut c| async move { c.get(key).await }).await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.run(|mut c| async move { c.set(key, value).await })
            .await
    }

    async fn delete(&self, key: String) -> Result<(), Error> {
        self.run(|mut c| async move { c.del(key).await }).await
    }

    async fn exists(&self, key: String) -> Result<bool, Error> {
        self.run(|mut c| async move { c.exists(key).await }).await
    }

    async fn get_keys(&self) -> Result<Vec<String>, Error> {
        self.run(|mut c| async move {
            let mut keys = c.scan::<String>().await?;
            let mut all = Vec::new();
            while let Some(key) = keys.next_item().await {
                all.push(key?);
            }
            Ok(all)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A throwaway `redis-server` on a fixed loopback port, stopped on drop.
    struct TestServer {
        child: Child,
    }

    impl TestServer {
        fn start(port: u16) -> Option<Self> {
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
            Some(Self { child })
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Retries `get` until the store answers (the server is starting, or the retry delay is running).
    async fn until_up(store: &RedisStore) {
        for _ in 0..100 {
            if store.get("probe".into()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Redis did not come up");
    }

    #[tokio::test]
    async fn round_trips_and_survives_an_outage() {
        let port = free_port();
        let server = TestServer::start(port)
            .expect("redis-server is needed by this test: run `make test-services`");
        let store = RedisStore::new("default", &format!("redis://127.0.0.1:{port}")).unwrap();
        until_up(&store).await;

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

        // Down: operations fail instead of hanging.
        drop(server);
        for _ in 0..5 {
            assert!(store.get("j".into()).await.is_err());
        }
        assert!(store.link.lock().await.down, "the outage is noticed");

        // Back: the store reconnects by itself (a fresh server, so the data is gone).
        let _server = TestServer::start(port).unwrap();
        until_up(&store).await;
        store.set("j".into(), b"y".to_vec()).await.unwrap();
        assert_eq!(store.get("j".into()).await.unwrap(), Some(b"y".to_vec()));
        assert!(!store.link.lock().await.down, "the outage is over");
    }

    #[test]
    fn an_outage_is_reported_once_however_often_it_fails() {
        let mut link = Link::default();
        let now = Instant::now();
        assert!(link.failed(now), "the first failure starts an outage");
        let later = now + RETRY_AFTER;
        assert!(
            !link.failed(later),
            "retries that fail belong to the same outage"
        );
        assert_eq!(link.retry_at, Some(later + RETRY_AFTER));
        assert!(link.connection.is_none());
    }

    #[tokio::test]
    async fn starts_while_redis_is_down_but_rejects_bad_urls() {
        let store =
            RedisStore::new("default", &format!("redis://127.0.0.1:{}", free_port())).unwrap();
        assert!(matches!(store.get("k".into()).await, Err(Error::Other(_))));
        let error = RedisStore::new("default", "http://user:hunter2@nope/0")
            .err()
            .unwrap();
        let message = format!("{error:#}");
        assert!(
            message.contains("invalid Redis URL http://***@nope/0"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn credentials_are_cut_from_urls() {
        assert_eq!(
            without_credentials("redis://:pw@h:6379/1"),
            "redis://***@h:6379/1"
        );
        assert_eq!(without_credentials("redis://h/a@b"), "redis://h/a@b");
        assert_eq!(without_credentials("h:6379"), "h:6379");
    }
}
