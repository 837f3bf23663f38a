//! `fermyon:spin/variables@2.0.0`: application variables, resolved once at start-up.
//!
//! Providers, first match wins: `--variable name=value`, then the `SPIN_VARIABLE_<NAME>` environment
//! variable, then the manifest's `default`. Component variables are templates over the application's
//! (`"{{ api_keys }}"`); a component can only read its own. Values are never logged: errors name variables,
//! not what they hold.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Result};
use wasmtime::component::{HasSelf, Linker};

use crate::app::manifest::Manifest;
use crate::app::template::{validate_name, Template};
use crate::instance::RequestState;
use crate::unit::{ComponentIndex, Configure, InstanceBuilder, Nothing, Unit};
use bindings::fermyon::spin::variables::{self, Error, Host};

/// Host bindings for `fermyon:spin/variables@2.0.0`, from the WIT that `scripts/fetch_wit.py` copies out of
/// spin-sdk.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin",
        inline: "
            package sbert:variables;

            world variables {
                import fermyon:spin/variables@2.0.0;
            }
        ",
    });
}

/// `sbert-host up` flags of the variables.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Set an application variable; repeatable. Overrides SPIN_VARIABLE_<NAME> and the manifest default.
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = parse_override)]
    variables: Vec<(String, String)>,
}

/// `fermyon:spin/variables`: every served component's variables, resolved from the command line, the
/// environment and the manifest.
pub struct Variables {
    flags: Flags,
    /// The application variables (`[variables]`): what templates outside a component's own `variables`
    /// table (Spin's `allowed_outbound_hosts`) are rendered with.
    application: HashMap<String, String>,
    /// Per served component.
    components: Vec<ComponentVariables>,
}

impl Variables {
    /// The application variables' values, by name.
    pub fn application(&self) -> HashMap<&str, String> {
        self.application
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect()
    }
}

impl Unit for Variables {
    const NAME: &'static str = "variables";
    type Flags = Flags;
    type Tool = Nothing;
    type RuntimeConfig = Nothing;

    fn new(flags: Flags) -> Self {
        Self {
            flags,
            application: HashMap::new(),
            components: Vec::new(),
        }
    }

    fn configure(&mut self, ctx: &Configure<'_>, _: Vec<Nothing>, _: Nothing) -> Result<()> {
        let manifest = &ctx.app.manifest;
        let application = application(manifest, &self.flags.variables, |name| {
            std::env::var(name).ok()
        })?;
        let mut resolved = component_values(manifest, &application)?;
        self.application = application
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
        self.components = ctx
            .components
            .iter()
            .map(|component| resolved.remove(component.id).unwrap_or_default())
            .collect();
        Ok(())
    }

    fn link(linker: &mut Linker<RequestState>) -> Result<()> {
        variables::add_to_linker::<_, HasSelf<ComponentVariables>>(linker, |state| {
            state.unit_state::<ComponentVariables>().0
        })?;
        Ok(())
    }

    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder) {
        instance.add(self.components[component.0].clone());
    }
}

/// The prefix of environment variables that set application variables.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// One component's resolved variables: what its `fermyon:spin/variables.get` returns.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables(Arc<HashMap<String, String>>);

/// Every component's variables, rendered from the application's `values`.
fn component_values(
    manifest: &Manifest,
    values: &HashMap<&str, String>,
) -> Result<BTreeMap<String, ComponentVariables>> {
    let mut resolved = BTreeMap::new();
    for (id, component) in &manifest.component {
        let mut component_values = HashMap::new();
        for (name, text) in &component.variables {
            let template = Template::parse(text)?;
            let Some(value) = template.render(values) else {
                let unset: Vec<&str> = template
                    .references()
                    .filter(|r| !values.contains_key(r))
                    .collect();
                bail!(
                    "component `{id}` variable `{name}` needs {}, which has no value (set {}=... or give it a default)",
                    unset.join(", "),
                    env_name(unset[0])
                );
            };
            component_values.insert(name.clone(), value);
        }
        resolved.insert(id.clone(), ComponentVariables(Arc::new(component_values)));
    }
    Ok(resolved)
}

/// The application variables' values (`[variables]`). Providers, first match wins: `overrides` (from
/// `--variable`), then `env` (looks up environment variables), then the manifest's default. Fails with one
/// error listing every required variable that no provider sets.
fn application<'m>(
    manifest: &'m Manifest,
    overrides: &[(String, String)],
    env: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<&'m str, String>> {
    for (name, _) in overrides {
        if !manifest.variables.contains_key(name) {
            bail!("--variable {name}: the manifest declares no such variable in [variables]");
        }
    }
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for (name, variable) in &manifest.variables {
        let value = overrides
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .or_else(|| env(&env_name(name)))
            .or_else(|| variable.default.clone());
        match value {
            Some(value) => {
                values.insert(name.as_str(), value);
            }
            None if variable.required => missing.push(name.as_str()),
            None => {}
        }
    }
    if !missing.is_empty() {
        let how: Vec<String> = missing
            .iter()
            .map(|name| format!("{}=...", env_name(name)))
            .collect();
        bail!(
            "required variable{} not set: {} (set {} or pass --variable NAME=VALUE)",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            how.join(", ")
        );
    }
    Ok(values)
}

