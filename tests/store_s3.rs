//! The store conformance suite against the S3 store, twice: over `object_store`'s in-memory
//! store (small parts, so that every case crosses part boundaries) and over a real S3 protocol
//! server on loopback (`s3s-fs`, with S3's 5 MiB part minimum), each with a second instance
//! over the same bucket (another server's view). Then what only a bucket shared by servers
//! shows: a lease its holder never released is taken over once expired, and the requests an
//! upload costs.

mod s3_support;

use std::sync::{Arc, OnceLock};

use chunked_upload::conformance::store::Subject;
use chunked_upload::object_store::memory::InMemory;
use chunked_upload::object_store::{ObjectStore, ObjectStoreExt, path::Path};
use chunked_upload::{Location, S3Store};

fn memory_subject() -> Subject {
    let memory = Arc::new(InMemory::new());
    let make = || {
        S3Store::builder(
            Arc::clone(&memory) as Arc<dyn ObjectStore>,
            Arc::clone(&memory) as _,
        )
        .prefix("files")
        .part_size(4096)
        .build()
        .expect("store")
    };
    let (store, another) = (make(), make());
    let read = Arc::clone(&memory);
    Subject::new(Arc::new(store), move |location: &Location| {
        let Location::Object(key) = location else {
            panic!("an object: {location:?}")
        };
        let (read, key) = (Arc::clone(&read), Path::from(key.as_str()));
        s3_support::block_on(async move {
            read.get(&key)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        })
    })
    .with_another(Arc::new(another))
}

mod memory {
    chunked_upload::store_conformance_tests!(super::memory_subject());
}

/// One s3s-fs for every case of this binary (each case uses its own prefix).
fn server() -> Option<&'static s3_support::S3Server> {
    static SERVER: OnceLock<Option<s3_support::S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| s3_support::S3Server::start("store_s3"))
        .as_ref()
}

