//! The store conformance suite: what every [`Store`] must do, as test cases over a fresh,
//! empty store.
//!
//! Each case is a public function taking a [`Subject`] factory and panicking on the first thing
//! that is wrong. Every store in this crate runs every case from its own tests; a store of your
//! own proves itself the same way:
//!
//! ```no_run
//! use std::sync::Arc;
//! use chunked_upload::conformance::store::Subject;
//! use chunked_upload::{LocalStore, Location};
//!
//! fn subject() -> Subject {
//!     let dir = tempfile::tempdir().unwrap().keep();
//!     let store = LocalStore::new(dir.join("temp"), dir.join("files")).unwrap();
//!     Subject::new(Arc::new(store), |location: &Location| {
//!         std::fs::read(location.as_path().unwrap()).unwrap()
//!     })
//! }
//!
//! // One #[test] per case.
//! chunked_upload::store_conformance_tests!(subject());
//! ```
//!
//! The `tus_*` cases drive the store the way [`crate::tus`] does: appends at the upload's
//! offset under a lock held from first byte to last, a size declared late, an upload made of
//! others, a lock taken over; a store that cannot do the last three says so
//! ([`Capabilities`](crate::Capabilities), [`Error::Unsupported`]).
//!
//! The cases use pieces of a few bytes and, in [`large_pieces`], of 6 MiB (an object store's
//! parts must be at least 5 MiB but the last: a store must accept pieces of any size).

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::store::{
    Assembly, ConflictPolicy, Piece, PieceWriter, Recorded, Store, Stored, Tally, UploadLock,
};
use crate::upload::{Location, UploadInfo};
use crate::{Error, Result};

/// How long a case waits for a lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a published file back, whole.
pub type ReadFn = dyn Fn(&Location) -> Vec<u8> + Send + Sync;

/// A store under test: a fresh, empty instance and a way to read its published files.
pub struct Subject {
    /// The store.
    pub store: Arc<dyn Store>,
    /// A second instance over the same storage (another process's or another server's view),
    /// when the store can have one: the multi-instance cases run on both.
    pub another: Option<Arc<dyn Store>>,
    /// Reads a published file back, whole.
    pub read: Box<ReadFn>,
}

impl Subject {
    /// A subject without a second instance.
    pub fn new(
        store: Arc<dyn Store>,
        read: impl Fn(&Location) -> Vec<u8> + Send + Sync + 'static,
    ) -> Subject {
        Subject {
            store,
            another: None,
            read: Box::new(read),
        }
    }

    /// Adds a second instance over the same storage.
    #[must_use]
    pub fn with_another(mut self, another: Arc<dyn Store>) -> Subject {
        self.another = Some(another);
        self
    }
}

/// A named case of the suite.
pub type Case = fn(Subject);

/// Every case, in order.
pub const CASES: &[(&str, Case)] = &[
    ("pieces_in_order", pieces_in_order),
    ("pieces_out_of_order", pieces_out_of_order),
    ("duplicates_are_compared", duplicates_are_compared),
    ("concurrent_pieces", concurrent_pieces),
    (
        "concurrent_copies_of_one_piece",
        concurrent_copies_of_one_piece,
    ),
    ("zero_byte_upload", zero_byte_upload),
    ("both_geometries", both_geometries),
    ("undeclared_size", undeclared_size),
    (
        "crash_between_write_and_record",
        crash_between_write_and_record,
    ),
    ("exactly_once_assembly", exactly_once_assembly),
    (
        "assembled_pieces_are_compared",
        assembled_pieces_are_compared,
    ),
    ("conflict_policies", conflict_policies),
    ("preprocess_hook", preprocess_hook),
    ("locks_exclude", locks_exclude),
    ("expiry_never_races_assembly", expiry_never_races_assembly),
    ("reset_starts_over", reset_starts_over),
    ("large_pieces", large_pieces),
    ("tus_appends", tus_appends),
    ("tus_declared_size", tus_declared_size),
    ("tus_concatenation", tus_concatenation),
    ("tus_lock_takeover", tus_lock_takeover),
];

