//! The local-filesystem store: one directory per upload under the temp dir.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tempfile::{NamedTempFile, TempPath};

use super::ledger::{Ledgers, Tally};
use crate::config::UploadInfo;
use crate::error::{Error, IoContext, Result};

/// Name of the folder (inside the temp dir) where adapters stage bodies that arrive before the
/// parameters that say which upload they belong to.
pub(crate) const INCOMING_DIR: &str = ".incoming";

/// The filesystem store rooted at the temp dir.
#[derive(Debug)]
pub(crate) struct LocalStore {
    root: PathBuf,
    pub(crate) ledgers: Ledgers,
}

impl LocalStore {
    pub(crate) fn new(root: PathBuf) -> LocalStore {
        LocalStore {
            root,
            ledgers: Ledgers::default(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the upload with storage key `key` (validated by the caller).
    pub(crate) fn upload(&self, key: &str) -> UploadDir {
        UploadDir {
            key: key.to_owned(),
            path: self.root.join(key),
        }
    }

    /// A new, locked staging file in the incoming folder, for adapters.
    pub(crate) fn incoming_file(&self) -> Result<NamedTempFile> {
        let dir = self.root.join(INCOMING_DIR);
        fs::create_dir_all(&dir).ctx("create incoming folder", &dir)?;
        staging_file(&dir)
    }
}

/// What is stored about an upload when its first chunk arrives; never changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) upload: UploadInfo,
    pub(crate) created_ms: u64,
}

/// What is stored once an upload is assembled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) assembled_ms: u64,
}

/// The record of an assembly in progress (see `merge`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssemblyRecord {
    /// The hidden file the chunks are copied into, beside the destination.
    pub(crate) staging: PathBuf,
    /// The destination asked for (the published name may differ under `ConflictPolicy::Rename`).
    pub(crate) destination: PathBuf,
}

/// One upload's directory.
#[derive(Debug, Clone)]
pub(crate) struct UploadDir {
    pub(crate) key: String,
    pub(crate) path: PathBuf,
}

impl UploadDir {
    pub(crate) fn chunk_path(&self, index: u64) -> PathBuf {
        self.path.join(format!("chunk.{index}"))
    }

    pub(crate) fn staging_dir(&self) -> PathBuf {
        self.path.join("staging")
    }

    pub(crate) fn ledger_path(&self) -> PathBuf {
        self.path.join("ledger")
    }

    fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }

    fn marker_path(&self) -> PathBuf {
        self.path.join("assembled.json")
    }

    pub(crate) fn assembly_record_path(&self) -> PathBuf {
        self.path.join("assembling.json")
    }

    /// Takes the upload's lock, creating the directory if needed. Waits up to `timeout`.
    pub(crate) fn lock(&self, timeout: Duration) -> Result<UploadLock> {
        self.lock_inner(timeout, true)
            .map(|l| l.expect("created on demand"))
    }

    /// Takes the upload's lock if the directory exists; `None` if it does not.
    pub(crate) fn lock_existing(&self, timeout: Duration) -> Result<Option<UploadLock>> {
        self.lock_inner(timeout, false)
    }

    /// Takes the upload's lock only if nobody holds it (the sweep never waits).
    pub(crate) fn try_lock(&self) -> Result<Option<UploadLock>> {
        self.lock_inner(Duration::ZERO, false).or_else(|e| match e {
            Error::Busy { .. } => Ok(None),
            e => Err(e),
        })
    }

    fn lock_inner(&self, timeout: Duration, create: bool) -> Result<Option<UploadLock>> {
        let path = self.path.join("lock");
        let deadline = Instant::now() + timeout;
        loop {
            if create {
                fs::create_dir_all(&self.path).ctx("create upload directory", &self.path)?;
            }
            let file = match OpenOptions::new()
                .create(create)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue; // swept between create_dir_all and open
                    }
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("open lock file", &path, e)),
            };
            lock_until(&file, &path, deadline)?;
            // The sweep may have removed the directory while we waited: only a lock file that
            // is still in place locks anything.
            match fs::metadata(&path) {
                Ok(now) if same_file(&now, &file.metadata().ctx("stat lock file", &path)?) => {
                    return Ok(Some(UploadLock { _file: file }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("stat lock file", &path, e)),
            }
        }
    }

    /// The upload's metadata, if it has been started.
    pub(crate) fn meta(&self) -> Result<Option<Meta>> {
        read_json(&self.meta_path())
    }

    /// Stores the metadata (with the lock held, once). Not synced: losing it to a power cut
    /// only makes the widget start the upload over.
    pub(crate) fn write_meta(&self, meta: &Meta) -> Result<()> {
        write_json(&self.meta_path(), meta, false)
    }

    /// The assembled marker, if the upload has been assembled.
    pub(crate) fn marker(&self) -> Result<Option<Marker>> {
        read_json(&self.marker_path())
    }

    pub(crate) fn write_marker(&self, marker: &Marker) -> Result<()> {
        write_json(&self.marker_path(), marker, true)?;
        sync_dir(&self.path)
    }

    pub(crate) fn assembly_record(&self) -> Result<Option<AssemblyRecord>> {
        read_json(&self.assembly_record_path())
    }

    pub(crate) fn write_assembly_record(&self, record: &AssemblyRecord) -> Result<()> {
        write_json(&self.assembly_record_path(), record, true)
    }

    pub(crate) fn remove_assembly_record(&self) -> Result<()> {
        remove_if_exists(&self.assembly_record_path())
    }

    /// Size of chunk `index` on disk, if present.
    pub(crate) fn chunk_len(&self, index: u64) -> Result<Option<u64>> {
        let path = self.chunk_path(index);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat chunk", &path, e)),
        }
    }

    /// Every chunk on disk as (index, size), from a directory listing.
    pub(crate) fn list_chunks(&self) -> Result<Vec<(u64, u64)>> {
        let mut chunks = Vec::new();
        for entry in fs::read_dir(&self.path).ctx("list upload directory", &self.path)? {
            let entry = entry.ctx("list upload directory", &self.path)?;
            let name = entry.file_name();
            let Some(index) = name
                .to_str()
                .and_then(|n| n.strip_prefix("chunk."))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().ctx("stat chunk", &entry.path())?.len();
            chunks.push((index, len));
        }
        chunks.sort_unstable();
        Ok(chunks)
    }

    /// The ledger's tally (with the lock held).
    pub(crate) fn tally(&self, ledgers: &Ledgers, total_chunks: u64) -> Result<Tally> {
        let path = self.ledger_path();
        ledgers
            .tally(&self.key, &path, total_chunks)
            .ctx("read ledger", &path)
    }

    /// Publishes a staged chunk as chunk `index`: ledger record first, then the rename (with the
    /// lock held). Returns the new tally.
    pub(crate) fn publish_chunk(
        &self,
        ledgers: &Ledgers,
        total_chunks: u64,
        index: u64,
        staged: StagedChunk,
    ) -> Result<Tally> {
        let ledger = self.ledger_path();
        let tally = ledgers
            .record(&self.key, &ledger, total_chunks, index, staged.len)
            .ctx("append to ledger", &ledger)?;
        let target = self.chunk_path(index);
        let StagedChunk { path, guard, .. } = staged;
        path.persist(&target)
            .map_err(|e| Error::io("publish chunk", &target, e.error))?;
        drop(guard);
        Ok(tally)
    }

    /// Discards everything stored for the upload except its lock and the staging folder (with
    /// the lock held): chunks, ledger, metadata, marker.
    pub(crate) fn reset(&self, ledgers: &Ledgers) -> Result<()> {
        for entry in fs::read_dir(&self.path).ctx("list upload directory", &self.path)? {
            let entry = entry.ctx("list upload directory", &self.path)?;
            let name = entry.file_name();
            if name == "lock" || name == "staging" {
                continue;
            }
            remove_if_exists(&entry.path())?;
        }
        ledgers.forget(&self.key);
        Ok(())
    }

    /// Deletes the chunk files and the ledger (after assembly).
    pub(crate) fn delete_chunks(&self, ledgers: &Ledgers, total_chunks: u64) -> Result<()> {
        for index in 0..total_chunks {
            remove_if_exists(&self.chunk_path(index))?;
        }
        remove_if_exists(&self.ledger_path())?;
        ledgers.forget(&self.key);
        Ok(())
    }

    /// A new, locked staging file for a chunk of this upload; the chunk's bytes are written to
    /// it, then [`StagedChunk::new`] makes it ready to publish.
    pub(crate) fn staging_file(&self) -> Result<NamedTempFile> {
        let dir = self.staging_dir();
        fs::create_dir_all(&dir).ctx("create staging folder", &dir)?;
        staging_file(&dir)
    }

    /// Moves a body already on disk into this upload's staging folder (a rename, or a copy when
    /// it lives on another filesystem).
    pub(crate) fn stage_file(&self, body: TempPath, sync: bool) -> Result<StagedChunk> {
        let dir = self.staging_dir();
        fs::create_dir_all(&dir).ctx("create staging folder", &dir)?;
        // A unique name in the staging folder; the body then takes the name's place.
        let (_placeholder, path) = staging_file(&dir)?.into_parts();
        match fs::rename(&body, &path) {
            Ok(()) => {
                // The rename consumed the body: don't let its TempPath delete anything.
                let _ = body.keep();
            }
            Err(_) => {
                let mut from = File::open(&body).ctx("open chunk body", &body)?;
                let mut to = File::create(&path).ctx("create chunk staging file", &path)?;
                io::copy(&mut from, &mut to).ctx("copy chunk body to", &path)?;
            }
        }
        let guard = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ctx("open chunk staging file", &path)?;
        let _ = guard.try_lock();
        let len = guard
            .metadata()
            .ctx("stat chunk staging file", &path)?
            .len();
        if sync {
            guard.sync_data().ctx("sync chunk staging file", &path)?;
        }
        Ok(StagedChunk { path, guard, len })
    }
}

