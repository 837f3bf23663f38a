//! The application manifest: the subset of Spin's `spin.toml` (manifest version 2) that sbert-host runs.
//!
//! Unknown fields are errors rather than silently ignored, so a manifest that asks for a Spin feature this
//! host does not implement fails at start-up instead of misbehaving at request time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::route::Route;
use super::template::{validate_name, Template};
use super::toml_file;

/// The file name looked up when `--from` names a directory.
pub const MANIFEST_FILE_NAME: &str = "spin.toml";

/// The key of this host's section under `[component.<id>.tool]`.
pub const HOST_TOOL: &str = "sbert-host";

/// A parsed and validated manifest, with the directory its relative paths are resolved against.
#[derive(Debug)]
pub struct App {
    pub manifest: Manifest,
    /// The manifest's directory: component sources and model files are relative to it.
    pub dir: PathBuf,
    /// The manifest file, for errors.
    pub file: PathBuf,
}

/// `spin.toml`, manifest version 2.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 2: version 1 manifests are not supported.
    #[allow(dead_code, reason = "checked while parsing")]
    pub spin_manifest_version: ManifestVersion,
    /// Application metadata.
    pub application: Application,
    /// Application variables, readable by components through templates in their `variables` table.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// Triggers; only HTTP triggers exist here.
    #[serde(default)]
    pub trigger: Triggers,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

/// The `spin_manifest_version` field, which must be 2.
#[derive(Debug, Deserialize)]
#[serde(try_from = "u32")]
pub struct ManifestVersion;

impl TryFrom<u32> for ManifestVersion {
    type Error = String;

    fn try_from(version: u32) -> Result<Self, Self::Error> {
        if version == 2 {
            Ok(Self)
        } else {
            Err(format!(
                "spin_manifest_version {version} is not supported (sbert-host reads version 2)"
            ))
        }
    }
}

/// `[application]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The application's name, shown at start-up.
    pub name: String,
    /// The application's version, shown at start-up.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text for people reading the manifest.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for Spin compatibility; the host has no use for it"
    )]
    pub description: Option<String>,
    /// Free text for people reading the manifest.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for Spin compatibility; the host has no use for it"
    )]
    pub authors: Vec<String>,
}

/// An entry of `[variables]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// The value used when no provider sets one.
    #[serde(default)]
    pub default: Option<String>,
    /// Start-up fails unless a provider sets a value.
    #[serde(default)]
    pub required: bool,
    /// The value must never appear in logs or error messages.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "the host logs no variable values at all, secret or not"
    )]
    pub secret: bool,
}

/// `[trigger]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// `[[trigger.http]]` entries.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

/// One `[[trigger.http]]`: which component answers which route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// `/exact/path`, or a prefix ending in `/...` that matches everything below it.
    pub route: String,
    /// The id of a `[component.<id>]`.
    pub component: String,
}

/// `[component.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// The Wasm component file, relative to the manifest's directory.
    pub source: PathBuf,
    /// Shown under the component's route at start-up.
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables: templates over application variables, e.g. `"{{ api_keys }}"`.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Models the component may use through `fermyon:spin/llm` (Spin's allow-list); the host serves those
    /// configured in `[component.<id>.tool.sbert-host] llm_models`.
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Destinations the component may send HTTP requests to, in Spin's syntax (`https://api.example.com`,
    /// `http://*.internal:8080`, templates like `"{{ inference_url }}"`); the outbound HTTP unit enforces them.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// How `spin build` builds the component; the host names the command when the component is missing.
    #[serde(default)]
    pub build: Option<Build>,
    /// Per-tool settings; sbert-host reads `[component.<id>.tool.sbert-host]` (each unit its keys) and
    /// ignores other tools.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// `[component.<id>.build]`, accepted so that manifests built with `spin build` run unchanged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The build command.
    pub command: String,
    /// Paths `spin watch` watches.
    #[serde(default)]
    #[allow(dead_code, reason = "read by `spin watch`, not by the host")]
    pub watch: Vec<String>,
    /// The directory the command runs in.
    #[serde(default)]
    #[allow(dead_code, reason = "read by `spin build`, not by the host")]
    pub workdir: Option<String>,
}

impl App {
    /// Reads `from` (a manifest file, or a directory containing `spin.toml`) and validates it.
    pub fn load(from: &Path) -> Result<Self> {
        let file = if from.is_dir() {
            from.join(MANIFEST_FILE_NAME)
        } else {
            from.to_path_buf()
        };
        if !file.is_file() {
            bail!(
                "manifest {} not found (pass --from with a spin.toml file or its directory)",
                file.display()
            );
        }
        let manifest: Manifest = toml_file::read(&file)?;
        manifest
            .validate()
            .with_context(|| format!("invalid manifest {}", file.display()))?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self {
            manifest,
            dir,
            file,
        })
    }

    /// Resolves a path written in the manifest against the manifest's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }
}