/// Generates one `#[test]` per case of [`CASES`], each running it on `$subject` (an expression
/// evaluated once per test, making a fresh store).
#[macro_export]
macro_rules! store_conformance_tests {
    ($subject:expr) => {
        $crate::store_conformance_tests!(@cases ($subject)
            pieces_in_order
            pieces_out_of_order
            duplicates_are_compared
            concurrent_pieces
            concurrent_copies_of_one_piece
            zero_byte_upload
            both_geometries
            undeclared_size
            crash_between_write_and_record
            exactly_once_assembly
            assembled_pieces_are_compared
            conflict_policies
            preprocess_hook
            locks_exclude
            expiry_never_races_assembly
            reset_starts_over
            large_pieces
            tus_appends
            tus_declared_size
            tus_concatenation
            tus_lock_takeover
        );
    };
    (@cases ($subject:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::store::$case($subject);
            }
        )*

        #[test]
        fn store_conformance_runs_every_case() {
            let run: &[&str] = &[$(stringify!($case)),*];
            let all: Vec<&str> =
                $crate::conformance::store::CASES.iter().map(|(name, _)| *name).collect();
            assert_eq!(run, all.as_slice());
        }
    };
}

/// An upload of `data` cut into pieces of `chunk_size` (the last one up to twice as long when
/// `floor`, flow.js's default, else the remainder).
#[derive(Debug, Clone)]
struct File {
    key: String,
    name: String,
    data: Vec<u8>,
    chunk_size: u64,
    count: u64,
}

impl File {
    fn new(key: &str, data: Vec<u8>, chunk_size: u64, floor: bool) -> File {
        let len = data.len() as u64;
        let count = if floor {
            (len / chunk_size).max(1)
        } else {
            len.div_ceil(chunk_size).max(1)
        };
        File {
            key: key.to_owned(),
            name: format!("{key}.bin"),
            data,
            chunk_size,
            count,
        }
    }

    fn info(&self) -> UploadInfo {
        UploadInfo {
            scope: "conformance".into(),
            identifier: self.key.clone(),
            key: self.key.clone(),
            filename: self.name.clone(),
            relative_path: self.name.clone(),
            total_size: Some(self.data.len() as u64),
            total_chunks: self.count,
            chunk_size: Some(self.chunk_size),
            metadata: Default::default(),
            concat: Default::default(),
        }
    }

    fn range(&self, index: u64) -> std::ops::Range<usize> {
        let start = index * self.chunk_size;
        let end = if index + 1 == self.count {
            self.data.len() as u64
        } else {
            start + self.chunk_size
        };
        start as usize..end as usize
    }

    fn piece(&self, index: u64) -> Piece {
        let r = self.range(index);
        Piece {
            index,
            offset: r.start as u64,
            len: Some((r.end - r.start) as u64),
        }
    }
}

/// Deterministic bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Locks and starts the upload.
fn start(store: &dyn Store, file: &File) -> (UploadLock, Stored) {
    let lock = store.lock(&file.key, LOCK_TIMEOUT).expect("lock");
    let stored = store.start(&lock, &file.info()).expect("start");
    (lock, stored)
}

/// Opens piece `index` (under the lock) and writes `bytes` to it, in two writes.
fn write(store: &dyn Store, file: &File, index: u64, bytes: &[u8]) -> Box<dyn PieceWriter> {
    let lock = store.lock(&file.key, LOCK_TIMEOUT).expect("lock");
    let stored = store.load(&file.key).expect("load").expect("started");
    let mut writer = store
        .open_piece(&lock, &stored, file.piece(index))
        .expect("open piece");
    drop(lock);
    let half = bytes.len() / 2;
    writer.write(&bytes[..half]).expect("write");
    writer.write(&bytes[half..]).expect("write");
    assert_eq!(writer.len(), bytes.len() as u64);
    writer
}

/// Commits `writer` under the lock, waiting out [`Recorded::Contended`].
fn commit(store: &dyn Store, file: &File, mut writer: Box<dyn PieceWriter>) -> Recorded {
    for _ in 0..3000 {
        let lock = store.lock(&file.key, LOCK_TIMEOUT).expect("lock");
        let current = store.load(&file.key).expect("load").expect("started");
        match writer.commit(&lock, &current, false).expect("commit") {
            Recorded::Contended(back) => {
                drop(lock);
                thread::sleep(Duration::from_millis(2));
                writer = back;
            }
            other => return other,
        }
    }
    panic!("piece stayed contended for 6 s");
}

