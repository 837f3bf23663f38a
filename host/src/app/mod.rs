//! The application as configured: the manifest (with this host's own section), the runtime configuration,
//! and variable templates. Typed, checked once at start-up, with errors that name the file.

pub mod host_answers;
pub mod manifest;
pub mod route;
pub mod runtime_config;
pub mod template;
mod toml_file;
