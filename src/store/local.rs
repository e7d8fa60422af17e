//! The local store: one directory per upload, the pieces written in place.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use super::fs::{
    dir_size, ensure_dir, link_count, locked_temp_file, no_follow, open_read, open_rw, read_json,
    remove_if_exists, same_file, sync_dir, write_json,
};
use super::ledger::Ledgers;
use super::publish::{
    copy_new, crossed_devices, find_published, hidden_beside, link_path, publish, same_bytes,
};
use super::{
    Activity, Assembly, Capabilities, ConflictPolicy, Marker, Piece, PieceWriter, Recorded, Store,
    Stored, Tally, UploadLock,
};
use crate::clock::now_ms;
use crate::error::{Error, IoContext, Result};
use crate::upload::{Location, UploadInfo};

/// The layout version kept in `upload.json`. Uploads of another layout are not read (they
/// expire like idle uploads).
const LAYOUT: u32 = 2;
/// The folder for bodies adapters stage before knowing their upload.
const INCOMING_DIR: &str = ".incoming";
/// Another request asks the holder of the upload's lock to give it up (see
/// [`Store::lock_taking_over`]).
const RELEASE: &str = "release";
/// Uploads being removed are renamed to this prefix first.
const TRASH_PREFIX: &str = ".trash-";
/// Claim files per upload (see `Inner::try_claim`).
const CLAIM_SLOTS: u64 = 64;
/// A staging file that nobody holds locked and that has not changed for this long is a crashed
/// request's leftover (live ones are locked by their writer from creation to commit).
const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// The local-filesystem store, the default: one directory per upload under the temp dir, the
/// pieces written in place.
///
/// ```text
/// <temp dir>/
///   .incoming/              bodies an adapter staged before knowing their upload (locked while held)
///   <key>/                  one upload, named by its storage key (a hash, never a client string)
///     lock                  the per-upload lock (std File::lock, i.e. flock: holds across processes)
///     upload.json           what the first request declared, with the layout version and a nonce
///     data                  the file: every piece's bytes written at its offset (sparse until full)
///     ledger                append-only record of the pieces written (O(1) completion checks)
///     claims/<slot>         the pieces being written in place, each slot locked by its writer
///     staging/.stage-*      a second copy of a piece being received (a duplicate, a retry, a piece
///                           of an assembled upload): compared with the stored bytes at commit
///     assembling.json       an assembly in progress: what it publishes, where
///     assembled.json        the marker: this upload was assembled, to this path
///     release               another request asks the lock's holder to give it up (tus)
/// ```
///
/// A piece's bytes go straight to their offset in `data`, by the one request that holds the
/// piece's claim (taken under the upload's lock, so two requests never write the same range).
/// Only after all its bytes are written is the piece recorded in the ledger, so a piece counts
/// only once complete; a crash in between leaves bytes that do not count. Every other copy of a
/// piece (a duplicate in flight beside the first, a retry after it was recorded, a chunk of an
/// upload already assembled) is written aside and compared at commit: the same bytes are a
/// harmless duplicate, other bytes are refused rather than mixed in.
///
/// Assembly publishes `data` itself: fsync, then a no-clobber hard link at the destination (or
/// an atomic rename-replace). No byte is copied, whatever the number of pieces, unless the
/// destination is on another filesystem (then one kernel copy to a hidden file beside it) or a
/// pre-process hook is set (one streaming pass through the hook).
///
/// Every file is created new or opened without following symlinks, and the upload's folders
/// must be real directories: a symlink planted in the temp dir makes a request fail instead of
/// writing elsewhere.
///
/// Keep the temp dir on the destination's filesystem: assembled files are then published by a
/// hard link of the stored data, without a copy.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    destination: PathBuf,
    ledgers: Ledgers,
}

/// `upload.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Description {
    layout: u32,
    upload: UploadInfo,
    created_ms: u64,
    nonce: u64,
}

/// `assembling.json`: an assembly in progress.
#[derive(Debug, Serialize, Deserialize)]
struct AssemblyRecord {
    /// The file being published: the data file itself, or a hidden file beside the destination.
    source: PathBuf,
    /// Whether `source` is the upload's data file (kept on undo) rather than a copy.
    source_is_data: bool,
    /// The destination asked for (the published name may differ under `ConflictPolicy::Rename`).
    destination: PathBuf,
    conflict: Conflict,
}

/// [`ConflictPolicy`] as recorded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Conflict {
    Refuse,
    Overwrite,
    Rename,
}

