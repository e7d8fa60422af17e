//! The completion ledger: which chunks of an upload are present and how many bytes they hold,
//! kept so that "is the upload complete?" costs O(1) amortized per chunk instead of a directory
//! scan.
//!
//! On disk it is an append-only file: a 16-byte header (`CULEDGR1` and a random nonce that
//! tells one ledger file from its rebuilt successor), then 16-byte records (`index: u64 LE`,
//! `size: u64 LE`), each written under the upload's lock *before* its chunk is renamed into
//! place. A process keeps the
//! records it has read in memory and, under the lock, reads only what other requests (or other
//! processes) appended since. A record whose chunk never made it to disk (a crash between the
//! append and the rename) is harmless: before assembling, every chunk is checked against the
//! ledger, and a ledger that disagrees with the directory is rebuilt from a listing.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

/// Size of one record, and of the header.
const RECORD: u64 = 16;
/// The header's first eight bytes.
const MAGIC: &[u8; 8] = b"CULEDGR1";
/// Most ledgers kept in memory; beyond it an arbitrary one is dropped (and re-read if needed).
const MAX_CACHED: usize = 4096;

/// What the ledger says about an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    /// Distinct chunks present.
    pub present: u64,
    /// Bytes in those chunks.
    pub bytes: u64,
}

#[derive(Debug)]
struct Cached {
    identity: u64,
    offset: u64,
    /// The size of each chunk present, by index. Only chunks present take room: an upload may
    /// declare a million chunks and send one.
    sizes: HashMap<u64, u64>,
    total_chunks: u64,
    tally: Tally,
}

impl Cached {
    fn new(identity: u64, total_chunks: u64) -> Cached {
        Cached {
            identity,
            offset: RECORD,
            sizes: HashMap::new(),
            total_chunks,
            tally: Tally::default(),
        }
    }

    fn apply(&mut self, index: u64, size: u64) {
        if index >= self.total_chunks {
            return; // garbage record: ignored
        }
        match self.sizes.insert(index, size) {
            None => self.tally.present += 1,
            Some(old) => self.tally.bytes -= old,
        }
        self.tally.bytes += size;
    }
}

/// The ledgers of the uploads this process has touched.
#[derive(Debug, Default)]
pub(crate) struct Ledgers {
    cache: Mutex<HashMap<String, Cached>>,
}

impl Ledgers {
    /// Appends "chunk `index` has `size` bytes" to the ledger in `dir`, then returns the tally.
    /// Call with the upload's lock held, before renaming the chunk into place.
    pub(crate) fn record(
        &self,
        key: &str,
        ledger: &Path,
        total_chunks: u64,
        index: u64,
        size: u64,
    ) -> io::Result<Tally> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(ledger)?;
        let len = file.metadata()?.len();
        if len < RECORD {
            // New (or torn before its header was complete): start it.
            file.set_len(0)?;
            file.write_all(&header())?;
        } else if len % RECORD != 0 {
            // A torn record from a crash mid-append: drop it so records stay aligned.
            file.set_len(len - len % RECORD)?;
        }
        let mut record = [0u8; RECORD as usize];
        record[..8].copy_from_slice(&index.to_le_bytes());
        record[8..].copy_from_slice(&size.to_le_bytes());
        file.write_all(&record)?;
        self.catch_up(key, &mut file, total_chunks)
    }

    /// The tally of the ledger in `dir`, reading only records appended since this process last
    /// looked. Call with the upload's lock held.
    pub(crate) fn tally(&self, key: &str, ledger: &Path, total_chunks: u64) -> io::Result<Tally> {
        match File::open(ledger) {
            Ok(mut file) => self.catch_up(key, &mut file, total_chunks),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(key);
                Ok(Tally::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the ledger has chunk `index` (with any size). Call after [`tally`](Self::tally).
    pub(crate) fn has(&self, key: &str, index: u64) -> bool {
        self.size_of(key, index).is_some()
    }

    /// The recorded size of chunk `index`, if present. Call after [`tally`](Self::tally).
    pub(crate) fn size_of(&self, key: &str, index: u64) -> Option<u64> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).and_then(|c| c.sizes.get(&index).copied())
    }

    /// The recorded size of every chunk (`None` for absent ones). Call after
    /// [`tally`](Self::tally).
    pub(crate) fn sizes(&self, key: &str) -> Vec<Option<u64>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .map(|c| {
                (0..c.total_chunks)
                    .map(|i| c.sizes.get(&i).copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces the ledger with `chunks` (index, size), written to a temporary file and renamed
    /// over the old one. Used when the ledger disagrees with the directory.
    pub(crate) fn rebuild(
        &self,
        key: &str,
        ledger: &Path,
        total_chunks: u64,
        chunks: &[(u64, u64)],
    ) -> io::Result<Tally> {
        let dir = ledger.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".ledger-")
            .tempfile_in(dir)?;
        let mut bytes = Vec::with_capacity((chunks.len() + 1) * RECORD as usize);
        bytes.extend_from_slice(&header());
        for &(index, size) in chunks {
            bytes.extend_from_slice(&index.to_le_bytes());
            bytes.extend_from_slice(&size.to_le_bytes());
        }
        tmp.write_all(&bytes)?;
        tmp.persist(ledger).map_err(|e| e.error)?;
        self.forget(key);
        self.tally(key, ledger, total_chunks)
    }

    /// Drops what this process remembers of `key`.
    pub(crate) fn forget(&self, key: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(key);
    }

    fn catch_up(&self, key: &str, file: &mut File, total_chunks: u64) -> io::Result<Tally> {
        let len = file.metadata()?.len();
        let len = len - len % RECORD;
        let mut head = [0u8; RECORD as usize];
        if len < RECORD {
            self.forget(key);
            return Ok(Tally::default());
        }
        file.seek(SeekFrom::Start(0))?;
        file.read_exact(&mut head)?;
        if &head[..8] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ledger header is not CULEDGR1",
            ));
        }
        let identity = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED && !cache.contains_key(key) {
            let victim = cache.keys().next().cloned();
            if let Some(victim) = victim {
                cache.remove(&victim);
            }
        }
        let entry = cache
            .entry(key.to_owned())
            .or_insert_with(|| Cached::new(identity, total_chunks));
        if entry.identity != identity || entry.offset > len || entry.total_chunks != total_chunks {
            *entry = Cached::new(identity, total_chunks);
        }
        if entry.offset < len {
            file.seek(SeekFrom::Start(entry.offset))?;
            let mut buf = vec![0u8; (len - entry.offset) as usize];
            file.read_exact(&mut buf)?;
            for record in buf.chunks_exact(RECORD as usize) {
                let index = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
                let size = u64::from_le_bytes(record[8..].try_into().expect("8 bytes"));
                entry.apply(index, size);
            }
            entry.offset = len;
        }
        Ok(entry.tally)
    }
}

