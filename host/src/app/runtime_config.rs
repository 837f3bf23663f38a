//! The runtime configuration file (`--runtime-config-file`), in Spin's format. Read here as a table of
//! sections; each unit reads the sections it owns (`key_value_store`, ...), and a section no unit owns stops
//! start-up.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::toml_file;

/// The file's top-level sections, and where it is: paths in it are relative to its directory.
#[derive(Debug, Default)]
pub struct RuntimeConfig {
    pub sections: toml::Table,
    pub file: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Reads `file`, if given (without one, every unit has its defaults).
    pub fn load(file: Option<&Path>) -> Result<Self> {
        match file {
            Some(file) => Ok(Self {
                sections: toml_file::read(file)?,
                file: Some(file.to_path_buf()),
            }),
            None => Ok(Self::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runtime-config.toml");
        std::fs::write(&file, "[key_value_store.default\n").unwrap();
        let error = RuntimeConfig::load(Some(&file)).unwrap_err().to_string();
        assert!(error.contains("runtime-config.toml:1:"), "{error}");
        let error = RuntimeConfig::load(Some(Path::new("/nope/rc.toml"))).unwrap_err();
        assert!(format!("{error:#}").contains("/nope/rc.toml"));
    }
}
