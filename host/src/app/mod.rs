//! The application as configured: the manifest (Spin's fields; this host's section as each unit reads it), the
//! runtime configuration's sections, and variable templates. Checked once at start-up, with errors that name the
//! file.

pub mod manifest;
pub mod route;
pub mod runtime_config;
pub mod template;
mod toml_file;
