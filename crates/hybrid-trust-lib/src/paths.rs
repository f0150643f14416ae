//! Where the tool keeps its state (ledger, audit log, locks) and its settings, per platform:
//! `$XDG_STATE_HOME/hybrid-trust` or `~/.local/state/hybrid-trust` on Linux, the application
//! support / local app data folders on macOS / Windows. Directories are made mode 0700.

use std::path::{Path, PathBuf};

pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("hybrid-trust"));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    let home = PathBuf::from(home);
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Application Support/hybrid-trust")
    } else if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA")
            .map_or_else(|| home.join("AppData/Local"), PathBuf::from)
            .join("hybrid-trust")
    } else {
        home.join(".local/state/hybrid-trust")
    })
}

pub fn default_config_file() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("hybrid-trust/config.toml"));
    }
    let home = PathBuf::from(std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?);
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Application Support/hybrid-trust/config.toml")
    } else if cfg!(windows) {
        std::env::var_os("APPDATA")
            .map_or_else(|| home.join("AppData/Roaming"), PathBuf::from)
            .join("hybrid-trust/config.toml")
    } else {
        home.join(".config/hybrid-trust/config.toml")
    })
}

/// A state file or folder that others can write, or that another user owns.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path} {reason}; refusing to use it")]
pub struct LooseMode {
    pub what: &'static str,
    pub path: PathBuf,
    pub reason: String,
    /// The command that fixes it (or, for a link, what to do instead).
    pub fix: String,
    /// The path is reached through a symbolic link in a folder others can write.
    pub through_link: bool,
}

impl LooseMode {
    pub fn hint(&self) -> String {
        if self.through_link {
            return format!(
                "whoever can write that folder can point the link elsewhere and choose what hybrid-trust uploads; {}",
                self.fix
            );
        }
        format!(
            "whoever can write it can change what hybrid-trust uploads; check who changed it, then run: {}",
            self.fix
        )
    }
}

/// Refuses a state folder or file that the group or others can write, or that a user other than
/// this one (or root) owns, as ssh refuses a loose `~/.ssh` (sshd `StrictModes`): the ledger holds
/// the certificate `renew` uploads, so whoever can write it chooses the key that lets its holder
/// act as Skype for Business Online. A missing file is fine (it will be made 0600).
///
/// The path is judged as resolved (the folder it leads to) and, for each symbolic link met on
/// the way, by the folder holding that link (issue 24, item 11): whoever can write that folder
/// can replace the link and send the tool to a state dir of their choosing, whatever the modes
/// of the folder it points at today. As OpenSSH's `StrictModes` judges every folder on the path,
/// a sticky world-writable folder (`/tmp`) is not trusted either.
pub fn refuse_loose(path: &Path, what: &'static str) -> Result<(), LooseMode> {
    #[cfg(unix)]
    refuse_loose_links(path, what)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.mode() & 0o7777;
            let quoted = format!("'{}'", path.display());
            if mode & 0o022 != 0 {
                let fix = if m.is_dir() { 0o700 } else { 0o600 };
                return Err(LooseMode {
                    what,
                    path: path.to_path_buf(),
                    reason: format!("can be written by others (mode {mode:03o})"),
                    fix: format!("chmod {fix:o} {quoted}"),
                    through_link: false,
                });
            }
            // This process's user: the owner of /proc/self (Linux; elsewhere the check is skipped).
            if let Ok(me) = std::fs::metadata("/proc/self").map(|p| p.uid())
                && m.uid() != me
                && m.uid() != 0
            {
                return Err(LooseMode {
                    what,
                    path: path.to_path_buf(),
                    reason: format!("belongs to another user (uid {})", m.uid()),
                    fix: format!("chown {me} {quoted}"),
                    through_link: false,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// Whether a folder's metadata lets someone other than this user (and root) change its entries:
/// writable by the group or others, or owned by another user. `None`: it may.
#[cfg(unix)]
fn loose_folder(m: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!("can be written by others (mode {mode:03o})"));
    }
    let me = std::fs::metadata("/proc/self").map(|p| p.uid()).ok()?;
    (m.uid() != me && m.uid() != 0).then(|| format!("belongs to another user (uid {})", m.uid()))
}

/// Walks `path` as the kernel resolves it, and refuses it when a symbolic link on the way lies
/// in a folder someone else can change ([`refuse_loose`]).
#[cfg(unix)]
fn refuse_loose_links(path: &Path, what: &'static str) -> Result<(), LooseMode> {
    use std::collections::VecDeque;
    use std::path::Component;
    let mut todo: VecDeque<std::ffi::OsString> = VecDeque::new();
    let mut cur = PathBuf::new();
    let push_all = |todo: &mut VecDeque<std::ffi::OsString>, p: &Path, cur: &mut PathBuf| {
        let mut front = Vec::new();
        for c in p.components() {
            match c {
                Component::RootDir | Component::Prefix(_) => {
                    *cur = PathBuf::from(c.as_os_str());
                    front.clear();
                }
                Component::CurDir => {}
                Component::ParentDir | Component::Normal(_) => front.push(c.as_os_str().to_owned()),
            }
        }
        for c in front.into_iter().rev() {
            todo.push_front(c);
        }
    };
    push_all(&mut todo, path, &mut cur);
    // As the kernel's own limit on links followed (ELOOP): past it, the open fails anyway.
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if !cur.pop() {
                cur.push("..");
            }
            continue;
        }
        let next = cur.join(&c);
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            // Missing: made later by the tool, as a folder of its own.
            return Ok(());
        };
        if !meta.file_type().is_symlink() {
            cur = next;
            continue;
        }
        links += 1;
        if links > 40 {
            return Ok(());
        }
        let parent = if cur.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            cur.clone()
        };
        if let Some(reason) = std::fs::metadata(&parent)
            .ok()
            .and_then(|m| loose_folder(&m))
        {
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            return Err(LooseMode {
                what,
                path: path.to_path_buf(),
                reason: format!(
                    "is reached through the symbolic link {}, in {} which {reason}",
                    next.display(),
                    parent.display()
                ),
                fix: format!(
                    "name the real folder instead ('{}'), or move the link to a folder only you can write",
                    real.display()
                ),
                through_link: true,
            });
        }
        let Ok(target) = std::fs::read_link(&next) else {
            return Ok(());
        };
        push_all(&mut todo, &target, &mut cur);
    }
    Ok(())
}