/// Writes and commits piece `index` with its own bytes; returns the tally.
fn send(store: &dyn Store, file: &File, index: u64) -> Tally {
    let writer = write(store, file, index, &file.data[file.range(index)]);
    match commit(store, file, writer) {
        Recorded::Stored(tally) => tally,
        other => panic!("piece {index} of {}: {other:?}", file.key),
    }
}

/// Assembles the upload (lock held by the caller) into its name.
fn assemble(
    store: &dyn Store,
    lock: &UploadLock,
    file: &File,
    policy: ConflictPolicy,
) -> Result<crate::store::Marker> {
    let stored = store.load(&file.key)?.expect("started");
    let tally = store.tally(&file.key)?;
    let destination = std::path::PathBuf::from(&file.name);
    store.assemble(
        lock,
        &stored,
        &Assembly {
            destination: &destination,
            conflict: policy,
            preprocess: None,
            keep_pieces: false,
            tally,
        },
    )
}

/// Assembles and checks the published bytes.
fn assemble_and_check(subject: &Subject, file: &File) -> Location {
    let store = &*subject.store;
    let lock = store.lock(&file.key, LOCK_TIMEOUT).expect("lock");
    let marker = assemble(store, &lock, file, ConflictPolicy::Refuse).expect("assemble");
    assert_eq!(marker.size, file.data.len() as u64, "{}: size", file.key);
    assert_eq!(
        marker.location.file_name().as_deref(),
        Some(file.name.as_str()),
        "{}: published under its name",
        file.key
    );
    let published = (subject.read)(&marker.location);
    assert!(
        published == file.data,
        "{}: published bytes differ",
        file.key
    );
    let stored = store.load(&file.key).expect("load").expect("started");
    assert_eq!(
        stored.assembled.as_ref(),
        Some(&marker),
        "the marker is kept"
    );
    marker.location
}

/// Pieces sent in order, one at a time: each is counted once, the tally adds up, the file
/// assembles byte-identical.
pub fn pieces_in_order(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("in-order", bytes(1000, 1), 64, false);
    let (lock, stored) = start(store, &file);
    assert_eq!(stored.upload, file.info());
    assert!(stored.assembled.is_none());
    drop(lock);
    for index in 0..file.count {
        let tally = send(store, &file, index);
        assert_eq!(tally.present, index + 1);
        assert_eq!(tally.bytes, file.range(index).end as u64);
        assert_eq!(
            store.recorded(&file.key, index).unwrap(),
            Some(file.range(index).len() as u64)
        );
    }
    assemble_and_check(&subject, &file);
}

/// Pieces sent in a shuffled order: the same file.
pub fn pieces_out_of_order(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("out-of-order", bytes(1000, 2), 100, false);
    drop(start(store, &file));
    let mut order: Vec<u64> = (0..file.count).collect();
    order.reverse();
    order.swap(2, 7);
    for index in order {
        send(store, &file, index);
    }
    assert_eq!(
        store.recorded_sizes(&file.key, file.count).unwrap(),
        vec![Some(100); 10]
    );
    assemble_and_check(&subject, &file);
}

/// A piece sent again with the same bytes changes nothing ([`Recorded::Same`]); with other
/// bytes it is not stored ([`Recorded::Differs`]), and the stored bytes stay.
pub fn duplicates_are_compared(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("duplicates", bytes(300, 3), 100, false);
    drop(start(store, &file));
    send(store, &file, 1);
    let again = write(store, &file, 1, &file.data[file.range(1)]);
    assert!(matches!(
        commit(store, &file, again),
        Recorded::Same(Tally {
            present: 1,
            bytes: 100
        })
    ));
    let other = write(store, &file, 1, &bytes(100, 99));
    assert!(matches!(commit(store, &file, other), Recorded::Differs(_)));
    let shorter = write(store, &file, 1, &file.data[file.range(1)][..50]);
    assert!(matches!(
        commit(store, &file, shorter),
        Recorded::Differs(_)
    ));
    assert_eq!(store.tally(&file.key).unwrap().present, 1);
    send(store, &file, 0);
    send(store, &file, 2);
    assemble_and_check(&subject, &file);
}

