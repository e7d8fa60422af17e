//! The store conformance suite against the local store, with a second instance over the same
//! folders (another process's view: the lock is flock, the ledger a file both read).

use std::sync::Arc;

use chunked_upload::conformance::store::Subject;
use chunked_upload::{LocalStore, Location};

fn subject() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let (temp, files) = (dir.join("temp"), dir.join("files"));
    let store = LocalStore::new(&temp, &files).expect("store");
    let another = LocalStore::new(&temp, &files).expect("store");
    Subject::new(Arc::new(store), |location: &Location| {
        std::fs::read(location.as_path().expect("a local path")).expect("read the published file")
    })
    .with_another(Arc::new(another))
}

chunked_upload::store_conformance_tests!(subject());
