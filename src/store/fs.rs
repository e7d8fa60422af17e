//! File helpers of the local store: opening without following symlinks, directories that must
//! not be symlinks, atomic JSON records, directory syncs, locked temporary files.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tempfile::NamedTempFile;

use crate::error::{Error, IoContext, Result};

/// Makes `options` refuse to open a symlink (`O_NOFOLLOW`): a symlink planted where the store
/// keeps a file makes the open fail instead of reaching a file elsewhere.
pub(crate) fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
    }
    options
}

/// Opens an existing file for reading, not following a symlink.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    no_follow(OpenOptions::new().read(true)).open(path)
}

/// Opens an existing file for reading and writing, not following a symlink.
pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    no_follow(OpenOptions::new().read(true).write(true)).open(path)
}

/// Creates the directory `path` unless it exists; an existing entry must be a real directory,
/// not a symlink to one.
pub(crate) fn ensure_dir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).ctx("stat directory", path)?;
            if meta.is_dir() {
                Ok(())
            } else {
                Err(Error::io(
                    "use directory",
                    path,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "it is a symlink or a file, not a directory",
                    ),
                ))
            }
        }
        Err(e) => Err(Error::io("create directory", path, e)),
    }
}

/// Reads a JSON record, `None` when there is none. A record that does not parse is
/// [`Error::Corrupt`].
pub(crate) fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
    key: &str,
) -> Result<Option<T>> {
    let mut bytes = Vec::new();
    match open_read(path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(_) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                what,
                key: key.to_owned(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Writes `value` as JSON to `path` atomically (a new temporary file, then a rename, which
/// replaces a symlink rather than following it), synced to stable storage first when `durable`.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".json-")
        .tempfile_in(dir)
        .ctx("create temporary file in", dir)?;
    let bytes = serde_json::to_vec(value).expect("plain data serializes");
    tmp.write_all(&bytes).ctx("write", tmp.path())?;
    if durable {
        tmp.as_file().sync_data().ctx("sync", tmp.path())?;
    }
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    Ok(())
}

/// Removes a file; a file that is not there is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Flushes a directory's entries (new names, renames) to stable storage.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("sync directory", dir)?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A new temporary file in `dir` (created new: never a symlink), locked so the sweep can tell
/// a live one from a crash's leftover.
pub(crate) fn locked_temp_file(dir: &Path) -> Result<NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix(".stage-")
        .tempfile_in(dir)
        .ctx("create staging file in", dir)?;
    // A fresh file nobody else knows yet: this cannot block.
    file.as_file().try_lock().map_err(|e| match e {
        TryLockError::Error(e) => Error::io("lock staging file", file.path(), e),
        TryLockError::WouldBlock => Error::io(
            "lock staging file",
            file.path(),
            io::ErrorKind::WouldBlock.into(),
        ),
    })?;
    Ok(file)
}

/// Whether two metadata describe the same file (device and inode).
pub(crate) fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.created().ok() == b.created().ok() && a.len() == b.len()
    }
}

/// How many names a file has.
pub(crate) fn link_count(meta: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.nlink()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        1
    }
}

/// The sizes of every file under `dir`, recursively.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