/// Different pieces written by several threads at once (on several instances when the store
/// has them).
pub fn concurrent_pieces(subject: Subject) {
    let file = Arc::new(File::new("concurrent", bytes(64 * 1024, 4), 1024, false));
    drop(start(&*subject.store, &file));
    let stores = instances(&subject);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (file, store) = (
                Arc::clone(&file),
                Arc::clone(&stores[t as usize % stores.len()]),
            );
            thread::spawn(move || {
                for index in (t..file.count).step_by(8) {
                    send(&*store, &file, index);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a writer panicked");
    }
    assert_eq!(
        subject.store.tally(&file.key).unwrap(),
        Tally {
            present: 64,
            bytes: 64 * 1024
        }
    );
    assemble_and_check(&subject, &file);
}

/// Several copies of one piece written at the same moment: exactly one is stored, the others
/// are the same bytes, and the file holds the bytes sent.
pub fn concurrent_copies_of_one_piece(subject: Subject) {
    let file = Arc::new(File::new("copies", bytes(3000, 5), 1000, false));
    drop(start(&*subject.store, &file));
    let stores = instances(&subject);
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            let (file, store, barrier) = (
                Arc::clone(&file),
                Arc::clone(&stores[t % stores.len()]),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                let data = &file.data[file.range(1)];
                let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
                let stored = store.load(&file.key).unwrap().unwrap();
                let mut writer = store.open_piece(&lock, &stored, file.piece(1)).unwrap();
                drop(lock);
                barrier.wait();
                for part in data.chunks(100) {
                    writer.write(part).unwrap();
                }
                matches!(commit(&*store, &file, writer), Recorded::Stored(_))
            })
        })
        .collect();
    let stored: usize = threads
        .into_iter()
        .map(|t| usize::from(t.join().expect("a writer panicked")))
        .sum();
    assert_eq!(stored, 1, "exactly one copy is recorded");
    send(&*subject.store, &file, 0);
    send(&*subject.store, &file, 2);
    assemble_and_check(&subject, &file);
}

/// An empty file: one piece of 0 bytes, an empty published file.
pub fn zero_byte_upload(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("empty", Vec::new(), 1024, false);
    assert_eq!(file.count, 1);
    drop(start(store, &file));
    assert_eq!(
        send(store, &file, 0),
        Tally {
            present: 1,
            bytes: 0
        }
    );
    assemble_and_check(&subject, &file);
}

/// Both last-piece geometries: the remainder, and up to twice the piece size (flow.js).
pub fn both_geometries(subject: Subject) {
    let store = &*subject.store;
    for (n, floor) in [(0u64, false), (1, true)] {
        for size in [1usize, 99, 100, 101, 250] {
            let key = format!("geometry-{n}-{size}");
            let file = File::new(&key, bytes(size, size as u64 + n), 100, floor);
            drop(start(store, &file));
            for index in (0..file.count).rev() {
                send(store, &file, index);
            }
            assemble_and_check(&subject, &file);
        }
    }
}

/// An upload whose size is not declared (a whole file in one request): the store learns it
/// from the piece.
pub fn undeclared_size(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("undeclared", bytes(777, 6), 1 << 20, false);
    let info = UploadInfo {
        total_size: None,
        chunk_size: None,
        ..file.info()
    };
    let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
    store.start(&lock, &info).unwrap();
    drop(lock);
    let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
    let stored = store.load(&file.key).unwrap().unwrap();
    let mut writer = store
        .open_piece(
            &lock,
            &stored,
            Piece {
                index: 0,
                offset: 0,
                len: None,
            },
        )
        .unwrap();
    drop(lock);
    writer.write(&file.data).unwrap();
    assert!(matches!(commit(store, &file, writer), Recorded::Stored(_)));
    assemble_and_check(&subject, &file);
}

/// A piece written but never recorded (the request died between the two) does not count, and
/// the piece can be sent again.
pub fn crash_between_write_and_record(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("crash", bytes(200, 7), 100, false);
    drop(start(store, &file));
    let writer = write(store, &file, 0, &file.data[file.range(0)]);
    drop(writer);
    assert_eq!(store.tally(&file.key).unwrap(), Tally::default());
    assert_eq!(store.recorded(&file.key, 0).unwrap(), None);
    // Garbage written in place and abandoned does not leak into the file either.
    let garbage = write(store, &file, 1, &bytes(100, 70));
    drop(garbage);
    send(store, &file, 1);
    send(store, &file, 0);
    assemble_and_check(&subject, &file);
}

