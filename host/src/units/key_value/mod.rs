//! `fermyon:spin/key-value@2.0.0`: labelled stores behind a small async [`Store`] trait, one module per
//! backend. The runtime config picks each label's backend; stores are opened once at start-up and shared by
//! every request, and a component may only open the labels its manifest lists in `key_value_stores`.

mod config;
mod redis;
mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::instance::RequestState;
use crate::unit::{ComponentIndex, Configure, InstanceBuilder, NoFlags, Nothing, Start, Unit};
use bindings::fermyon::spin::key_value::{self, Error, Host, HostStore};
use config::{KeyValueBackend, RuntimeConfig};

/// Host bindings for `fermyon:spin/key-value@2.0.0`, from the WIT that `scripts/fetch_wit.py` copies out of
/// spin-sdk.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin",
        inline: "
            package sbert:key-value;

            world key-value {
                import fermyon:spin/key-value@2.0.0;
            }
        ",
        // Backends do I/O (SQLite on the blocking pool, Redis over the network): async keeps the executor free
        // while they wait.
        imports: { "fermyon:spin/key-value": async | trappable },
        with: { "fermyon:spin/key-value.store": super::OpenStore },
    });
}

/// `fermyon:spin/key-value`: the stores the runtime configuration defines, opened once and shared by every
/// component that lists their label.
#[derive(Default)]
pub struct KeyValue {
    /// Every configured store's backend, by label.
    backends: BTreeMap<String, KeyValueBackend>,
    /// Per served component: the labels it may open.
    labels: Vec<Vec<String>>,
    /// Per served component: its opened stores.
    components: Vec<ComponentStores>,
}

impl Unit for KeyValue {
    const NAME: &'static str = "key-value";
    type Flags = NoFlags;
    type Tool = Nothing;
    type RuntimeConfig = RuntimeConfig;

    fn new(_: NoFlags) -> Self {
        Self::default()
    }

    fn configure(
        &mut self,
        ctx: &Configure<'_>,
        _: Vec<Nothing>,
        runtime_config: RuntimeConfig,
    ) -> Result<()> {
        self.backends = runtime_config.resolved(|path| ctx.runtime_config_path(path), &ctx.app.dir);
        for component in ctx.components {
            let labels = &component.manifest.key_value_stores;
            if let Some(label) = labels
                .iter()
                .find(|label| !self.backends.contains_key(*label))
            {
                bail!(
                    "component `{}` uses key-value store `{label}`, which the runtime config does not define (add [key_value_store.{label}] to {})",
                    component.id,
                    ctx.runtime_config_file
                        .map_or_else(|| "a --runtime-config-file".into(), |file| file.display().to_string())
                );
            }
            self.labels.push(labels.clone());
        }
        Ok(())
    }

    fn start(&mut self, _ctx: &mut Start<'_>) -> Result<()> {
        // Stores are shared between components that name the same label.
        let mut opened: HashMap<&str, Arc<dyn Store>> = HashMap::new();
        for labels in &self.labels {
            let mut stores = HashMap::new();
            for label in labels {
                let store = match opened.get(label.as_str()) {
                    Some(store) => store.clone(),
                    None => {
                        let store = open(label, &self.backends[label])
                            .with_context(|| format!("key-value store `{label}`"))?;
                        opened.insert(label, store.clone());
                        store
                    }
                };
                stores.insert(label.clone(), store);
            }
            self.components.push(ComponentStores::new(stores));
        }
        Ok(())
    }

    fn link(linker: &mut Linker<RequestState>) -> Result<()> {
        key_value::add_to_linker::<_, HasKeyValue>(linker, |state| {
            let (stores, table) = state.unit_state::<ComponentStores>();
            KeyValueView { stores, table }
        })?;
        Ok(())
    }

    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder) {
        instance.add(self.components[component.0].clone());
    }
}

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
