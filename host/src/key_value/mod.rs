//! `fermyon:spin/key-value@2.0.0`: labelled stores behind a small async [`Store`] trait, one module per
//! backend. The runtime config picks each label's backend; stores are opened once at start-up and shared by
//! every request, and a component may only open the labels its manifest lists in `key_value_stores`.

mod redis;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::app::runtime_config::KeyValueBackend;
use crate::bindings::fermyon::spin::key_value::{Error, Host, HostStore};

/// A key-value store backend. Errors are `fermyon:spin/key-value` errors, so they reach the guest as-is.
#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Error>;
    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error>;
    async fn delete(&self, key: String) -> Result<(), Error>;
    async fn exists(&self, key: String) -> Result<bool, Error>;
    async fn get_keys(&self) -> Result<Vec<String>, Error>;
}

/// Opens the store for `label` as configured.
pub fn open(label: &str, backend: &KeyValueBackend) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match backend {
        KeyValueBackend::Sqlite { path } => {
            Arc::new(sqlite::SqliteStore::open(path.as_deref(), label)?)
        }
        KeyValueBackend::Redis { url } => Arc::new(redis::RedisStore::new(label, url)?),
    };
    Ok(store)
}

/// The stores one component may open, by label.
#[derive(Clone, Default)]
pub struct ComponentStores(Arc<HashMap<String, Arc<dyn Store>>>);

impl ComponentStores {
    pub fn new(stores: HashMap<String, Arc<dyn Store>>) -> Self {
        Self(Arc::new(stores))
    }
}

/// The guest's handle to an opened store: the `store` resource.
pub struct OpenStore(Arc<dyn Store>);

/// What the key-value host functions see of a request's state.
pub struct KeyValueView<'a> {
    pub stores: &'a ComponentStores,
    pub table: &'a mut ResourceTable,
}

/// Marker tying [`KeyValueView`] to the generated `add_to_linker`.
pub struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

impl KeyValueView<'_> {
    fn store(&self, handle: &Resource<OpenStore>) -> wasmtime::Result<Arc<dyn Store>> {
        Ok(self.table.get(handle)?.0.clone())
    }
}

impl Host for KeyValueView<'_> {}

impl HostStore for KeyValueView<'_> {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        let Some(store) = self.stores.0.get(&label) else {
            return Ok(Err(Error::AccessDenied));
        };
        Ok(self
            .table
            .push(OpenStore(store.clone()))
            .map_err(|_| Error::StoreTableFull))
    }

    async fn get(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(self.store(&handle)?.get(key).await)
    }

    async fn set(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.store(&handle)?.set(key, value).await)
    }

    async fn delete(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.store(&handle)?.delete(key).await)
    }

    async fn exists(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(self.store(&handle)?.exists(key).await)
    }

    async fn get_keys(
        &mut self,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(self.store(&handle)?.get_keys().await)
    }

    async fn drop(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

/// Wraps a backend failure for the guest: the message says what failed, never the stored data.
fn backend_error(error: impl std::fmt::Display) -> Error {
    Error::Other(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::runtime_config::KeyValueBackend;

    fn stores() -> ComponentStores {
        let store = open("default", &KeyValueBackend::Sqlite { path: None }).unwrap();
        ComponentStores::new(HashMap::from([("default".to_string(), store)]))
    }

    #[tokio::test]
    async fn the_guest_opens_only_listed_labels_and_round_trips() {
        let stores = stores();
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            stores: &stores,
            table: &mut table,
        };

        assert!(matches!(
            view.open("other".into()).await.unwrap(),
            Err(Error::AccessDenied)
        ));

        let store = view.open("default".into()).await.unwrap().unwrap();
        let rep = store.rep();
        let handle = || Resource::<OpenStore>::new_borrow(rep);
        view.set(handle(), "k".into(), b"v".to_vec())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            view.get(handle(), "k".into()).await.unwrap().unwrap(),
            Some(b"v".to_vec())
        );
        assert!(view.exists(handle(), "k".into()).await.unwrap().unwrap());
        assert_eq!(view.get_keys(handle()).await.unwrap().unwrap(), ["k"]);
        view.delete(handle(), "k".into()).await.unwrap().unwrap();
        assert!(!view.exists(handle(), "k".into()).await.unwrap().unwrap());
        HostStore::drop(&mut view, store).await.unwrap();
        // A dropped handle is a guest bug: it traps rather than returning an error.
        assert!(view.get(handle(), "k".into()).await.is_err());
    }
}