/// Requests racing to complete the same upload (on several instances when the store has
/// them): under the lock, exactly one finds it unassembled and assembles; one file appears.
pub fn exactly_once_assembly(subject: Subject) {
    let file = Arc::new(File::new("once", bytes(500, 8), 100, false));
    drop(start(&*subject.store, &file));
    for index in 0..file.count {
        send(&*subject.store, &file, index);
    }
    let stores = instances(&subject);
    let barrier = Arc::new(Barrier::new(6));
    let threads: Vec<_> = (0..6usize)
        .map(|t| {
            let (file, store, barrier) = (
                Arc::clone(&file),
                Arc::clone(&stores[t % stores.len()]),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                barrier.wait();
                let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
                let stored = store.load(&file.key).unwrap().unwrap();
                if stored.assembled.is_some() {
                    return false;
                }
                assemble(&*store, &lock, &file, ConflictPolicy::Rename).unwrap();
                true
            })
        })
        .collect();
    let assembled: usize = threads
        .into_iter()
        .map(|t| usize::from(t.join().expect("a thread panicked")))
        .sum();
    assert_eq!(assembled, 1);
    let stored = subject.store.load(&file.key).unwrap().unwrap();
    let marker = stored.assembled.expect("assembled");
    assert_eq!(
        marker.location.file_name().as_deref(),
        Some("once.bin"),
        "no second name under Rename"
    );
    assert!((subject.read)(&marker.location) == file.data);
}

/// After assembly, a piece sent again is compared with the published file: the same bytes
/// are [`Recorded::Same`], others [`Recorded::Differs`].
pub fn assembled_pieces_are_compared(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("late", bytes(300, 9), 100, false);
    drop(start(store, &file));
    for index in 0..file.count {
        send(store, &file, index);
    }
    assemble_and_check(&subject, &file);
    let late = write(store, &file, 2, &file.data[file.range(2)]);
    assert!(matches!(commit(store, &file, late), Recorded::Same(_)));
    let changed = write(store, &file, 0, &bytes(100, 90));
    assert!(matches!(
        commit(store, &file, changed),
        Recorded::Differs(_)
    ));
}

/// An existing destination: `Refuse` fails with [`Error::Conflict`] and leaves it, `Rename`
/// picks `name (1).ext`, `Overwrite` replaces it.
pub fn conflict_policies(subject: Subject) {
    let store = &*subject.store;
    let first = File::new("conflict", bytes(10, 10), 100, false);
    drop(start(store, &first));
    send(store, &first, 0);
    let taken = assemble_and_check(&subject, &first);
    let mut n = 0;
    for (policy, expected_name) in [
        (ConflictPolicy::Refuse, None),
        (ConflictPolicy::Rename, Some("conflict (1).bin")),
        (ConflictPolicy::Overwrite, Some("conflict.bin")),
    ] {
        n += 1;
        let file = File {
            key: format!("conflict-{n}"),
            name: first.name.clone(),
            ..File::new("x", bytes(20, 10 + n), 100, false)
        };
        let (lock, _) = start(store, &file);
        drop(lock);
        send(store, &file, 0);
        let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
        match (assemble(store, &lock, &file, policy), expected_name) {
            (Err(Error::Conflict { .. }), None) => {
                assert!((subject.read)(&taken) == first.data, "Refuse leaves it");
                assert!(store.load(&file.key).unwrap().unwrap().assembled.is_none());
            }
            (Ok(marker), Some(name)) => {
                assert_eq!(marker.location.file_name().as_deref(), Some(name));
                assert!((subject.read)(&marker.location) == file.data, "{policy:?}");
            }
            (other, _) => panic!("{policy:?}: {other:?}"),
        }
    }
}