/// A new ledger header: the magic and a nonce unique to this ledger file.
fn header() -> [u8; RECORD as usize] {
    use sha1::{Digest, Sha1};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = Sha1::new();
    hasher.update(now.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hasher.finalize();
    let mut head = [0u8; RECORD as usize];
    head[..8].copy_from_slice(MAGIC);
    head[8..].copy_from_slice(&digest[..8]);
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn duplicates_count_once_and_other_processes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let a = Ledgers::default();
        let b = Ledgers::default(); // another process
        assert_eq!(
            a.record("k", &path, 3, 0, 10).unwrap(),
            Tally {
                present: 1,
                bytes: 10
            }
        );
        assert_eq!(
            a.record("k", &path, 3, 0, 10).unwrap(),
            Tally {
                present: 1,
                bytes: 10
            }
        );
        assert_eq!(
            b.record("k", &path, 3, 2, 5).unwrap(),
            Tally {
                present: 2,
                bytes: 15
            }
        );
        assert_eq!(
            a.tally("k", &path, 3).unwrap(),
            Tally {
                present: 2,
                bytes: 15
            }
        );
        assert!(a.has("k", 2) && !a.has("k", 1));
        // garbage index ignored
        assert_eq!(
            a.record("k", &path, 3, 99, 1).unwrap(),
            Tally {
                present: 2,
                bytes: 15
            }
        );
    }

    #[test]
    fn torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let l = Ledgers::default();
        l.record("k", &path, 2, 0, 4).unwrap();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[1, 2, 3])
            .unwrap();
        let fresh = Ledgers::default();
        assert_eq!(
            fresh.tally("k", &path, 2).unwrap(),
            Tally {
                present: 1,
                bytes: 4
            }
        );
        assert_eq!(
            fresh.record("k", &path, 2, 1, 4).unwrap(),
            Tally {
                present: 2,
                bytes: 8
            }
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 48, "header + 2 records");
    }

    #[test]
    fn rebuild_replaces_and_is_noticed_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let a = Ledgers::default();
        let b = Ledgers::default();
        a.record("k", &path, 3, 0, 1).unwrap();
        a.record("k", &path, 3, 1, 1).unwrap();
        b.tally("k", &path, 3).unwrap();
        b.rebuild("k", &path, 3, &[(0, 1)]).unwrap();
        assert_eq!(
            a.tally("k", &path, 3).unwrap(),
            Tally {
                present: 1,
                bytes: 1
            }
        );
    }
}
