//! The completion ledger: which chunks of an upload are present and how many bytes they hold,
//! kept so that "is the upload complete?" costs O(1) amortized per chunk instead of a directory
//! scan.
//!
//! On disk it is an append-only file: a 16-byte header (`CULEDGR1` and a random nonce that
//! tells one ledger file from its rebuilt successor), then 16-byte records (`index: u64 LE`,
//! `size: u64 LE`), each written under the upload's lock *before* its chunk is renamed into
//! place (local store: after its bytes are written at their offset). A process keeps the
//! records it has read in memory and, under the lock, reads only what other requests (or other
//! processes) appended since. A torn record (a crash mid-append) is dropped; a piece whose
//! bytes were written but whose record was not (a crash between the two) simply does not count,
//! and is written again when the client re-sends it.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use super::Tally;
use super::fs::{no_follow, open_read};

/// Size of one record, and of the header.
const RECORD: u64 = 16;
/// The header's first eight bytes.
const MAGIC: &[u8; 8] = b"CULEDGR1";
/// Most ledgers kept in memory; beyond it an arbitrary one is dropped (and re-read if needed).
const MAX_CACHED: usize = 4096;

#[derive(Debug)]
struct Cached {
    identity: u64,
    offset: u64,
    /// The size of each chunk present, by index. Only chunks present take room: an upload may
    /// declare a million chunks and send one.
    sizes: HashMap<u64, u64>,
    tally: Tally,
}

impl Cached {
    fn new(identity: u64) -> Cached {
        Cached {
            identity,
            offset: RECORD,
            sizes: HashMap::new(),
            tally: Tally::default(),
        }
    }

    fn apply(&mut self, index: u64, size: u64) {
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
        index: u64,
        size: u64,
    ) -> io::Result<Tally> {
        let mut file =
            no_follow(OpenOptions::new().create(true).append(true).read(true)).open(ledger)?;
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
        self.catch_up(key, &mut file)
    }

    /// The tally of the ledger in `dir`, reading only records appended since this process last
    /// looked. Call with the upload's lock held.
    pub(crate) fn tally(&self, key: &str, ledger: &Path) -> io::Result<Tally> {
        match open_read(ledger) {
            Ok(mut file) => self.catch_up(key, &mut file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(key);
                Ok(Tally::default())
            }
            Err(e) => Err(e),
        }
    }

    /// The recorded size of chunk `index`, if present. Call after [`tally`](Self::tally).
    pub(crate) fn size_of(&self, key: &str, index: u64) -> Option<u64> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).and_then(|c| c.sizes.get(&index).copied())
    }

    /// The recorded size of chunks `0..count` (`None` for absent ones). Call after
    /// [`tally`](Self::tally).
    pub(crate) fn sizes(&self, key: &str, count: u64) -> Vec<Option<u64>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(key) {
            Some(c) => (0..count).map(|i| c.sizes.get(&i).copied()).collect(),
            None => vec![None; usize::try_from(count).unwrap_or(0)],
        }
    }

    /// Drops what this process remembers of `key`.
    pub(crate) fn forget(&self, key: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(key);
    }

    fn catch_up(&self, key: &str, file: &mut std::fs::File) -> io::Result<Tally> {
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
            .or_insert_with(|| Cached::new(identity));
        if entry.identity != identity || entry.offset > len {
            *entry = Cached::new(identity);
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
            a.record("k", &path, 0, 10).unwrap(),
            Tally {
                present: 1,
                bytes: 10
            }
        );
        assert_eq!(
            a.record("k", &path, 0, 10).unwrap(),
            Tally {
                present: 1,
                bytes: 10
            }
        );
        assert_eq!(
            b.record("k", &path, 2, 5).unwrap(),
            Tally {
                present: 2,
                bytes: 15
            }
        );
        assert_eq!(
            a.tally("k", &path).unwrap(),
            Tally {
                present: 2,
                bytes: 15
            }
        );
        assert_eq!(a.size_of("k", 2), Some(5));
        assert_eq!(a.size_of("k", 1), None);
        assert_eq!(a.sizes("k", 3), [Some(10), None, Some(5)]);
    }

    #[test]
    fn torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let l = Ledgers::default();
        l.record("k", &path, 0, 4).unwrap();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[1, 2, 3])
            .unwrap();
        let fresh = Ledgers::default();
        assert_eq!(
            fresh.tally("k", &path).unwrap(),
            Tally {
                present: 1,
                bytes: 4
            }
        );
        assert_eq!(
            fresh.record("k", &path, 1, 4).unwrap(),
            Tally {
                present: 2,
                bytes: 8
            }
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 48, "header + 2 records");
    }
}