/// A pre-process hook sees every piece in order and its output is published.
pub fn preprocess_hook(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("hooked", bytes(250, 11), 100, false);
    drop(start(store, &file));
    for index in [2, 0, 1] {
        send(store, &file, index);
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let hook = move |index: u64, r: &mut dyn std::io::Read, w: &mut dyn std::io::Write| {
        let mut piece = Vec::new();
        r.read_to_end(&mut piece)?;
        log.lock().unwrap().push((index, piece.len()));
        let inverted: Vec<u8> = piece.iter().map(|b| !b).collect();
        w.write_all(&inverted)
    };
    let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
    let stored = store.load(&file.key).unwrap().unwrap();
    let destination = std::path::PathBuf::from(&file.name);
    let marker = store
        .assemble(
            &lock,
            &stored,
            &Assembly {
                destination: &destination,
                conflict: ConflictPolicy::Refuse,
                preprocess: Some(&hook),
                keep_pieces: false,
                tally: store.tally(&file.key).unwrap(),
            },
        )
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [(0, 100), (1, 100), (2, 50)]);
    let expected: Vec<u8> = file.data.iter().map(|b| !b).collect();
    assert!((subject.read)(&marker.location) == expected);
}

/// The upload's lock excludes every holder (every instance); a held lock makes `try_lock`
/// answer `None` and `lock` time out with [`Error::Busy`].
pub fn locks_exclude(subject: Subject) {
    let file = File::new("locks", bytes(10, 12), 100, false);
    let (held, _) = start(&*subject.store, &file);
    for store in instances(&subject) {
        assert!(store.try_lock(&file.key).unwrap().is_none());
        assert!(matches!(
            store.lock(&file.key, Duration::from_millis(50)),
            Err(Error::Busy { .. })
        ));
    }
    drop(held);
    assert!(subject.store.try_lock(&file.key).unwrap().is_some());
    assert!(
        subject.store.try_lock("never-started").unwrap().is_none(),
        "try_lock does not create uploads"
    );
}

/// The sweep's view: a live writer makes the upload live (it must not expire), an idle one is
/// removed with everything it held, and removal never happens while the lock is held.
pub fn expiry_never_races_assembly(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("expiry", bytes(200, 13), 100, false);
    drop(start(store, &file));
    send(store, &file, 0);
    let live = write(store, &file, 1, &file.data[file.range(1)][..10]);
    let lock = store.try_lock(&file.key).unwrap().expect("free");
    assert!(store.inspect(&lock).unwrap().live, "a writer is live");
    drop(lock);
    drop(live);
    let lock = store.try_lock(&file.key).unwrap().expect("free");
    let activity = store.inspect(&lock).unwrap();
    assert!(!activity.live);
    assert!(activity.last_activity <= std::time::SystemTime::now());
    let bytes = store.remove(&lock).unwrap();
    assert!(bytes > 0, "the stored piece was freed");
    drop(lock);
    assert!(store.load(&file.key).unwrap().is_none());
    assert!(!store.keys().unwrap().contains(&file.key));
    assert_eq!(store.tally(&file.key).unwrap(), Tally::default());
}

/// `reset` forgets everything but the lock: the upload starts over, and a file published
/// before stays.
pub fn reset_starts_over(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("reset", bytes(100, 14), 100, false);
    drop(start(store, &file));
    send(store, &file, 0);
    let published = assemble_and_check(&subject, &file);
    let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
    store.reset(&lock).unwrap();
    assert!(store.load(&file.key).unwrap().is_none());
    let second = File::new("reset", bytes(100, 15), 100, false);
    let stored = store.start(&lock, &second.info()).unwrap();
    assert!(stored.assembled.is_none());
    drop(lock);
    assert_eq!(store.tally(&file.key).unwrap(), Tally::default());
    send(store, &second, 0);
    assert!(
        (subject.read)(&published) == file.data,
        "the old file stays"
    );
    let lock = store.lock(&file.key, LOCK_TIMEOUT).unwrap();
    let marker = assemble(store, &lock, &second, ConflictPolicy::Rename).unwrap();
    assert!((subject.read)(&marker.location) == second.data);
}

/// Pieces of 6 MiB and a short last one (an object store's multipart parts), out of order.
pub fn large_pieces(subject: Subject) {
    let store = &*subject.store;
    let file = File::new("large", bytes(13 << 20, 16), 6 << 20, false);
    assert_eq!(file.count, 3);
    drop(start(store, &file));
    for index in [1, 2, 0] {
        send(store, &file, index);
    }
    assemble_and_check(&subject, &file);
}

/// The store and its second instance, if any.
fn instances(subject: &Subject) -> Vec<Arc<dyn Store>> {
    let mut all = vec![Arc::clone(&subject.store)];
    all.extend(subject.another.iter().cloned());
    all
}