impl From<ConflictPolicy> for Conflict {
    fn from(p: ConflictPolicy) -> Conflict {
        match p {
            ConflictPolicy::Refuse => Conflict::Refuse,
            ConflictPolicy::Overwrite => Conflict::Overwrite,
            ConflictPolicy::Rename => Conflict::Rename,
        }
    }
}

impl From<Conflict> for ConflictPolicy {
    fn from(c: Conflict) -> ConflictPolicy {
        match c {
            Conflict::Refuse => ConflictPolicy::Refuse,
            Conflict::Overwrite => ConflictPolicy::Overwrite,
            Conflict::Rename => ConflictPolicy::Rename,
        }
    }
}

impl LocalStore {
    /// A store keeping uploads under `temp_dir` (created if needed) and publishing assembled
    /// files under `destination_dir` (relative destinations are resolved against it).
    ///
    /// # Errors
    /// [`Error::Io`] when the temp dir cannot be created.
    pub fn new(
        temp_dir: impl Into<PathBuf>,
        destination_dir: impl Into<PathBuf>,
    ) -> Result<LocalStore> {
        let root = temp_dir.into();
        fs::create_dir_all(&root).ctx("create temp dir", &root)?;
        Ok(LocalStore {
            inner: Arc::new(Inner {
                root,
                destination: destination_dir.into(),
                ledgers: Ledgers::default(),
            }),
        })
    }

    /// The temp dir.
    pub fn temp_dir(&self) -> &Path {
        &self.inner.root
    }

    /// The directory relative destinations are resolved against.
    pub fn destination_dir(&self) -> &Path {
        &self.inner.destination
    }

    /// The directory of upload `key`.
    pub fn upload_dir(&self, key: &str) -> PathBuf {
        self.inner.root.join(key)
    }
}

impl Inner {
    fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn ledger(&self, key: &str) -> PathBuf {
        self.dir(key).join("ledger")
    }

    fn data(&self, key: &str) -> PathBuf {
        self.dir(key).join("data")
    }

    fn tally(&self, key: &str) -> Result<Tally> {
        let path = self.ledger(key);
        self.ledgers
            .tally(key, &path)
            .map_err(|e| ledger_error(key, &path, e))
    }

    fn record(&self, key: &str, index: u64, len: u64) -> Result<Tally> {
        let path = self.ledger(key);
        self.ledgers
            .record(key, &path, index, len)
            .map_err(|e| ledger_error(key, &path, e))
    }

    fn recorded(&self, key: &str, index: u64) -> Result<Option<u64>> {
        self.tally(key)?;
        Ok(self.ledgers.size_of(key, index))
    }

    /// The claim of piece `index`, if nobody holds it (call with the upload's lock held).
    ///
    /// Claims are a fixed set of [`CLAIM_SLOTS`] lock files per upload, piece `i` in slot
    /// `i % CLAIM_SLOTS`, created once and reused: no file is created or removed per piece.
    /// Two pieces in flight that share a slot are told apart by the ledger: the second one is
    /// written aside and moved into place when the first is done (rare: widgets keep a few
    /// consecutive pieces in flight).
    fn try_claim(&self, key: &str, index: u64) -> Result<Option<Claim>> {
        let claims = self.dir(key).join("claims");
        let path = claims.join((index % CLAIM_SLOTS).to_string());
        let open =
            || no_follow(OpenOptions::new().create(true).truncate(false).write(true)).open(&path);
        let file = match open() {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ensure_dir(&claims)?;
                open().ctx("open claim", &path)?
            }
            Err(e) => return Err(Error::io("open claim", &path, e)),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Claim { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io("lock claim", &path, e)),
        }
    }

    fn resolve(&self, destination: &Path) -> PathBuf {
        if destination.is_absolute() {
            destination.to_path_buf()
        } else {
            self.destination.join(destination)
        }
    }

    /// Finishes or undoes an assembly a crash interrupted (lock held). Returns the marker when
    /// the file had in fact been published.
    fn recover(&self, key: &str) -> Result<Option<Marker>> {
        let dir = self.dir(key);
        let record_path = dir.join("assembling.json");
        let Some(record) = read_json::<AssemblyRecord>(&record_path, "assembly record", key)?
        else {
            return Ok(None);
        };
        let source = &record.source;
        remove_if_exists(&link_path(source))?;
        let mut found = None;
        if let Ok(meta) = fs::symlink_metadata(source)
            && meta.is_file()
            && link_count(&meta) > 1
            && let Some(published) =
                find_published(&meta, &record.destination, record.conflict.into())
        {
            found = Some(Marker {
                location: Location::Path(published),
                size: meta.len(),
                assembled_ms: now_ms(),
            });
        }
        if let Some(marker) = &found {
            write_json(&dir.join("assembled.json"), marker, true)?;
            sync_dir(&dir)?;
        }
        if !record.source_is_data {
            remove_if_exists(source)?;
        }
        remove_if_exists(&record_path)?;
        Ok(found)
    }
}

