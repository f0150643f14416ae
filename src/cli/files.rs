//! Writing the files a command produces (exports, scripts): atomically, never replacing an
//! existing file unless asked.

use super::Failure;
use std::path::Path;

/// Writes a file atomically; refuses to replace an existing one unless `force`.
pub fn write_new_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    if path.is_dir() {
        return Err(Failure::input(
            anyhow::anyhow!("{} is a directory", path.display()),
            Some("give a file name for --out".to_string()),
        ));
    }
    if path.exists() && !force {
        return Err(Failure::input(
            anyhow::anyhow!("{} already exists", path.display()),
            Some("pass --force to overwrite it, or choose another --out".to_string()),
        ));
    }
    hybrid_trust::paths::write_atomic(path, bytes, 0o644).map_err(|e| {
        Failure::runtime(
            anyhow::Error::new(e).context(format!("cannot write {}", path.display())),
            None,
        )
    })?;
    Ok(())
}