// ---------------------------------------------------------------------------------------------
// The store as tus drives it: appends at the upload's offset, each under the lock held from its
// first byte to its last (`crate::tus`).

/// A tus upload of `data`: appends, as many as it takes (`total_chunks: u64::MAX`).
fn tus_info(key: &str, size: Option<u64>, concat: crate::upload::Concat) -> UploadInfo {
    UploadInfo {
        scope: "conformance".into(),
        identifier: key.to_owned(),
        key: key.to_owned(),
        filename: format!("{key}.bin"),
        relative_path: format!("{key}.bin"),
        total_size: size,
        total_chunks: u64::MAX,
        chunk_size: None,
        metadata: Default::default(),
        concat,
    }
}

/// One append of `bytes` at the upload's offset, the lock held throughout; `keep` bytes of it
/// are written before the body "breaks" (all of them when `None`), and it is recorded unless
/// `drop_it` (a checksum mismatch). Returns the tally after it.
fn append(store: &dyn Store, key: &str, bytes: &[u8], keep: Option<usize>, drop_it: bool) -> Tally {
    let lock = store.lock(key, LOCK_TIMEOUT).expect("lock");
    let stored = store.load(key).expect("load").expect("started");
    let tally = store.tally(key).expect("tally");
    let mut writer = store
        .open_piece(
            &lock,
            &stored,
            Piece {
                index: tally.present,
                offset: tally.bytes,
                len: Some(bytes.len() as u64),
            },
        )
        .expect("open piece");
    let kept = &bytes[..keep.unwrap_or(bytes.len())];
    for part in kept.chunks(4096) {
        writer.write(part).expect("write");
    }
    if drop_it {
        drop(writer);
        return store.tally(key).expect("tally");
    }
    match writer.commit(&lock, &stored, false).expect("commit") {
        Recorded::Stored(tally) => tally,
        other => panic!("append to {key}: {other:?}"),
    }
}

/// tus appends: at the upload's offset, of every size, one dropped unrecorded (a checksum
/// mismatch: the offset stays, the next append overwrites its bytes), one cut short (a broken
/// connection: what arrived counts); the tally is the offset, and the upload assembles
/// byte-identical.
pub fn tus_appends(subject: Subject) {
    let store = &*subject.store;
    let data = bytes(20_000, 41);
    let key = "tus-appends";
    let lock = store.lock(key, LOCK_TIMEOUT).unwrap();
    store
        .start(
            &lock,
            &tus_info(key, Some(data.len() as u64), Default::default()),
        )
        .unwrap();
    drop(lock);
    let mut offset = 0usize;
    for len in [1usize, 700, 4096, 3] {
        let tally = append(store, key, &data[offset..offset + len], None, false);
        offset += len;
        assert_eq!(tally.bytes, offset as u64);
    }
    // Dropped: the offset stays, and garbage written in place never shows.
    let garbage = bytes(5000, 42);
    assert_eq!(
        append(store, key, &garbage, None, true).bytes,
        offset as u64
    );
    // Cut short after 1000 of 5000 bytes: those 1000 count.
    let tally = append(store, key, &data[offset..offset + 5000], Some(1000), false);
    offset += 1000;
    assert_eq!(tally.bytes, offset as u64);
    let tally = append(store, key, &data[offset..], None, false);
    assert_eq!(tally.bytes, data.len() as u64);
    let file = File {
        key: key.to_owned(),
        name: format!("{key}.bin"),
        data,
        chunk_size: 1,
        count: tally.present,
    };
    assemble_and_check(&subject, &file);
}

