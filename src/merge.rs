//! Exactly-once assembly: with the upload's lock held, check every chunk, copy them into a hidden
//! staging file beside the destination, sync it, publish it by a no-clobber link (or an atomic
//! replace), then write the "assembled" marker.
//!
//! Crash safety: an `assembling.json` record names the staging file before it is created. A
//! crash before publication leaves the record and maybe the staging file: the next assembly (or
//! the sweep) removes them and starts over from the chunks, which are still there. A crash after
//! publication but before the marker leaves the staging file linked twice (publication is a hard
//! link): the next assembly finds the published name by inode, writes the marker and does not
//! publish a second copy.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, ConflictPolicy, UploadInfo};
use crate::error::{Error, IoContext, Result};
use crate::store::local::{AssemblyRecord, Marker, now_ms, remove_if_exists, sync_dir};
use crate::store::{LocalStore, Meta, UploadDir};

/// A file assembled from its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assembled {
    /// Where the file is (the published name, which the conflict policy may have changed).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The upload it came from.
    pub upload: UploadInfo,
    /// When the upload's first chunk arrived (Unix milliseconds).
    pub started_ms: u64,
    /// When the file was assembled (Unix milliseconds).
    pub assembled_ms: u64,
}

impl Assembled {
    /// How long the upload took, first chunk to assembled file, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.assembled_ms.saturating_sub(self.started_ms)
    }
}

/// Most alternative names tried under [`ConflictPolicy::Rename`].
const MAX_RENAME_ATTEMPTS: u32 = 10_000;

/// Assembles the upload, whose ledger says it is complete. Call with the upload's lock held and
/// after checking there is no marker. Returns `None` when the chunks on disk disagree with the
/// ledger (the ledger is then rebuilt and the upload is not complete after all).
pub(crate) fn assemble(
    store: &LocalStore,
    upload: &UploadDir,
    meta: &Meta,
    config: &Config,
) -> Result<Option<Assembled>> {
    if let Some(marker) = recover(upload, config)? {
        return Ok(Some(assembled(marker, meta)));
    }
    let info = &meta.upload;
    if !chunks_match_ledger(store, upload, info)? {
        return Ok(None);
    }

    let destination = config.destination(info);
    let dest_dir = destination
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    fs::create_dir_all(&dest_dir).ctx("create destination directory", &dest_dir)?;
    let staging = staging_path(&destination, &upload.key);
    upload.write_assembly_record(&AssemblyRecord {
        staging: staging.clone(),
        destination: destination.clone(),
    })?;

    let size = match copy_chunks(upload, info, config, &staging) {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_file(&staging);
            let _ = upload.remove_assembly_record();
            return Err(e);
        }
    };
    let published = match publish(&staging, &destination, config.conflict) {
        Ok(p) => p,
        Err(e) => {
            let _ = fs::remove_file(&staging);
            let _ = fs::remove_file(link_path(&staging));
            let _ = upload.remove_assembly_record();
            return Err(e);
        }
    };
    sync_dir(&dest_dir)?;
    let marker = Marker {
        path: published,
        size,
        assembled_ms: now_ms(),
    };
    upload.write_marker(&marker)?;
    remove_if_exists(&staging)?;
    upload.remove_assembly_record()?;
    if config.delete_chunks_on_save {
        upload.delete_chunks(&store.ledgers, info.total_chunks)?;
    }
    Ok(Some(assembled(marker, meta)))
}

/// Finishes or undoes an assembly a crash interrupted (lock held). Returns the marker when the
/// file had in fact been published.
pub(crate) fn recover(upload: &UploadDir, config: &Config) -> Result<Option<Marker>> {
    let Some(record) = upload.assembly_record()? else {
        return Ok(None);
    };
    let staging = &record.staging;
    remove_if_exists(&link_path(staging))?;
    if let Ok(meta) = fs::metadata(staging)
        && link_count(&meta) > 1
        && let Some(published) = find_published(&meta, &record.destination, config.conflict)
    {
        let marker = Marker {
            path: published,
            size: meta.len(),
            assembled_ms: now_ms(),
        };
        upload.write_marker(&marker)?;
        remove_if_exists(staging)?;
        upload.remove_assembly_record()?;
        return Ok(Some(marker));
    }
    remove_if_exists(staging)?;
    upload.remove_assembly_record()?;
    Ok(None)
}