/// Size limits of the files a user names, each far above what its format needs (issue 14,
/// defect 10): a certificate or PFX with its chain, a metadata document, saved `Get-Cs*`
/// output, the settings file, the cloud file and a CA bundle are a few KiB; a password is a
/// line.
pub const MAX_CERT_FILE: u64 = 1024 * 1024;
pub const MAX_DOCUMENT_FILE: u64 = 1024 * 1024;
pub const MAX_SETTINGS_FILE: u64 = 1024 * 1024;
pub const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// Reads a file the user named, at most `max` bytes, refusing anything that is not a regular
/// file (issue 14, defect 10). `what` names the kind of file in the size error ("a
/// certificate"). The one way the tool reads a user's file:
/// - A FIFO would block `open` until a writer appears, and a device such as /dev/zero never
///   ends: the path's metadata is checked before opening, the file is opened with `O_NONBLOCK`
///   on Unix (a FIFO swapped in after the check then opens at once instead of hanging;
///   `O_NONBLOCK` does not change reads of a regular file, open(2)), and the opened handle's
///   metadata is checked again.
/// - The read stops at `max + 1` bytes whatever the metadata said (a file may grow).
///
/// Errors are `std::io::Error`s (`NotFound` stays `NotFound`) whose message says what is wrong,
/// for the caller to put under its own "cannot read …" context.
pub fn read_limited(path: &Path, max: u64, what: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    check_regular(&std::fs::metadata(path)?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    check_regular(&meta)?;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {}, the limit for {what}", human_size(max)),
        )
    };
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

fn check_regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let kind = if t.is_dir() {
        "a directory"
    } else {
        special_kind(&t)
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("not a regular file ({kind})"),
    ))
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

fn human_size(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory with `mode` (on
/// Unix), fsync, rename over `path`, fsync of the directory. A reader sees the old file or the
/// new one, never a part of either. The one place the tool writes a file it keeps.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".hybrid-trust.")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_limited_refuses_devices_fifos_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2049]).unwrap();
        let e = read_limited(&big, 2048, "a test file").unwrap_err();
        assert!(
            e.to_string()
                .contains("larger than 2 KiB, the limit for a test file"),
            "{e}"
        );
        assert_eq!(read_limited(&big, 2049, "x").unwrap().len(), 2049);
        let e = read_limited(std::path::Path::new("/dev/zero"), 10, "x").unwrap_err();
        assert!(
            e.to_string()
                .contains("not a regular file (a character device)"),
            "{e}"
        );
        let e = read_limited(dir.path(), 10, "x").unwrap_err();
        assert!(
            e.to_string().contains("not a regular file (a directory)"),
            "{e}"
        );
        let e = read_limited(&dir.path().join("nope"), 10, "x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    /// Issue 24, item 11: a state dir reached through a symbolic link is judged by the folder
    /// holding the link too (whoever can write that folder can re-point the link), as well as by
    /// the folder it resolves to; a link in a private folder is fine.
    #[cfg(unix)]
    #[test]
    fn a_state_dir_through_a_link_in_a_folder_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-state");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        let link = shared.join("state");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for mode in [0o777, 0o1777, 0o775] {
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = refuse_loose(&link, "the state dir").expect_err("refused");
            let line = e.to_string();
            assert!(line.contains(&link.display().to_string()), "{line}");
            assert!(line.contains(&format!("{mode:03o}")), "{mode:o}: {line}");
            assert!(
                e.hint().contains(&real.display().to_string()),
                "{}",
                e.hint()
            );
            // Below the link, too (the ledger folder of that state dir).
            std::fs::create_dir_all(real.join("ledger")).unwrap();
            assert!(refuse_loose(&link.join("ledger"), "the ledger").is_err());
            // A relative link, and a path that goes through the link and back up.
            let rel = shared.join("rel");
            let _ = std::fs::remove_file(&rel);
            std::os::unix::fs::symlink("../real-state", &rel).unwrap();
            assert!(refuse_loose(&rel, "the state dir").is_err());
        }
        // The same link in a folder only this user can write, and the real path: accepted.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(refuse_loose(&link, "the state dir").is_ok());
        assert!(refuse_loose(&shared.join("rel").join("ledger"), "the ledger").is_ok());
        assert!(refuse_loose(&real, "the state dir").is_ok());
        // A link to a loose folder is judged by where it leads, as before.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(refuse_loose(&link, "the state dir").is_err());
    }
}
