//! Writing the files a command produces (exports, scripts): atomically, never replacing an
//! existing file unless asked.

use super::Failure;
use std::path::Path;

/// Writes a file atomically; refuses to replace an existing one unless `force`.
pub fn write_new_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    use std::io::Write as _;
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
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| {
        Failure::runtime(
            anyhow::Error::new(e).context(format!("cannot write {}", path.display())),
            None,
        )
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(fail)?;
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