pub(crate) fn assembled(marker: Marker, meta: &Meta) -> Assembled {
    Assembled {
        path: marker.path,
        size: marker.size,
        upload: meta.upload.clone(),
        started_ms: meta.created_ms,
        assembled_ms: marker.assembled_ms,
    }
}

/// Checks every chunk against the ledger and the declared geometry; on disagreement rebuilds the
/// ledger from a listing and returns `false`.
fn chunks_match_ledger(store: &LocalStore, upload: &UploadDir, info: &UploadInfo) -> Result<bool> {
    let recorded = store.ledgers.sizes(&upload.key);
    let n = info.total_chunks;
    let mut ok = recorded.len() as u64 == n;
    for index in 0..n {
        if !ok {
            break;
        }
        let on_disk = upload.chunk_len(index)?;
        let expected = expected_len(info, index);
        ok = on_disk.is_some()
            && on_disk == recorded[index as usize]
            && expected.is_none_or(|e| Some(e) == on_disk);
    }
    if ok {
        if info.chunk_size.is_none() {
            check_uniform(&recorded)?;
        }
        return Ok(true);
    }
    let listing: Vec<(u64, u64)> = upload
        .list_chunks()?
        .into_iter()
        .filter(|&(i, len)| i < n && expected_len(info, i).is_none_or(|e| e == len))
        .collect();
    let ledger = upload.ledger_path();
    store
        .ledgers
        .rebuild(&upload.key, &ledger, n, &listing)
        .ctx("rebuild ledger", &ledger)?;
    Ok(false)
}

/// Without a declared chunk size (Plupload), the chunks themselves must show one: every chunk
/// but the last as large as the first, the last no larger. Otherwise the file cannot be put
/// together (a chunk was cut short), and the upload is refused.
fn check_uniform(sizes: &[Option<u64>]) -> Result<()> {
    let Some(Some(first)) = sizes.first().copied() else {
        return Ok(());
    };
    let last = sizes.len() - 1;
    for (index, size) in sizes.iter().enumerate() {
        let size = size.unwrap_or(0);
        let fits = if index < last {
            size == first
        } else {
            size <= first
        };
        if !fits {
            return Err(Error::bad(
                "body",
                format!(
                    "chunk {index} has {size} bytes but chunk 0 has {first}: every chunk but the \
                     last must have the same size, and the last no more"
                ),
            ));
        }
    }
    Ok(())
}

/// The size chunk `index` must have, when the geometry is declared.
pub(crate) fn expected_len(info: &UploadInfo, index: u64) -> Option<u64> {
    let (total, cs) = (info.total_size?, info.chunk_size?);
    if index + 1 < info.total_chunks {
        Some(cs)
    } else {
        total.checked_sub(cs.checked_mul(info.total_chunks - 1)?)
    }
}

fn copy_chunks(
    upload: &UploadDir,
    info: &UploadInfo,
    config: &Config,
    staging: &Path,
) -> Result<u64> {
    let out = File::create(staging).ctx("create assembly staging file", staging)?;
    match &config.preprocess {
        None => {
            // File to file: std uses copy_file_range, so the bytes stay in the kernel.
            let mut out_ref = &out;
            for index in 0..info.total_chunks {
                let path = upload.chunk_path(index);
                let mut chunk = File::open(&path).ctx("open chunk", &path)?;
                io::copy(&mut chunk, &mut out_ref).ctx("copy chunk into", staging)?;
            }
        }
        Some(hook) => {
            let mut writer = BufWriter::with_capacity(256 * 1024, &out);
            for index in 0..info.total_chunks {
                let path = upload.chunk_path(index);
                let mut chunk = File::open(&path).ctx("open chunk", &path)?;
                hook(index, &mut chunk, &mut writer).map_err(|e| {
                    if e.kind() == io::ErrorKind::InvalidData {
                        Error::Refused {
                            reason: e.to_string(),
                        }
                    } else {
                        Error::io("pre-process chunk", &path, e)
                    }
                })?;
            }
            writer.flush().ctx("write assembly staging file", staging)?;
        }
    }
    out.sync_all().ctx("sync assembled file", staging)?;
    let size = out.metadata().ctx("stat assembled file", staging)?.len();
    if config.preprocess.is_none()
        && let Some(total) = info.total_size
        && size != total
    {
        return Err(Error::io(
            "assemble",
            staging,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("assembled {size} bytes, expected {total}"),
            ),
        ));
    }
    Ok(size)
}