/// tus `creation-defer-length`: an upload started without a size is given one after some
/// appends ([`Store::declare_size`]); a store that cannot says so.
pub fn tus_declared_size(subject: Subject) {
    let store = &*subject.store;
    let key = "tus-declared";
    let lock = store.lock(key, LOCK_TIMEOUT).unwrap();
    store
        .start(&lock, &tus_info(key, None, Default::default()))
        .unwrap();
    if !store.capabilities().declare_size {
        assert!(matches!(
            store.declare_size(&lock, 10),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    drop(lock);
    let data = bytes(9000, 43);
    append(store, key, &data[..3000], None, false);
    let lock = store.lock(key, LOCK_TIMEOUT).unwrap();
    let stored = store.declare_size(&lock, data.len() as u64).unwrap();
    assert_eq!(stored.upload.total_size, Some(data.len() as u64));
    drop(lock);
    assert_eq!(
        store.load(key).unwrap().unwrap().upload.total_size,
        Some(data.len() as u64)
    );
    let tally = append(store, key, &data[3000..], None, false);
    let file = File {
        key: key.to_owned(),
        name: format!("{key}.bin"),
        data,
        chunk_size: 1,
        count: tally.present,
    };
    assemble_and_check(&subject, &file);
}

/// tus `concatenation`: an upload made of three finished partial uploads
/// ([`Store::concatenate`]) holds their bytes in order, one piece each, and assembles
/// byte-identical; the parts stay as they were. A store that cannot says so.
pub fn tus_concatenation(subject: Subject) {
    use crate::upload::Concat;
    let store = &*subject.store;
    let parts: Vec<(String, Vec<u8>)> = [3000usize, 0, 7001]
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("tus-part-{i}"), bytes(len, 50 + i as u64)))
        .collect();
    for (key, data) in &parts {
        let lock = store.lock(key, LOCK_TIMEOUT).unwrap();
        store
            .start(
                &lock,
                &tus_info(key, Some(data.len() as u64), Concat::Partial),
            )
            .unwrap();
        drop(lock);
        if !data.is_empty() {
            append(store, key, data, None, false);
        }
    }
    let total: Vec<u8> = parts.iter().flat_map(|(_, d)| d.clone()).collect();
    let key = "tus-final";
    let ids = parts.iter().map(|(k, _)| k.clone()).collect();
    let lock = store.lock(key, LOCK_TIMEOUT).unwrap();
    let stored = store
        .start(
            &lock,
            &tus_info(key, Some(total.len() as u64), Concat::Final(ids)),
        )
        .unwrap();
    let locks: Vec<(UploadLock, Stored)> = parts
        .iter()
        .map(|(k, _)| {
            let l = store.lock(k, LOCK_TIMEOUT).unwrap();
            let s = store.load(k).unwrap().unwrap();
            (l, s)
        })
        .collect();
    let refs: Vec<(&UploadLock, &Stored)> = locks.iter().map(|(l, s)| (l, s)).collect();
    if !store.capabilities().concatenate {
        assert!(matches!(
            store.concatenate(&lock, &stored, &refs),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    let tally = store.concatenate(&lock, &stored, &refs).unwrap();
    assert_eq!(
        tally,
        Tally {
            present: 3,
            bytes: total.len() as u64
        }
    );
    drop(refs);
    drop(locks);
    drop(lock);
    for (k, d) in &parts {
        assert_eq!(store.tally(k).unwrap().bytes, d.len() as u64, "{k} stays");
    }
    let file = File {
        key: key.to_owned(),
        name: format!("{key}.bin"),
        data: total,
        chunk_size: 1,
        count: 3,
    };
    assemble_and_check(&subject, &file);
}

/// The lock taken over: a request waiting in [`Store::lock_taking_over`] (on another instance,
/// when there is one) makes [`Store::release_asked`] true for the holder, which gives the lock
/// up; the new holder is not asked. A store without takeover only waits.
pub fn tus_lock_takeover(subject: Subject) {
    let store = Arc::clone(&subject.store);
    let other = subject
        .another
        .clone()
        .unwrap_or_else(|| Arc::clone(&store));
    let key = "tus-takeover";
    let lock = store.lock(key, LOCK_TIMEOUT).unwrap();
    store
        .start(&lock, &tus_info(key, Some(1), Default::default()))
        .unwrap();
    assert!(!store.release_asked(key).unwrap());
    let waiting = thread::spawn(move || {
        let lock = other
            .lock_taking_over(key, LOCK_TIMEOUT)
            .expect("the lock, in time");
        let asked = other.release_asked(key).expect("release_asked");
        (lock.key().to_owned(), asked)
    });
    if store.capabilities().lock_takeover {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !store.release_asked(key).unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "never asked to give the lock up"
            );
            thread::sleep(Duration::from_millis(5));
        }
    } else {
        thread::sleep(Duration::from_millis(50));
    }
    drop(lock);
    let (taken, asked) = waiting.join().expect("the waiting thread");
    assert_eq!(taken, key);
    assert!(
        !asked,
        "the new holder is not asked to give up its own lock"
    );
}