/// A chunk body written to a staging file, not yet published. The open, locked handle tells
/// the sweep the file is alive until the chunk is published or dropped.
#[derive(Debug)]
pub(crate) struct StagedChunk {
    pub(crate) path: TempPath,
    guard: File,
    pub(crate) len: u64,
}

impl StagedChunk {
    /// A staging file holding `len` bytes, synced first when `sync`.
    pub(crate) fn new(file: NamedTempFile, len: u64, sync: bool) -> Result<StagedChunk> {
        if sync {
            file.as_file()
                .sync_data()
                .ctx("sync chunk staging file", file.path())?;
        }
        let (guard, path) = file.into_parts();
        Ok(StagedChunk { path, guard, len })
    }
}

/// The held lock of one upload; released on drop.
#[derive(Debug)]
pub(crate) struct UploadLock {
    _file: File,
}

/// A new staging file in `dir`, locked so the sweep can tell a live one from a crash's leftover.
pub(crate) fn staging_file(dir: &Path) -> Result<NamedTempFile> {
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

/// Waits for `file`'s exclusive lock until `deadline`, polling with a short backoff so that a
/// stuck holder turns into [`Error::Busy`] instead of a hung request.
fn lock_until(file: &File, path: &Path, deadline: Instant) -> Result<()> {
    let mut pause = Duration::from_micros(20);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Busy { retry_after: 2 });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
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

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::io("parse", path, io::Error::new(io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Writes `value` as JSON to `path` atomically (temporary file, then rename), synced to stable
/// storage first when `durable`.
fn write_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<()> {
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

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        (dir, store)
    }

    #[test]
    fn a_chunk_is_absent_until_published() {
        let (_dir, store) = store();
        let up = store.upload("k");
        let _lock = up.lock(Duration::from_secs(1)).unwrap();
        let mut file = up.staging_file().unwrap();
        file.write_all(b"0123456789").unwrap();
        let staged = StagedChunk::new(file, 10, false).unwrap();
        assert_eq!(up.chunk_len(0).unwrap(), None, "staged is not present");
        let tally = up.publish_chunk(&store.ledgers, 1, 0, staged).unwrap();
        assert_eq!(
            tally,
            Tally {
                present: 1,
                bytes: 10
            }
        );
        assert_eq!(up.chunk_len(0).unwrap(), Some(10));
        assert_eq!(fs::read_dir(up.staging_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_dropped_staging_file_leaves_nothing() {
        let (_dir, store) = store();
        let up = store.upload("k");
        let mut file = up.staging_file().unwrap();
        file.write_all(&[7u8; 1000]).unwrap();
        drop(file);
        assert_eq!(fs::read_dir(up.staging_dir()).unwrap().count(), 0);
    }

    #[test]
    fn lock_excludes_and_times_out_as_busy() {
        let (_dir, store) = store();
        let up = store.upload("k");
        let held = up.lock(Duration::from_secs(1)).unwrap();
        assert!(matches!(
            up.lock(Duration::from_millis(20)),
            Err(Error::Busy { .. })
        ));
        assert!(up.try_lock().unwrap().is_none());
        drop(held);
        assert!(up.try_lock().unwrap().is_some());
    }

    #[test]
    fn lock_existing_does_not_create() {
        let (_dir, store) = store();
        let up = store.upload("nothing");
        assert!(up.lock_existing(Duration::from_secs(1)).unwrap().is_none());
        assert!(!up.path.is_dir());
    }
}
