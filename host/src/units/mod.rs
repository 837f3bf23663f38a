//! Every capability of the runtime, one folder each ([`crate::unit`] says what a unit owns). To add one: a
//! folder here, and one line in the list below.

pub mod admission;
pub mod http_cache;
pub mod key_value;
pub mod llm;
pub mod metrics;
pub mod nn;
pub mod outbound_http;
pub mod variables;

use crate::unit::{DynUnit, Unit};

/// Declares the list: its flags (flattened into `sbert-host up`'s) and the units made from them, in order.
macro_rules! units {
    ($($field:ident: $unit:ty),* $(,)?) => {
        /// Every unit's command-line flags.
        #[derive(Debug, clap::Args)]
        pub struct UnitFlags {
            $(
                #[command(flatten)]
                $field: <$unit as Unit>::Flags,
            )*
        }

        impl UnitFlags {
            /// The units, in the order they are configured and started: a unit may use those before it.
            pub fn into_units(self) -> Vec<Box<dyn DynUnit>> {
                vec![$(Box::new(<$unit as Unit>::new(self.$field))),*]
            }
        }
    };
}

units! {
    variables: variables::Variables,
    key_value: key_value::KeyValue,
    nn: nn::WasiNn,
    llm: llm::Llm,
    outbound_http: outbound_http::OutboundHttp,
    http_cache: http_cache::HttpCacheUnit,
    admission: admission::Admission,
    metrics: metrics::Metrics,
}