/// The hidden staging file beside `destination`.
fn staging_path(destination: &Path, key: &str) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let short = &key[..key.len().min(16)];
    destination.with_file_name(format!(".{name}.{short}.part"))
}

/// The temporary second link used to replace a destination atomically.
fn link_path(staging: &Path) -> PathBuf {
    let mut name = staging.as_os_str().to_owned();
    name.push(".link");
    PathBuf::from(name)
}

/// Publishes `staging` at `destination` per `policy`, leaving `staging` in place (linked twice)
/// so a crash before the marker can be recognised. Returns the published path.
fn publish(staging: &Path, destination: &Path, policy: ConflictPolicy) -> Result<PathBuf> {
    match policy {
        ConflictPolicy::Refuse => match link_no_clobber(staging, destination)? {
            true => Ok(destination.to_path_buf()),
            false => Err(Error::Conflict {
                path: destination.to_path_buf(),
            }),
        },
        ConflictPolicy::Overwrite => {
            let link = link_path(staging);
            remove_if_exists(&link)?;
            match fs::hard_link(staging, &link) {
                Ok(()) => {
                    fs::rename(&link, destination).ctx("publish assembled file as", destination)?
                }
                Err(_) => {
                    // No hard links here: copy the staging file aside so it stays in place.
                    fs::copy(staging, &link).ctx("publish assembled file as", &link)?;
                    fs::rename(&link, destination).ctx("publish assembled file as", destination)?;
                }
            }
            Ok(destination.to_path_buf())
        }
        ConflictPolicy::Rename => {
            for attempt in 0..MAX_RENAME_ATTEMPTS {
                let candidate = numbered(destination, attempt);
                if link_no_clobber(staging, &candidate)? {
                    return Ok(candidate);
                }
            }
            Err(Error::Conflict {
                path: destination.to_path_buf(),
            })
        }
    }
}

/// Links `staging` at `target` unless `target` exists. `Ok(false)` if it exists.
fn link_no_clobber(staging: &Path, target: &Path) -> Result<bool> {
    match fs::hard_link(staging, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(Error::io("publish assembled file as", target, e))
        }
        Err(_) => {
            // A filesystem without hard links: check, then copy (not atomic against a
            // concurrent writer of the same name, which such filesystems cannot offer).
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            match options.open(target) {
                Ok(mut out) => {
                    let mut from = File::open(staging).ctx("open assembled file", staging)?;
                    io::copy(&mut from, &mut out).ctx("publish assembled file as", target)?;
                    out.sync_all().ctx("sync", target)?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io("publish assembled file as", target, e)),
            }
        }
    }
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

/// Finds where an interrupted assembly published `staging` (same inode), if anywhere.
fn find_published(
    staging: &fs::Metadata,
    destination: &Path,
    policy: ConflictPolicy,
) -> Option<PathBuf> {
    let attempts = match policy {
        ConflictPolicy::Rename => MAX_RENAME_ATTEMPTS,
        _ => 1,
    };
    for attempt in 0..attempts {
        let candidate = numbered(destination, attempt);
        match fs::metadata(&candidate) {
            Ok(meta) if same_inode(&meta, staging) => return Some(candidate),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

fn link_count(meta: &fs::Metadata) -> u64 {
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

fn same_inode(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
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
    fn staging_is_hidden_beside_the_destination() {
        let s = staging_path(Path::new("/d/a.txt"), "0123456789abcdef0123");
        assert_eq!(s, Path::new("/d/.a.txt.0123456789abcdef.part"));
    }

    #[test]
    fn refuse_and_rename_never_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join(".s.part");
        fs::write(&staging, b"new").unwrap();
        let dest = dir.path().join("a.txt");
        fs::write(&dest, b"old").unwrap();
        assert!(matches!(
            publish(&staging, &dest, ConflictPolicy::Refuse),
            Err(Error::Conflict { .. })
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        let p = publish(&staging, &dest, ConflictPolicy::Rename).unwrap();
        assert_eq!(p, dir.path().join("a (1).txt"));
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        let p = publish(&staging, &dest, ConflictPolicy::Overwrite).unwrap();
        assert_eq!(p, dest);
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert!(
            staging.exists(),
            "staging stays until the marker is written"
        );
    }
}