fn ledger_error(key: &str, path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        Error::Corrupt {
            what: "ledger",
            key: key.to_owned(),
            reason: e.to_string(),
        }
    } else {
        Error::io("read ledger", path, e)
    }
}

/// A held claim on one piece: the piece's bytes may be written in place. Given up when
/// dropped (the slot's file stays, for the next piece).
#[derive(Debug)]
struct Claim {
    _file: File,
}

impl Claim {
    /// Gives the claim up (after the piece is recorded or abandoned).
    fn release(self) -> Result<()> {
        Ok(())
    }
}

/// The held lock of one upload.
#[derive(Debug)]
struct LockFile {
    _file: File,
}

impl Store for LocalStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shared_between_processes: true,
            shared_between_hosts: false,
            zero_copy_assembly: true,
            declare_size: true,
            concatenate: true,
            lock_takeover: true,
        }
    }

    fn lock(&self, key: &str, timeout: Duration) -> Result<UploadLock> {
        lock(&self.inner, key, timeout, true).map(|l| l.expect("created on demand"))
    }

    fn try_lock(&self, key: &str) -> Result<Option<UploadLock>> {
        lock(&self.inner, key, Duration::ZERO, false).or_else(|e| match e {
            Error::Busy { .. } => Ok(None),
            e => Err(e),
        })
    }

    fn load(&self, key: &str) -> Result<Option<Stored>> {
        let dir = self.inner.dir(key);
        let Some(description) =
            read_json::<Description>(&dir.join("upload.json"), "description", key)?
        else {
            return Ok(None);
        };
        if description.layout != LAYOUT {
            return Ok(None);
        }
        // The data file first, then the marker: assembly writes the marker before it removes
        // the data file, so a reader without the lock never takes an upload that is being
        // assembled for one whose data is gone.
        let data_present = fs::symlink_metadata(dir.join("data")).is_ok();
        let assembled = read_json::<Marker>(&dir.join("assembled.json"), "marker", key)?;
        if assembled.is_none() && !data_present {
            // The data file is gone (removed behind the store's back, or an interrupted
            // start): what the ledger says cannot be trusted; the upload starts over.
            return Ok(None);
        }
        Ok(Some(Stored {
            upload: description.upload,
            created_ms: description.created_ms,
            nonce: description.nonce,
            assembled,
        }))
    }

    fn start(&self, lock: &UploadLock, upload: &UploadInfo) -> Result<Stored> {
        let key = lock.key();
        if let Some(stored) = self.load(key)? {
            return Ok(stored);
        }
        let inner = &self.inner;
        let dir = inner.dir(key);
        // Leftovers of an earlier layout or an interrupted start.
        for name in ["data", "ledger", "assembled.json", "assembling.json"] {
            remove_if_exists(&dir.join(name))?;
        }
        inner.ledgers.forget(key);
        let data = inner.data(key);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&data)
            .ctx("create data file", &data)?;
        if let Some(size) = upload.total_size {
            // Sparse: the blocks are allocated as the pieces arrive.
            file.set_len(size).ctx("size data file", &data)?;
        }
        let description = Description {
            layout: LAYOUT,
            upload: upload.clone(),
            created_ms: now_ms(),
            nonce: nonce(),
        };
        write_json(&dir.join("upload.json"), &description, false)?;
        Ok(Stored {
            upload: description.upload,
            created_ms: description.created_ms,
            nonce: description.nonce,
            assembled: None,
        })
    }

    fn tally(&self, key: &str) -> Result<Tally> {
        self.inner.tally(key)
    }

    fn recorded(&self, key: &str, index: u64) -> Result<Option<u64>> {
        self.inner.recorded(key, index)
    }

    fn recorded_sizes(&self, key: &str, count: u64) -> Result<Vec<Option<u64>>> {
        self.inner.tally(key)?;
        Ok(self.inner.ledgers.sizes(key, count))
    }

    fn open_piece(
        &self,
        lock: &UploadLock,
        upload: &Stored,
        piece: Piece,
    ) -> Result<Box<dyn PieceWriter>> {
        let inner = &self.inner;
        let key = lock.key();
        let aside = || -> Result<Box<dyn PieceWriter>> {
            let staging = inner.dir(key).join("staging");
            ensure_dir(&staging)?;
            Ok(Box::new(AsideWriter {
                store: Arc::clone(inner),
                key: key.to_owned(),
                opened: upload.clone(),
                piece,
                file: locked_temp_file(&staging)?,
                len: 0,
            }))
        };
        if upload.assembled.is_some() || inner.recorded(key, piece.index)?.is_some() {
            return aside();
        }
        let Some(claim) = inner.try_claim(key, piece.index)? else {
            return aside(); // another request is writing this piece in place
        };
        let path = inner.data(key);
        let file = match open_rw(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                claim.release()?;
                return Err(Error::Restarted {
                    identifier: upload.upload.identifier.clone(),
                });
            }
            Err(e) => return Err(Error::io("open data file", &path, e)),
        };
        Ok(Box::new(InPlaceWriter {
            store: Arc::clone(inner),
            key: key.to_owned(),
            nonce: upload.nonce,
            piece,
            file,
            path,
            claim: Some(claim),
            len: 0,
        }))
    }

    fn assemble(&self, lock: &UploadLock, upload: &Stored, plan: &Assembly<'_>) -> Result<Marker> {
        let inner = &self.inner;
        let key = lock.key();
        if let Some(marker) = inner.recover(key)? {
            return Ok(marker);
        }
        let dir = inner.dir(key);
        let data_path = inner.data(key);
        let data = open_rw(&data_path).ctx("open data file", &data_path)?;
        let len = data.metadata().ctx("stat data file", &data_path)?.len();
        let expected = upload.upload.total_size.unwrap_or(plan.tally.bytes);
        if upload.upload.total_size.is_none() && len > expected {
            // Bytes of a piece that was never recorded (refused as too long, say).
            data.set_len(expected).ctx("trim data file", &data_path)?;
        } else if len != expected || plan.tally.bytes != expected {
            return Err(Error::SizeMismatch {
                key: key.to_owned(),
                expected,
                actual: plan.tally.bytes.min(len),
            });
        }

        let destination = inner.resolve(plan.destination);
        let dest_dir = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        fs::create_dir_all(&dest_dir).ctx("create destination directory", &dest_dir)?;
        let record_path = dir.join("assembling.json");
        let tag = &key[..key.len().min(16)];

        let (published, size) = match plan.preprocess {
            None => {
                data.sync_all().ctx("sync data file", &data_path)?;
                drop(data);
                write_json(
                    &record_path,
                    &AssemblyRecord {
                        source: data_path.clone(),
                        source_is_data: true,
                        destination: destination.clone(),
                        conflict: plan.conflict.into(),
                    },
                    true,
                )?;
                match publish(&data_path, &destination, plan.conflict) {
                    Ok(published) => (published, expected),
                    Err(e) if crossed_devices(&e) => {
                        // The temp dir is on another filesystem: one kernel copy beside the
                        // destination, then publish that.
                        let copy = hidden_beside(&destination, tag);
                        write_json(
                            &record_path,
                            &AssemblyRecord {
                                source: copy.clone(),
                                source_is_data: false,
                                destination: destination.clone(),
                                conflict: plan.conflict.into(),
                            },
                            true,
                        )?;
                        let published = copy_new(&data_path, &copy)
                            .and_then(|()| publish(&copy, &destination, plan.conflict));
                        let published = undo_on_error(published, &copy, &record_path)?;
                        remove_if_exists(&copy)?;
                        (published, expected)
                    }
                    Err(e) => {
                        let _ = remove_if_exists(&record_path);
                        return Err(e);
                    }
                }
            }
            Some(hook) => {
                let staging = hidden_beside(&destination, tag);
                write_json(
                    &record_path,
                    &AssemblyRecord {
                        source: staging.clone(),
                        source_is_data: false,
                        destination: destination.clone(),
                        conflict: plan.conflict.into(),
                    },
                    true,
                )?;
                let sizes = inner.ledgers.sizes(key, plan.tally.present);
                let written = run_hook(hook, data, &data_path, &sizes, &staging).and_then(|size| {
                    publish(&staging, &destination, plan.conflict).map(|p| (p, size))
                });
                let (published, size) = undo_on_error(written, &staging, &record_path)?;
                remove_if_exists(&staging)?;
                (published, size)
            }
        };
        sync_dir(&dest_dir)?;
        let marker = Marker {
            location: Location::Path(published),
            size,
            assembled_ms: now_ms(),
        };
        write_json(&dir.join("assembled.json"), &marker, true)?;
        sync_dir(&dir)?;
        remove_if_exists(&record_path)?;
        if !plan.keep_pieces {
            // The ledger stays (16 bytes a piece): it tells where a late duplicate of a piece
            // sits in the published file, so that it can be recognised.
            remove_if_exists(&data_path)?;
        }
        Ok(marker)
    }

    fn reset(&self, lock: &UploadLock) -> Result<()> {
        let inner = &self.inner;
        let key = lock.key();
        inner.recover(key)?;
        let dir = inner.dir(key);
        for name in ["upload.json", "assembled.json", "ledger", "data"] {
            remove_if_exists(&dir.join(name))?;
        }
        inner.ledgers.forget(key);
        Ok(())
    }

    fn remove(&self, lock: &UploadLock) -> Result<u64> {
        let inner = &self.inner;
        let key = lock.key();
        let dir = inner.dir(key);
        let trash = inner
            .root
            .join(format!("{TRASH_PREFIX}{key}-{:016x}", nonce()));
        // Renamed first, so that a request arriving meanwhile starts a new upload instead of
        // writing into one half removed.
        fs::rename(&dir, &trash).ctx("remove upload", &dir)?;
        inner.ledgers.forget(key);
        let bytes = dir_size(&trash);
        fs::remove_dir_all(&trash).ctx("remove upload", &trash)?;
        Ok(bytes)
    }

    fn keys(&self) -> Result<Vec<String>> {
        let root = &self.inner.root;
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list temp dir", root, e)),
        };
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with('.') && entry.file_type().is_ok_and(|t| t.is_dir()) {
                keys.push(name.to_owned());
            }
        }
        Ok(keys)
    }

    fn inspect(&self, lock: &UploadLock) -> Result<Activity> {
        let inner = &self.inner;
        let key = lock.key();
        let dir = inner.dir(key);
        let mut activity = Activity {
            last_activity: SystemTime::UNIX_EPOCH,
            live: false,
            orphans_removed: 0,
            bytes_freed: 0,
        };
        let staged_before = fs::symlink_metadata(dir.join("assembling.json")).is_ok();
        if staged_before && inner.recover(key)?.is_none() {
            activity.orphans_removed += 1;
        }
        let now = SystemTime::now();
        let mut consider = |path: &Path| {
            if let Ok(t) = fs::symlink_metadata(path).and_then(|m| m.modified()) {
                activity.last_activity = activity.last_activity.max(t);
            }
        };
        for name in [
            "",
            "ledger",
            "data",
            "assembled.json",
            "upload.json",
            "staging",
            "claims",
        ] {
            consider(&dir.join(name));
        }
        // Claims: a locked one is a live writer; an unlocked one, a dead writer's.
        for entry in read_dir_files(&dir.join("claims")) {
            match try_lock_file(&entry) {
                Some(true) => activity.live = true,
                Some(false) => {
                    let _ = fs::remove_file(&entry);
                }
                None => {}
            }
        }
        for entry in read_dir_files(&dir.join("staging")) {
            let Ok(meta) = fs::symlink_metadata(&entry) else {
                continue;
            };
            if let Ok(t) = meta.modified() {
                activity.last_activity = activity.last_activity.max(t);
            }
            match try_lock_file(&entry) {
                Some(true) => activity.live = true,
                Some(false) => {
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .unwrap_or_default();
                    if age >= ORPHAN_GRACE && fs::remove_file(&entry).is_ok() {
                        activity.orphans_removed += 1;
                        activity.bytes_freed += meta.len();
                    }
                }
                None => {}
            }
        }
        Ok(activity)
    }

    fn declare_size(&self, lock: &UploadLock, size: u64) -> Result<Stored> {
        let inner = &self.inner;
        let key = lock.key();
        let dir = inner.dir(key);
        let path = dir.join("upload.json");
        let Some(mut description) = read_json::<Description>(&path, "description", key)? else {
            return Err(Error::Restarted {
                identifier: key.to_owned(),
            });
        };
        let data = inner.data(key);
        // The data file ends where the upload does (bytes past it are of appends that were
        // never recorded).
        open_rw(&data)
            .and_then(|file| file.set_len(size))
            .ctx("size data file", &data)?;
        description.upload.total_size = Some(size);
        write_json(&path, &description, false)?;
        self.load(key)?.ok_or_else(|| Error::Restarted {
            identifier: key.to_owned(),
        })
    }

    fn concatenate(
        &self,
        lock: &UploadLock,
        upload: &Stored,
        parts: &[(&UploadLock, &Stored)],
    ) -> Result<Tally> {
        let inner = &self.inner;
        let key = lock.key();
        let data_path = inner.data(key);
        let data = open_rw(&data_path).ctx("open data file", &data_path)?;
        let mut offset = 0u64;
        let mut tally = inner.tally(key)?;
        for (index, (part_lock, part)) in parts.iter().enumerate() {
            let part_key = part_lock.key();
            debug_assert_eq!(part_key, part.upload.key);
            let bytes = inner.tally(part_key)?.bytes;
            let source_path = inner.data(part_key);
            let source = open_read(&source_path).ctx("open data file", &source_path)?;
            let available = source.metadata().ctx("stat data file", &source_path)?.len();
            if available < bytes {
                return Err(Error::SizeMismatch {
                    key: part_key.to_owned(),
                    expected: bytes,
                    actual: available,
                });
            }
            let mut target = &data;
            target
                .seek(SeekFrom::Start(offset))
                .ctx("seek data file", &data_path)?;
            // A kernel copy (copy_file_range), which XFS and btrfs make a reflink.
            let copied =
                io::copy(&mut source.take(bytes), &mut target).ctx("copy part into", &data_path)?;
            if copied != bytes {
                return Err(Error::SizeMismatch {
                    key: part_key.to_owned(),
                    expected: bytes,
                    actual: copied,
                });
            }
            tally = inner.record(key, index as u64, bytes)?;
            offset += bytes;
        }
        if upload.upload.total_size.is_some_and(|size| size != offset) {
            return Err(Error::SizeMismatch {
                key: key.to_owned(),
                expected: upload.upload.total_size.unwrap_or(0),
                actual: offset,
            });
        }
        Ok(tally)
    }

    fn lock_taking_over(&self, key: &str, timeout: Duration) -> Result<UploadLock> {
        let release = self.inner.dir(key).join(RELEASE);
        let lock = match lock(&self.inner, key, Duration::ZERO, true) {
            Ok(lock) => lock.expect("created on demand"),
            Err(Error::Busy { .. }) => {
                // Ask the holder (its poll sees the file), then wait for it.
                no_follow(OpenOptions::new().create(true).truncate(false).write(true))
                    .open(&release)
                    .ctx("ask for the lock of", &release)?;
                lock(&self.inner, key, timeout, true)?.expect("created on demand")
            }
            Err(e) => return Err(e),
        };
        // Ours now: a request for it made before we held it is not for us.
        remove_if_exists(&release)?;
        Ok(lock)
    }

    fn release_asked(&self, key: &str) -> Result<bool> {
        let release = self.inner.dir(key).join(RELEASE);
        match fs::symlink_metadata(&release) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("look for a request for the lock of", &release, e)),
        }
    }

    fn incoming(&self) -> Result<NamedTempFile> {
        let dir = self.inner.root.join(INCOMING_DIR);
        ensure_dir(&dir)?;
        locked_temp_file(&dir)
    }

    fn clean_incoming(&self, grace: Duration) -> Result<(u64, u64)> {
        let root = &self.inner.root;
        let now = SystemTime::now();
        let (mut files, mut bytes) = (0, 0);
        for entry in read_dir_files(&root.join(INCOMING_DIR)) {
            let Ok(meta) = fs::symlink_metadata(&entry) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if age >= grace
                && try_lock_file(&entry) == Some(false)
                && fs::remove_file(&entry).is_ok()
            {
                files += 1;
                bytes += meta.len();
            }
        }
        // Removals a crash interrupted.
        if let Ok(entries) = fs::read_dir(root) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(TRASH_PREFIX) {
                    bytes += dir_size(&entry.path());
                    if fs::remove_dir_all(entry.path()).is_ok() {
                        files += 1;
                    }
                }
            }
        }
        Ok((files, bytes))
    }
}

