//! The upload's state object in the bucket: who holds its lease, what its first request
//! declared, which pieces are recorded, which parts of its multipart upload are uploaded, which
//! staged segments wait to be coalesced into a part, and the marker once it is assembled.
//!
//! One small JSON object per upload, rewritten with a conditional put (`If-Match` its ETag) at
//! every change, so two servers can never both change it from the same version. Its size is
//! O(parts + segments waiting + gaps in the recorded pieces), not O(pieces): the recorded pieces
//! are a set of index ranges, piece sizes are one nominal size plus the exceptions, and segments
//! leave the object as soon as their part is uploaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Marker, Stored, Tally};
use crate::upload::UploadInfo;

/// The state layout version; objects of another version are not read.
pub(super) const LAYOUT: u32 = 1;

/// `H/<key>/state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct State {
    pub layout: u32,
    /// The upload's lease: held while `Some` and not expired.
    pub lease: Option<Lease>,
    /// The upload, once started.
    pub generation: Option<Generation>,
}

impl State {
    pub fn empty() -> State {
        State {
            layout: LAYOUT,
            lease: None,
            generation: None,
        }
    }
}

/// Who holds an upload's lease, and until when (the holder's wall clock, Unix milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Lease {
    /// A token fresh for every acquisition.
    pub holder: String,
    pub until_ms: u64,
}

/// One start of an upload (a restart under the same key is a new generation, new nonce).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Generation {
    pub upload: UploadInfo,
    pub created_ms: u64,
    pub nonce: u64,
    /// Last time a piece was recorded or the upload started or was assembled.
    pub active_ms: u64,
    /// The size of every part but the last.
    pub part_size: u64,
    /// The multipart upload the parts go to, once created.
    pub multipart: Option<String>,
    /// Uploaded parts: part index (0-based; part number - 1) -> ETag and size.
    pub parts: BTreeMap<u32, PartRecord>,
    /// Staged segments of parts not uploaded yet: part index -> segments.
    pub pending: BTreeMap<u32, Vec<Segment>>,
    /// Recorded piece indices, as sorted disjoint half-open ranges.
    pub present: Vec<(u64, u64)>,
    /// The size most pieces have (the first recorded one's).
    pub nominal: Option<u64>,
    /// Pieces of another size.
    pub sizes: BTreeMap<u64, u64>,
    pub tally: Tally,
    /// The file's size, once known (declared, or the end of its last piece).
    pub end: Option<u64>,
    /// Writers with a piece in flight: writer id -> when it was opened (Unix ms).
    pub writers: BTreeMap<String, u64>,
    /// An assembly in progress.
    pub assembling: Option<Assembling>,
    pub assembled: Option<Marker>,
}

/// One uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct PartRecord {
    pub etag: String,
    pub size: u64,
}

/// A staged run of one piece's bytes, all inside one part: the object `H/<key>/s/<name>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Segment {
    /// Offset in the file.
    pub offset: u64,
    pub len: u64,
    /// The object's name below the upload's `s/` folder.
    pub name: String,
}

/// What an assembly that may have been interrupted was doing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Assembling {
    pub started_ms: u64,
    /// The object to publish (the completed multipart upload, or the hook's output).
    pub source: String,
    pub size: u64,
    /// The destination key asked for.
    pub destination: String,
    pub conflict: Conflict,
    /// Whether `source` exists (the multipart upload was completed).
    pub source_complete: bool,
    /// Whether a pre-process hook is to run over `source` before it is published (cleared
    /// once `source` is the hook's output).
    #[serde(default)]
    pub hook_pending: bool,
}

/// [`ConflictPolicy`](crate::ConflictPolicy) as recorded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(super) enum Conflict {
    Refuse,
    Overwrite,
    Rename,
}

impl Generation {
    pub fn new(upload: UploadInfo, nonce: u64, now_ms: u64, part_size: u64) -> Generation {
        Generation {
            end: upload.total_size,
            upload,
            created_ms: now_ms,
            nonce,
            active_ms: now_ms,
            part_size,
            multipart: None,
            parts: BTreeMap::new(),
            pending: BTreeMap::new(),
            present: Vec::new(),
            nominal: None,
            sizes: BTreeMap::new(),
            tally: Tally::default(),
            writers: BTreeMap::new(),
            assembling: None,
            assembled: None,
        }
    }

    pub fn stored(&self) -> Stored {
        Stored {
            upload: self.upload.clone(),
            created_ms: self.created_ms,
            nonce: self.nonce,
            assembled: self.assembled.clone(),
        }
    }

