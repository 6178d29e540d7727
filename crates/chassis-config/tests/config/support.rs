//! Shared helpers: a temporary config directory and a loader that never reads
//! the process environment (tests run in parallel).

use std::path::{Path, PathBuf};

use chassis_config::Loader;

/// A temporary directory holding config files.
pub struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` (relative) with `content`, creating parent directories.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// A loader with prefix `APP`, this directory as config dir, and an empty
    /// injected environment.
    pub fn loader(&self) -> Loader {
        Loader::new("APP").dir(self.path()).env(Vec::<(String, String)>::new())
    }
}

/// A loader with prefix `APP`, no config dir, and exactly these variables.
pub fn env_loader(vars: &[(&str, &str)]) -> Loader {
    Loader::new("APP").no_dir().env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}
