//! Outbound HTTP (`wasi:http/outgoing-handler`): what a component's outgoing requests may reach, by its
//! manifest's `allowed_outbound_hosts`. Without an allowed host, every outgoing request is denied.

use anyhow::{bail, Result};

use crate::unit::{Configure, NoFlags, Nothing, Unit};

pub struct OutboundHttp;

impl Unit for OutboundHttp {
    const NAME: &'static str = "outbound http";
    type Flags = NoFlags;
    type Tool = Nothing;
    type RuntimeConfig = Nothing;

    fn new(_: NoFlags) -> Self {
        Self
    }

    fn configure(&mut self, ctx: &Configure<'_>, _: Vec<Nothing>, _: Nothing) -> Result<()> {
        if let Some(component) = ctx
            .components
            .iter()
            .find(|component| !component.manifest.allowed_outbound_hosts.is_empty())
        {
            bail!(
                "component `{}`: allowed_outbound_hosts is not supported: sbert-host grants no outbound network access",
                component.id
            );
        }
        Ok(())
    }
}
