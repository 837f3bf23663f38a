//! Outbound HTTP (`wasi:http/outgoing-handler`) as Spin grants it: a component reaches only the destinations
//! its manifest's `allowed_outbound_hosts` lists ([`allowed_hosts`], Spin's syntax, templates rendered from the
//! application's variables), and every allowed request goes through one connection pool shared by all
//! instances, within timeouts ([`client`]). Without an allowed destination, every outgoing request is denied.

mod allowed_hosts;
mod client;
mod hooks;

use anyhow::{Context, Result};

use crate::unit::{ComponentIndex, Configure, InstanceBuilder, NoFlags, Nothing, Start, Unit};
use crate::units::variables::Variables;
use allowed_hosts::AllowedHosts;
use client::{OutboundClient, Timeouts};
use hooks::ComponentOutbound;

/// The components' outbound HTTP: what each may reach, and the pool their requests share.
#[derive(Default)]
pub struct OutboundHttp {
    /// Per served component: its id and what it may reach.
    allowed: Vec<(String, AllowedHosts)>,
    /// Per served component, once started.
    components: Vec<ComponentOutbound>,
}

impl Unit for OutboundHttp {
    const NAME: &'static str = "outbound http";
    type Flags = NoFlags;
    type Tool = Nothing;
    type RuntimeConfig = Nothing;

    fn new(_: NoFlags) -> Self {
        Self::default()
    }

    fn configure(&mut self, ctx: &Configure<'_>, _: Vec<Nothing>, _: Nothing) -> Result<()> {
        let variables = ctx
            .unit::<Variables>()
            .map(Variables::application)
            .unwrap_or_default();
        for component in ctx.components {
            let allowed =
                AllowedHosts::parse(&component.manifest.allowed_outbound_hosts, &variables)
                    .with_context(|| format!("component `{}`", component.id))?;
            self.allowed.push((component.id.to_string(), allowed));
        }
        Ok(())
    }

    fn start(&mut self, _ctx: &mut Start<'_>) -> Result<()> {
        let granted = self.allowed.iter().any(|(_, allowed)| !allowed.is_empty());
        let client = granted
            .then(|| OutboundClient::new(Timeouts::default()))
            .transpose()?;
        self.components = std::mem::take(&mut self.allowed)
            .into_iter()
            .map(|(id, allowed)| match &client {
                Some(client) if !allowed.is_empty() => {
                    ComponentOutbound::new(&id, allowed, client.clone())
                }
                _ => ComponentOutbound::default(),
            })
            .collect();
        Ok(())
    }

    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder) {
        instance.outbound_http(self.components[component.0].clone());
    }
}