/// Runs the pre-process hook over every piece in order, into a new hidden file; returns its
/// size once synced.
fn run_hook(
    hook: &super::PreprocessFn,
    mut data: File,
    data_path: &Path,
    sizes: &[Option<u64>],
    staging: &Path,
) -> Result<u64> {
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(staging)
        .ctx("create assembly staging file", staging)?;
    let mut writer = BufWriter::with_capacity(256 * 1024, &out);
    data.seek(SeekFrom::Start(0))
        .ctx("read data file", data_path)?;
    for (index, size) in sizes.iter().enumerate() {
        let size = size.unwrap_or(0);
        let mut piece = (&mut data).take(size);
        hook(index as u64, &mut piece, &mut writer).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                Error::Refused {
                    reason: e.to_string(),
                }
            } else {
                Error::io("pre-process piece", data_path, e)
            }
        })?;
        // A hook that stops reading early must not shift the next piece.
        io::copy(&mut piece, &mut io::sink()).ctx("read data file", data_path)?;
    }
    writer.flush().ctx("write assembly staging file", staging)?;
    drop(writer);
    out.sync_all().ctx("sync assembled file", staging)?;
    Ok(out.metadata().ctx("stat assembled file", staging)?.len())
}

/// On error, removes the hidden file and the assembly record before passing the error on.
fn undo_on_error<T>(result: Result<T>, file: &Path, record: &Path) -> Result<T> {
    if result.is_err() {
        let _ = fs::remove_file(file);
        let _ = fs::remove_file(link_path(file));
        let _ = fs::remove_file(record);
    }
    result
}

