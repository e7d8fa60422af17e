//! Publishing a finished file at its destination, never visible half-written: a no-clobber
//! hard link of a synced file (or an atomic rename-replace for
//! [`ConflictPolicy::Overwrite`]), with the numbered names of [`ConflictPolicy::Rename`], and
//! finding where a crash-interrupted publication got to.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::ConflictPolicy;
use super::fs::{remove_if_exists, same_file};
use crate::error::{Error, IoContext, Result};
use crate::upload::Location;

/// Most alternative names tried under [`ConflictPolicy::Rename`].
pub(crate) const MAX_RENAME_ATTEMPTS: u32 = 10_000;

/// Publishes the synced file `source` at `destination` per `policy`, leaving `source` in place
/// (so a crash before the marker can be recognised by inode). Returns the published path.
///
/// `source` must be on the destination's filesystem: callers copy it there first when a link
/// fails with [`io::ErrorKind::CrossesDevices`] (see [`is_cross_device`]).
pub(crate) fn publish(
    source: &Path,
    destination: &Path,
    policy: ConflictPolicy,
) -> Result<PathBuf> {
    match policy {
        ConflictPolicy::Refuse => match link_no_clobber(source, destination)? {
            true => Ok(destination.to_path_buf()),
            false => Err(Error::Conflict {
                location: Location::Path(destination.to_path_buf()),
            }),
        },
        ConflictPolicy::Overwrite => {
            let link = link_path(source);
            remove_if_exists(&link)?;
            match fs::hard_link(source, &link) {
                Ok(()) => {}
                Err(e) if is_cross_device(&e) => {
                    return Err(Error::io("publish assembled file as", destination, e));
                }
                Err(_) => {
                    // No hard links here: copy the file aside so `source` stays in place.
                    copy_new(source, &link)?;
                }
            }
            fs::rename(&link, destination).ctx("publish assembled file as", destination)?;
            Ok(destination.to_path_buf())
        }
        ConflictPolicy::Rename => {
            for attempt in 0..MAX_RENAME_ATTEMPTS {
                let candidate = numbered(destination, attempt);
                if link_no_clobber(source, &candidate)? {
                    return Ok(candidate);
                }
            }
            Err(Error::Conflict {
                location: Location::Path(destination.to_path_buf()),
            })
        }
    }
}

/// Whether an error says source and target are on different filesystems.
pub(crate) fn is_cross_device(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::CrossesDevices
}

/// Whether an error of [`publish`] is a cross-device link (the caller copies and retries).
pub(crate) fn crossed_devices(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if is_cross_device(source))
}

/// Links `source` at `target` unless `target` exists (a symlink there counts as existing and
/// is not followed). `Ok(false)` if it exists.
fn link_no_clobber(source: &Path, target: &Path) -> Result<bool> {
    match fs::hard_link(source, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound || is_cross_device(&e) => {
            Err(Error::io("publish assembled file as", target, e))
        }
        Err(_) => {
            // A filesystem without hard links: create the name new, then copy (not atomic
            // against readers of the half-copied name, which such filesystems cannot offer).
            match copy_new(source, target) {
                Ok(()) => Ok(true),
                Err(Error::Io { source: e, .. }) if e.kind() == io::ErrorKind::AlreadyExists => {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Copies `source` to a new file `target` (created new, never through a symlink), synced.
pub(crate) fn copy_new(source: &Path, target: &Path) -> Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .ctx("create", target)?;
    let mut from = super::fs::open_read(source).ctx("open", source)?;
    io::copy(&mut from, &mut out).ctx("copy into", target)?;
    out.sync_all().ctx("sync", target)?;
    Ok(())
}

/// The temporary second name used to replace a destination atomically.
pub(crate) fn link_path(source: &Path) -> PathBuf {
    let mut name = source.as_os_str().to_owned();
    name.push(".link");
    PathBuf::from(name)
}

/// A hidden name beside `destination` for a file being prepared for it.
pub(crate) fn hidden_beside(destination: &Path, tag: &str) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    destination.with_file_name(format!(".{name}.{tag}.part"))
}

/// `name.ext`, `name (1).ext`, `name (2).ext`, ...
pub(crate) fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name.as_str(), ""),
    };
    path.with_file_name(format!("{stem} ({n}){ext}"))
}

/// Finds where an interrupted publication put the file `source` describes (same inode), if
/// anywhere.
pub(crate) fn find_published(
    source: &fs::Metadata,
    destination: &Path,
    policy: ConflictPolicy,
) -> Option<PathBuf> {
    let attempts = match policy {
        ConflictPolicy::Rename => MAX_RENAME_ATTEMPTS,
        _ => 1,
    };
    for attempt in 0..attempts {
        let candidate = numbered(destination, attempt);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if same_file(&meta, source) => return Some(candidate),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Whether `a` and `b` hold the same bytes from `a_offset` and `b_offset` for `len` bytes.
pub(crate) fn same_bytes(
    a: &mut File,
    a_offset: u64,
    b: &mut File,
    b_offset: u64,
    len: u64,
) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    a.seek(SeekFrom::Start(a_offset))?;
    b.seek(SeekFrom::Start(b_offset))?;
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut left = len;
    while left > 0 {
        let n = left.min(x.len() as u64) as usize;
        if a.read_exact(&mut x[..n]).is_err() || b.read_exact(&mut y[..n]).is_err() {
            return Ok(false);
        }
        if x[..n] != y[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names() {
        let p = Path::new("/d/report.pdf");
        assert_eq!(numbered(p, 0), Path::new("/d/report.pdf"));
        assert_eq!(numbered(p, 1), Path::new("/d/report (1).pdf"));
        assert_eq!(
            numbered(Path::new("/d/README"), 2),
            Path::new("/d/README (2)")
        );
        assert_eq!(numbered(Path::new("/d/.env"), 1), Path::new("/d/.env (1)"));
    }

    #[test]
    fn refuse_and_rename_never_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join(".s.part");
        fs::write(&source, b"new").unwrap();
        let dest = dir.path().join("a.txt");
        fs::write(&dest, b"old").unwrap();
        assert!(matches!(
            publish(&source, &dest, ConflictPolicy::Refuse),
            Err(Error::Conflict { .. })
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        let p = publish(&source, &dest, ConflictPolicy::Rename).unwrap();
        assert_eq!(p, dir.path().join("a (1).txt"));
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        let p = publish(&source, &dest, ConflictPolicy::Overwrite).unwrap();
        assert_eq!(p, dest);
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert!(
            source.exists(),
            "the source stays until the marker is written"
        );
    }

    #[test]
    fn refuse_never_follows_a_symlink_at_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src");
        fs::write(&source, b"new").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, b"precious").unwrap();
        let dest = dir.path().join("dest");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&elsewhere, &dest).unwrap();
        #[cfg(unix)]
        {
            assert!(matches!(
                publish(&source, &dest, ConflictPolicy::Refuse),
                Err(Error::Conflict { .. })
            ));
            assert_eq!(fs::read(&elsewhere).unwrap(), b"precious");
            let renamed = publish(&source, &dest, ConflictPolicy::Rename).unwrap();
            assert_eq!(renamed, dir.path().join("dest (1)"));
            publish(&source, &dest, ConflictPolicy::Overwrite).unwrap();
            assert_eq!(
                fs::read(&elsewhere).unwrap(),
                b"precious",
                "the symlink is replaced"
            );
            assert_eq!(fs::read(&dest).unwrap(), b"new");
        }
    }
}
