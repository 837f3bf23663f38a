//! [`Kv`] over Spin's `fermyon:spin/key-value`, store `default`.

use spin_sdk::key_value::{Error, Store};

use crate::embed::cache::{Kv, KvError};

pub struct SpinKv(Store);

impl SpinKv {
    /// The `default` store, or `None` when it cannot be opened (the request then goes uncached).
    pub fn open_default() -> Option<Self> {
        Store::open_default().ok().map(Self)
    }
}

fn kv_error(error: Error) -> KvError {
    KvError(error.to_string())
}

impl Kv for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(key).map_err(kv_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0.set(key, value).map_err(kv_error)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.0.delete(key).map_err(kv_error)
    }

    fn keys(&self) -> Result<Vec<String>, KvError> {
        self.0.get_keys().map_err(kv_error)
    }
}