    pub fn is_present(&self, index: u64) -> bool {
        let at = self.present.partition_point(|&(_, end)| end <= index);
        self.present
            .get(at)
            .is_some_and(|&(start, _)| start <= index)
    }

    /// The recorded size of piece `index`, if recorded.
    pub fn size_of(&self, index: u64) -> Option<u64> {
        if !self.is_present(index) {
            return None;
        }
        self.sizes.get(&index).copied().or(self.nominal)
    }

    /// Records piece `index` of `len` bytes (not recorded before).
    pub fn record(&mut self, index: u64, len: u64) {
        insert_index(&mut self.present, index);
        match self.nominal {
            None => self.nominal = Some(len),
            Some(n) if n != len => {
                self.sizes.insert(index, len);
            }
            Some(_) => {}
        }
        self.tally.present += 1;
        self.tally.bytes += len;
    }

    /// Where part `part` ends, if that is known yet.
    pub fn part_end(&self, part: u32) -> Option<u64> {
        let full = (u64::from(part) + 1) * self.part_size;
        match self.end {
            Some(end) => Some(full.min(end)),
            None => Some(full),
        }
    }

    /// Number of parts the file has (known once its end is).
    pub fn part_count(&self) -> Option<u32> {
        self.end
            .map(|end| u32::try_from(end.div_ceil(self.part_size)).unwrap_or(u32::MAX))
    }

    /// Whether the staged segments of `part` cover it whole (they never overlap: pieces do not).
    pub fn covered(&self, part: u32) -> bool {
        let start = u64::from(part) * self.part_size;
        let Some(end) = self.part_end(part) else {
            return false;
        };
        if end <= start {
            return false;
        }
        let held: u64 = self
            .pending
            .get(&part)
            .map_or(0, |segs| segs.iter().map(|s| s.len).sum());
        held == end - start
    }
}

/// Adds `index` to a sorted set of disjoint half-open ranges, merging neighbours.
fn insert_index(ranges: &mut Vec<(u64, u64)>, index: u64) {
    let at = ranges.partition_point(|&(_, end)| end < index);
    if let Some(r) = ranges.get_mut(at) {
        if r.0 <= index && index < r.1 {
            return;
        }
        if r.1 == index {
            r.1 = index + 1;
            if let Some(&(next_start, next_end)) = ranges.get(at + 1)
                && next_start == index + 1
            {
                ranges[at].1 = next_end;
                ranges.remove(at + 1);
            }
            return;
        }
        if r.0 == index + 1 {
            r.0 = index;
            return;
        }
    }
    ranges.insert(at, (index, index + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_merge_in_any_order() {
        let mut r = Vec::new();
        for i in [5, 3, 4, 0, 9, 1, 2, 8, 7, 6] {
            insert_index(&mut r, i);
            insert_index(&mut r, i);
        }
        assert_eq!(r, vec![(0, 10)]);
        let mut r = Vec::new();
        for i in [10, 0, 5, 2] {
            insert_index(&mut r, i);
        }
        assert_eq!(r, vec![(0, 1), (2, 3), (5, 6), (10, 11)]);
        insert_index(&mut r, 1);
        assert_eq!(r, vec![(0, 3), (5, 6), (10, 11)]);
    }

    fn info(total: Option<u64>, chunks: u64) -> UploadInfo {
        UploadInfo {
            scope: String::new(),
            identifier: "x".into(),
            key: "k".into(),
            filename: "f".into(),
            relative_path: "f".into(),
            total_size: total,
            total_chunks: chunks,
            chunk_size: None,
            metadata: Default::default(),
            concat: Default::default(),
        }
    }

    #[test]
    fn sizes_tally_and_coverage() {
        let mut g = Generation::new(info(Some(25), 3), 1, 0, 10);
        assert_eq!(g.part_count(), Some(3));
        g.record(1, 10);
        g.record(2, 5);
        assert_eq!(g.size_of(1), Some(10));
        assert_eq!(g.size_of(2), Some(5));
        assert_eq!(g.size_of(0), None);
        assert_eq!(
            g.tally,
            Tally {
                present: 2,
                bytes: 15
            }
        );
        g.pending.entry(2).or_default().push(Segment {
            offset: 20,
            len: 5,
            name: "a".into(),
        });
        assert!(g.covered(2));
        g.pending.entry(0).or_default().push(Segment {
            offset: 0,
            len: 4,
            name: "b".into(),
        });
        assert!(!g.covered(0));
    }
}