/// `api_keys` → `SPIN_VARIABLE_API_KEYS`.
fn env_name(variable: &str) -> String {
    format!("{ENV_PREFIX}{}", variable.to_ascii_uppercase())
}

/// Parses a `--variable NAME=VALUE` argument.
fn parse_override(arg: &str) -> Result<(String, String)> {
    let Some((name, value)) = arg.split_once('=') else {
        bail!("expected NAME=VALUE");
    };
    validate_name(name)?;
    Ok((name.to_string(), value.to_string()))
}

impl Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, Error> {
        if validate_name(&name).is_err() {
            return Err(Error::InvalidName(name));
        }
        self.0.get(&name).cloned().ok_or(Error::Undefined(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every component's variables, as the unit resolves them.
    fn resolve(
        manifest: &Manifest,
        overrides: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, ComponentVariables>> {
        component_values(manifest, &application(manifest, overrides, env)?)
    }

    fn manifest(variables: &str, component_variables: &str) -> Manifest {
        let text = format!(
            r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
{variables}
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
[component.web.variables]
{component_variables}
"#
        );
        toml::from_str(&text).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn get(resolved: &BTreeMap<String, ComponentVariables>, name: &str) -> Result<String, Error> {
        resolved["web"].clone().get(name.to_string())
    }

    #[test]
    fn precedence_is_flag_then_env_then_default() {
        let manifest = manifest(
            "greeting = { default = \"default\" }",
            "greeting = \"{{ greeting }}\"",
        );
        let env = |name: &str| (name == "SPIN_VARIABLE_GREETING").then(|| "env".to_string());

        let resolved = resolve(&manifest, &[], no_env).unwrap();
        assert_eq!(get(&resolved, "greeting").unwrap(), "default");

        let resolved = resolve(&manifest, &[], env).unwrap();
        assert_eq!(get(&resolved, "greeting").unwrap(), "env");

        let flag = [("greeting".to_string(), "flag".to_string())];
        let resolved = resolve(&manifest, &flag, env).unwrap();
        assert_eq!(get(&resolved, "greeting").unwrap(), "flag");
    }

    #[test]
    fn templates_mix_text_and_values() {
        let manifest = manifest(
            "who = { default = \"world\" }",
            "message = \"hello, {{who}}!\"",
        );
        let resolved = resolve(&manifest, &[], no_env).unwrap();
        assert_eq!(get(&resolved, "message").unwrap(), "hello, world!");
    }

    #[test]
    fn required_variables_fail_once_with_every_name_and_no_values() {
        let manifest = manifest(
            "api_keys = { required = true, secret = true }\njwt_secret = { required = true, secret = true }",
            "api_keys = \"{{ api_keys }}\"",
        );
        let error = resolve(&manifest, &[], no_env).unwrap_err().to_string();
        assert!(
            error.contains("required variables not set: api_keys, jwt_secret"),
            "{error}"
        );
        assert!(error.contains("SPIN_VARIABLE_API_KEYS"), "{error}");

        let env = |name: &str| (name == "SPIN_VARIABLE_API_KEYS").then(|| "s3cret".to_string());
        let error = resolve(&manifest, &[], env).unwrap_err().to_string();
        assert!(error.contains("not set: jwt_secret"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn unknown_overrides_are_errors() {
        let manifest = manifest("greeting = { default = \"hi\" }", "");
        let flag = [("nope".to_string(), "x".to_string())];
        let error = resolve(&manifest, &flag, no_env).unwrap_err().to_string();
        assert!(error.contains("--variable nope"), "{error}");
    }

    #[test]
    fn optional_variables_without_value_fail_only_when_used() {
        let manifest = manifest("optional = {}", "");
        assert!(resolve(&manifest, &[], no_env).is_ok());
        let manifest = self::manifest("optional = {}", "x = \"{{ optional }}\"");
        let error = resolve(&manifest, &[], no_env).unwrap_err().to_string();
        assert!(
            error.contains("needs optional, which has no value"),
            "{error}"
        );
    }

    #[test]
    fn get_distinguishes_invalid_and_undefined_names() {
        let manifest = manifest(
            "greeting = { default = \"hi\" }",
            "greeting = \"{{ greeting }}\"",
        );
        let resolved = resolve(&manifest, &[], no_env).unwrap();
        assert!(matches!(
            get(&resolved, "Greeting"),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(get(&resolved, "other"), Err(Error::Undefined(_))));
    }

    #[test]
    fn overrides_parse_name_equals_value() {
        assert_eq!(
            parse_override("a_b=x=y").unwrap(),
            ("a_b".to_string(), "x=y".to_string())
        );
        assert!(parse_override("novalue").is_err());
        assert!(parse_override("UPPER=x").is_err());
    }
}