/// The files in `dir` (none if it cannot be read).
fn read_dir_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// `Some(true)` if someone holds `path`'s lock, `Some(false)` if nobody does, `None` if it
/// cannot be told.
fn try_lock_file(path: &Path) -> Option<bool> {
    let file = open_read(path).ok()?;
    match file.try_lock() {
        Ok(()) => Some(false),
        Err(TryLockError::WouldBlock) => Some(true),
        Err(TryLockError::Error(_)) => None,
    }
}

/// Takes upload `key`'s lock, creating its directory when `create`; `None` when it does not
/// exist and `create` is false.
fn lock(inner: &Inner, key: &str, timeout: Duration, create: bool) -> Result<Option<UploadLock>> {
    let dir = inner.dir(key);
    let path = dir.join("lock");
    let deadline = Instant::now() + timeout;
    loop {
        if create {
            ensure_dir(&dir)?;
        }
        let file = match no_follow(
            OpenOptions::new()
                .create(create)
                .truncate(false)
                .read(true)
                .write(true),
        )
        .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if create {
                    continue; // removed between creating the directory and opening
                }
                return Ok(None);
            }
            Err(e) => return Err(Error::io("open lock file", &path, e)),
        };
        lock_until(&file, &path, deadline)?;
        // The upload may have been removed while we waited: only a lock file that is still in
        // place locks anything.
        match fs::symlink_metadata(&path) {
            Ok(now) if same_file(&now, &file.metadata().ctx("stat lock file", &path)?) => {
                return Ok(Some(UploadLock::new(key, LockFile { _file: file })));
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

/// A random-enough number telling one start (or removal) of a key from the next.
fn nonce() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u64(now_ms());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Writes a piece at its offset in the data file, holding its claim.
#[derive(Debug)]
struct InPlaceWriter {
    store: Arc<Inner>,
    key: String,
    nonce: u64,
    piece: Piece,
    file: File,
    path: PathBuf,
    claim: Option<Claim>,
    len: u64,
}

impl PieceWriter for InPlaceWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let at = self.piece.offset + self.len;
        write_all_at(&self.file, bytes, at).ctx("write data file", &self.path)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn write_file(&mut self, file: &mut File, path: &Path) -> Result<u64> {
        // A kernel copy (copy_file_range) from the body's file into place.
        let at = self.piece.offset + self.len;
        let mut target = &self.file;
        target
            .seek(SeekFrom::Start(at))
            .ctx("seek data file", &self.path)?;
        file.seek(SeekFrom::Start(0)).ctx("read chunk body", path)?;
        let n = io::copy(file, &mut target).ctx("copy chunk body into", &self.path)?;
        self.len += n;
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(
        mut self: Box<Self>,
        lock: &UploadLock,
        current: &Stored,
        sync: bool,
    ) -> Result<Recorded> {
        debug_assert_eq!(lock.key(), self.key);
        let current_data = fs::symlink_metadata(&self.path);
        let ours = self.file.metadata().ctx("stat data file", &self.path)?;
        let same_generation =
            current.nonce == self.nonce && current_data.is_ok_and(|m| same_file(&m, &ours));
        let claim = self
            .claim
            .take()
            .expect("an in-place writer holds its claim");
        if !same_generation {
            claim.release()?;
            return Ok(Recorded::Stale);
        }
        if sync {
            self.file.sync_data().ctx("sync data file", &self.path)?;
        } else {
            start_write_back(&self.file, self.piece.offset, self.len);
        }
        let tally = self.store.record(&self.key, self.piece.index, self.len)?;
        claim.release()?;
        Ok(Recorded::Stored(tally))
    }
}

/// Writes a second copy of a piece aside, to be compared (or moved into place) at commit.
#[derive(Debug)]
struct AsideWriter {
    store: Arc<Inner>,
    key: String,
    opened: Stored,
    piece: Piece,
    file: NamedTempFile,
    len: u64,
}

impl PieceWriter for AsideWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .ctx("write chunk staging file", self.file.path())?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn write_file(&mut self, file: &mut File, path: &Path) -> Result<u64> {
        file.seek(SeekFrom::Start(0)).ctx("read chunk body", path)?;
        let n =
            io::copy(file, self.file.as_file_mut()).ctx("copy chunk body to", self.file.path())?;
        self.len += n;
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(
        self: Box<Self>,
        lock: &UploadLock,
        current: &Stored,
        sync: bool,
    ) -> Result<Recorded> {
        debug_assert_eq!(lock.key(), self.key);
        let inner = Arc::clone(&self.store);
        let key = self.key.clone();
        let (index, offset, len) = (self.piece.index, self.piece.offset, self.len);
        let opened = &self.opened.upload;
        let same_geometry = current.upload.total_size == opened.total_size
            && current.upload.chunk_size == opened.chunk_size
            && current.upload.total_chunks == opened.total_chunks;
        if !same_geometry {
            return Ok(Recorded::Stale);
        }
        if let Some(marker) = &current.assembled {
            // Compare with the published file, if it is still the one published.
            let matches = marker.location.as_path().is_some_and(|path| {
                let Ok(mut published) = open_read(path) else {
                    return false;
                };
                let size_ok = published.metadata().is_ok_and(|m| m.len() == marker.size);
                let mut ours = match self.file.reopen() {
                    Ok(f) => f,
                    Err(_) => return false,
                };
                size_ok
                    && offset
                        .checked_add(len)
                        .is_some_and(|end| end <= marker.size)
                    && same_bytes(&mut ours, 0, &mut published, offset, len).unwrap_or(false)
            });
            let tally = Tally {
                present: current.upload.total_chunks,
                bytes: marker.size,
            };
            return Ok(if matches {
                Recorded::Same(tally)
            } else {
                Recorded::Differs(self)
            });
        }
        let data_path = inner.data(&key);
        if let Some(size) = inner.recorded(&key, index)? {
            let mut data = open_read(&data_path).ctx("open data file", &data_path)?;
            let mut ours = self
                .file
                .reopen()
                .ctx("read chunk staging file", self.file.path())?;
            let same = size == len
                && same_bytes(&mut ours, 0, &mut data, offset, len)
                    .ctx("compare chunk", &data_path)?;
            let tally = inner.tally(&key)?;
            return Ok(if same {
                Recorded::Same(tally)
            } else {
                Recorded::Differs(self)
            });
        }
        // Not recorded: whoever wrote it in place gave up. Move these bytes into place.
        let Some(claim) = inner.try_claim(&key, index)? else {
            return Ok(Recorded::Contended(self));
        };
        let data = match open_rw(&data_path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                claim.release()?;
                return Ok(Recorded::Stale);
            }
            Err(e) => return Err(Error::io("open data file", &data_path, e)),
        };
        let mut target = &data;
        target
            .seek(SeekFrom::Start(offset))
            .ctx("seek data file", &data_path)?;
        let mut ours = self
            .file
            .reopen()
            .ctx("read chunk staging file", self.file.path())?;
        io::copy(&mut ours, &mut target).ctx("copy chunk into", &data_path)?;
        if sync {
            data.sync_data().ctx("sync data file", &data_path)?;
        }
        let tally = inner.record(&key, index, len)?;
        claim.release()?;
        Ok(Recorded::Stored(tally))
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` back to the disk now, without
/// waiting for it (Linux: `posix_fadvise(POSIX_FADV_DONTNEED)` starts the write-back of dirty
/// pages in the range). The fsync at assembly then has little left to write, whatever the file's
/// size: the assembling request costs its own chunk and a short fsync. Advice only: a failure
/// changes nothing but the timing.
fn start_write_back(file: &File, offset: u64, len: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        if let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len))
            && len > 0
        {
            let _ = posix_fadvise(file, offset, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, offset, len);
}

/// Writes all of `bytes` at `offset` (positional: writers of other pieces share the file).
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(bytes, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let (mut bytes, mut offset) = (bytes, offset);
        while !bytes.is_empty() {
            let n = file.seek_write(bytes, offset)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
            offset += n as u64;
        }
        Ok(())
    }
}