impl Manifest {
    fn validate(&self) -> Result<()> {
        for (name, variable) in &self.variables {
            validate_name(name).with_context(|| format!("variable `{name}`"))?;
            if variable.required && variable.default.is_some() {
                bail!("variable `{name}` is required, so it cannot also have a default");
            }
        }
        if self.trigger.http.is_empty() {
            bail!("no [[trigger.http]]: there is nothing to serve");
        }
        for trigger in &self.trigger.http {
            Route::parse(&trigger.route)?;
            if !self.component.contains_key(&trigger.component) {
                bail!(
                    "route `{}` names component `{}`, which is not defined",
                    trigger.route,
                    trigger.component
                );
            }
        }
        for (id, component) in &self.component {
            component
                .validate(&self.variables)
                .with_context(|| format!("component `{id}`"))?;
        }
        Ok(())
    }
}

impl Component {
    fn validate(&self, app_variables: &BTreeMap<String, Variable>) -> Result<()> {
        for (name, template) in &self.variables {
            validate_name(name).with_context(|| format!("variable `{name}`"))?;
            let template =
                Template::parse(template).with_context(|| format!("variable `{name}`"))?;
            let unknown = template
                .references()
                .find(|r| !app_variables.contains_key(*r))
                .map(str::to_string);
            if let Some(unknown) = unknown {
                bail!(
                    "variable `{name}` refers to `{unknown}`, which is not declared in [variables]"
                );
            }
        }
        Ok(())
    }

    /// This host's section of the component's tool settings; empty when the manifest has none.
    pub fn host_tool(&self) -> toml::Table {
        self.tool.get(HOST_TOOL).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"
version = "0.1.0"
description = "a demo"
authors = ["someone"]

[variables]
api_keys = { required = true, secret = true }
greeting = { default = "hello" }

[[trigger.http]]
route = "/..."
component = "web"

[component.web]
source = "build/web.wasm"
description = "the web component"
key_value_stores = ["default"]
ai_models = ["all-minilm-l6-v2"]

[component.web.variables]
api_keys = "{{ api_keys }}"
message = "{{ greeting }}, world"

[component.web.build]
command = "make component"
watch = ["src/**/*.rs"]

[component.web.tool.sbert-host]
graphs = { "all-minilm-l6-v2" = "models/all-minilm-l6-v2/model.onnx" }
llm_models = { "all-minilm-l6-v2" = { graph = "all-minilm-l6-v2", tokenizer = "models/all-minilm-l6-v2/tokenizer.json", max_tokens = 256 } }

[component.web.tool.other-tool]
anything = 1
"#;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join(MANIFEST_FILE_NAME);
        std::fs::write(&file, text).unwrap();
        file
    }

    fn load_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), text);
        let error = App::load(&file).unwrap_err();
        format!("{error:#}")
    }

    #[test]
    fn parses_the_fields_the_host_uses() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), MANIFEST);
        let app = App::load(dir.path()).unwrap();
        assert_eq!(app.dir, dir.path());
        let manifest = &app.manifest;
        assert_eq!(manifest.application.name, "demo");
        assert!(manifest.variables["api_keys"].required);
        assert!(manifest.variables["api_keys"].secret);
        assert_eq!(
            manifest.variables["greeting"].default.as_deref(),
            Some("hello")
        );
        assert_eq!(manifest.trigger.http[0].component, "web");
        let web = &manifest.component["web"];
        assert_eq!(app.resolve(&web.source), dir.path().join("build/web.wasm"));
        assert_eq!(web.key_value_stores, ["default"]);
        assert_eq!(web.ai_models, ["all-minilm-l6-v2"]);
        let tool = web.host_tool();
        assert!(tool.contains_key("graphs") && tool.contains_key("llm_models"));
        assert!(!tool.contains_key("anything"), "another tool's section");
    }

    #[test]
    fn unknown_fields_are_errors_that_name_the_file_and_line() {
        let text = MANIFEST.replace(
            "[component.web.build]",
            "[component.web.build]\nbogus = true",
        );
        let error = load_error(&text);
        assert!(error.contains("spin.toml:"), "{error}");
        assert!(error.contains("unknown field `bogus`"), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn rejects_other_manifest_versions() {
        let error =
            load_error(&MANIFEST.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
        assert!(
            error.contains("spin_manifest_version 1 is not supported"),
            "{error}"
        );
    }

    #[test]
    fn rejects_routes_to_missing_components() {
        let error = load_error(&MANIFEST.replace("component = \"web\"", "component = \"nope\""));
        assert!(
            error.contains("component `nope`, which is not defined"),
            "{error}"
        );
    }

    #[test]
    fn rejects_templates_over_undeclared_variables() {
        let error = load_error(&MANIFEST.replace("{{ greeting }}", "{{ farewell }}"));
        assert!(error.contains("refers to `farewell`"), "{error}");
    }

    #[test]
    fn rejects_required_variables_with_defaults() {
        let error = load_error(&MANIFEST.replace(
            "required = true, secret",
            "required = true, default = \"x\", secret",
        ));
        assert!(error.contains("cannot also have a default"), "{error}");
    }

    #[test]
    fn missing_manifest_says_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = format!("{:#}", App::load(dir.path()).unwrap_err());
        assert!(error.contains("spin.toml not found"), "{error}");
        assert!(error.contains("--from"), "{error}");
    }
}