fn s3s_subject() -> Subject {
    let Some(server) = server() else {
        // No server: the same cases over memory, so the test still means something.
        return memory_subject();
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let prefix = format!("case-{}", N.fetch_add(1, Ordering::SeqCst));
    let client = Arc::new(server.client());
    let make = || {
        S3Store::builder_s3(server.client())
            .prefix(prefix.clone())
            .build()
            .expect("store")
    };
    let (store, another) = (make(), make());
    Subject::new(Arc::new(store), move |location: &Location| {
        let Location::Object(key) = location else {
            panic!("an object: {location:?}")
        };
        s3_support::read_object(&client, key)
    })
    .with_another(Arc::new(another))
}

mod s3s {
    chunked_upload::store_conformance_tests!(super::s3s_subject());
}

mod common;

use std::time::{Duration, Instant};

use chunked_upload::{Config, Error, Outcome, RequestCounts, Store, Uploads};

fn memory_pair(lease: Duration) -> (Arc<InMemory>, S3Store, S3Store) {
    let memory = Arc::new(InMemory::new());
    let make = || {
        S3Store::builder(
            Arc::clone(&memory) as Arc<dyn ObjectStore>,
            Arc::clone(&memory) as _,
        )
        .lease_time(lease)
        .build()
        .expect("store")
    };
    let (a, b) = (make(), make());
    (memory, a, b)
}

/// A server killed while it held an upload's lease never released it: the state object still
/// names it. Another server waits while the lease runs, then takes it over (lease time plus
/// the 2 s allowed for clock skew), and the upload goes on.
#[test]
fn a_dead_holders_lease_is_taken_over_once_expired() {
    let lease = Duration::from_millis(600);
    let (memory, a, b) = memory_pair(lease);
    let file = common::FlowFile::new("taken-over.bin", common::bytes(10, 1), 10);
    let uploads_b = Uploads::new(Config::builder_with_store(b.clone()).build()).unwrap();
    let state = Path::from(".chunked-upload/k/state");
    // Server A holds the lease of upload `k`; what the bucket holds meanwhile is what a kill
    // leaves behind.
    let held = a.lock("k", Duration::from_secs(5)).unwrap();
    let (m, s) = (Arc::clone(&memory), state.clone());
    let frozen =
        s3_support::block_on(async move { m.get(&s).await.unwrap().bytes().await.unwrap() });
    drop(held);
    let (m, s) = (Arc::clone(&memory), state.clone());
    s3_support::block_on(async move { m.put(&s, frozen.into()).await.unwrap() });
    let killed_at = Instant::now();
    assert!(matches!(
        b.lock("k", Duration::from_millis(100)),
        Err(Error::Busy { .. })
    ));
    assert!(
        b.try_lock("k").unwrap().is_none(),
        "the sweep skips it meanwhile"
    );
    let lock = b.lock("k", Duration::from_secs(10)).expect("taken over");
    let waited = killed_at.elapsed();
    assert!(
        waited >= lease,
        "taken over after {waited:?}, before the lease ran out"
    );
    assert!(waited < lease + Duration::from_secs(4), "{waited:?}");
    drop(lock);
    // And the uploads of B work on it as on any other key.
    let mut request = file.upload(1, "s");
    assert!(matches!(
        uploads_b.save(&mut request).unwrap(),
        Outcome::Assembled { .. }
    ));
}

/// Holding a lease longer than its time (a long assembly) keeps it: the holder renews it.
#[test]
fn a_held_lease_is_renewed() {
    let lease = Duration::from_millis(600);
    let (_memory, a, b) = memory_pair(lease);
    let held = a.lock("k", Duration::from_secs(5)).unwrap();
    let until = Instant::now() + lease * 5;
    while Instant::now() < until {
        assert!(
            b.try_lock("k").unwrap().is_none(),
            "the lease lapsed while held"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held);
    assert!(b.try_lock("k").unwrap().is_some());
}

fn line(what: &str, n: f64, c: &RequestCounts) -> String {
    let f = |v: u64| v as f64 / n;
    format!(
        "{what:<28} total {:>6.2}  get {:>5.2}  put {:>5.2}  cond-put {:>5.2}  delete {:>5.2}  \
         list {:>4.2}  create-mpu {:>4.2}  upload-part {:>5.2}  complete {:>4.2}  copy {:>4.2}",
        f(c.total()),
        f(c.get + c.head),
        f(c.put),
        f(c.conditional_put),
        f(c.delete),
        f(c.list),
        f(c.create_multipart),
        f(c.upload_part),
        f(c.complete_multipart),
        f(c.copy),
    )
}

/// What an upload costs in requests to the bucket, through the core's sequencing (two locks
/// per chunk): a 64 MiB file in 1 MiB chunks and in 8 MiB chunks, parts of 8 MiB, one request
/// at a time. The figures go to stderr; the bounds are the module docs' table.
#[test]
fn requests_per_chunk_and_at_completion() {
    for chunk in [1u64 << 20, 8 << 20] {
        let (_memory, store, _) = memory_pair(Duration::from_secs(30));
        let uploads = Uploads::new(Config::builder_with_store(store.clone()).build()).unwrap();
        let file = common::FlowFile::new("costs.bin", common::bytes(64 << 20, 3), chunk);
        let chunks = file.total_chunks();
        let before = store.requests();
        for n in 1..chunks {
            let mut request = file.upload(n, "s");
            assert!(matches!(
                uploads.save(&mut request).unwrap(),
                Outcome::ChunkStored { .. }
            ));
        }
        let middle = store.requests();
        let mut request = file.upload(chunks, "s");
        let Outcome::Assembled { file: done, .. } = uploads.save(&mut request).unwrap() else {
            panic!("not assembled");
        };
        assert_eq!(done.size, 64 << 20);
        let after = store.requests();
        let per_chunk = middle.since(&before);
        let last = after.since(&middle);
        eprintln!("chunks of {} MiB:", chunk >> 20);
        eprintln!(
            "{}",
            line("  per chunk (average)", (chunks - 1) as f64, &per_chunk)
        );
        eprintln!("{}", line("  the completing chunk", 1.0, &last));
        // Each chunk: two lock/unlock pairs, its segments, its record, the state; parts as
        // they fill; never a listing.
        assert_eq!(per_chunk.list, 0, "no listing per chunk");
        let segments = chunk.div_ceil(8 << 20);
        let bound = 4 + 2 * 2 + segments + 2 + 2 * (segments + 1);
        assert!(
            per_chunk.total() <= bound * (chunks - 1),
            "{per_chunk:?} over {} chunks",
            chunks - 1
        );
        assert_eq!(last.complete_multipart, 1);
        assert_eq!(last.copy, 1);
        // One part per 8 MiB; a part the assembly finds still in flight in the background is
        // uploaded again (the same bytes).
        assert!(after.upload_part >= 8, "{after:?}");
        assert!(store.keys().unwrap().len() == 1);
    }
}

/// An assembly that fails half-way (here the pre-process hook fails once, after the multipart
/// upload was completed) is taken up by the next request, on another server, from where it
/// stopped: one published file, not a second one under a new name.
#[test]
fn an_interrupted_assembly_is_finished_by_the_next_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (memory, a, b) = memory_pair(Duration::from_secs(30));
    let failed_once = Arc::new(AtomicBool::new(false));
    let config = |store: S3Store| {
        let failed_once = Arc::clone(&failed_once);
        Config::builder_with_store(store)
            .on_conflict(chunked_upload::ConflictPolicy::Rename)
            .preprocess(
                move |_, r: &mut dyn std::io::Read, w: &mut dyn std::io::Write| {
                    if !failed_once.swap(true, Ordering::SeqCst) {
                        return Err(std::io::Error::other("the server went away"));
                    }
                    std::io::copy(r, w).map(|_| ())
                },
            )
            .build()
    };
    let (first, second) = (
        Uploads::new(config(a)).unwrap(),
        Uploads::new(config(b)).unwrap(),
    );
    let file = common::FlowFile::new("resumed.bin", common::bytes(3000, 4), 1000);
    for n in 1..3 {
        first.save(&mut file.upload(n, "s")).unwrap();
    }
    assert!(
        first.save(&mut file.upload(3, "s")).is_err(),
        "the hook failed"
    );
    let Outcome::Assembled { file: done, fresh } = second.finalize("s", &file.identifier).unwrap()
    else {
        panic!("not assembled")
    };
    assert!(fresh);
    assert_eq!(done.location, Location::Object("resumed.bin".into()));
    let (m, key) = (Arc::clone(&memory), Path::from("resumed.bin"));
    let bytes =
        s3_support::block_on(async move { m.get(&key).await.unwrap().bytes().await.unwrap() });
    assert!(bytes == file.data);
    let m = Arc::clone(&memory);
    let visible: Vec<String> = s3_support::block_on(async move {
        use futures_util::TryStreamExt;
        m.list(None)
            .map_ok(|o| o.location.to_string())
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    })
    .into_iter()
    .filter(|k| !k.starts_with('.'))
    .collect();
    assert_eq!(visible, ["resumed.bin"]);
}
