//! The 28 unit tests of flow-php-server (v2.0.0: ConfigTest, RequestTest, FileTest,
//! FustyRequestTest, UploaderTest), ported to this crate's API. Each test names its original.
//! Where this crate is deliberately stricter or organised differently, the comment says how.
//!
//! The original fixture: flowChunkNumber=1, flowChunkSize=1048576, flowCurrentChunkSize=10,
//! flowTotalSize=100, flowIdentifier=13632-prettifyjs, flowFilename=prettify.js,
//! flowRelativePath=home/prettify.js, flowTotalChunks=42.

mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chunked_upload::{
    ChunkBody, ChunkRequest, Config, Dialects, Error, Outcome, Params, RawRequest, RequestKind,
    Uploads, default_hash_name,
};
use common::{FlowFile, config, uploads};

const IDENTIFIER: &str = "13632-prettifyjs";
const SHA1_IDENTIFIER: &str = "08a8fbbe316bb15c8fc98d5e1ae001ace70ec285";

fn fixture() -> Params {
    [
        ("flowChunkNumber", "1"),
        ("flowChunkSize", "1048576"),
        ("flowCurrentChunkSize", "10"),
        ("flowTotalSize", "100"),
        ("flowIdentifier", IDENTIFIER),
        ("flowFilename", "prettify.js"),
        ("flowRelativePath", "home/prettify.js"),
        ("flowTotalChunks", "42"),
    ]
    .into_iter()
    .collect()
}

/// A file of `total` bytes uploaded with flow.js parameters in chunks of `chunk_size`
/// (flow.js geometry), with a given identifier.
fn flow_file(identifier: &str, data: &[u8], chunk_size: u64) -> FlowFile {
    FlowFile {
        identifier: identifier.to_owned(),
        ..FlowFile::new("prettify.js", data.to_vec(), chunk_size)
    }
}

// ---------------------------------------------------------------- ConfigTest

/// ConfigTest::testConfig_construct_config: the values given are the values returned.
#[test]
fn config_construct_config() {
    let config = Config::builder("/some/dir", "/dest")
        .delete_chunks_on_save(true)
        .hash_name(|_, id| format!("custom-{}", id.len()))
        .preprocess(|_, r, w| io::copy(r, w).map(|_| ()))
        .build();
    assert_eq!(config.temp_dir(), Some(Path::new("/some/dir")));
    assert!(config.delete_chunks_on_save());
    assert_eq!(config.storage_key("", "abc"), "custom-3");
    assert!(config.preprocess().is_some());
}

/// ConfigTest::testConfig_construct_default. Adapted: the temp dir is required (flow-php's
/// default `''` puts chunks at the filesystem root).
#[test]
fn config_construct_default() {
    let config = Config::builder("/tmp/x", "/dest").build();
    assert!(config.delete_chunks_on_save());
    assert_eq!(
        config.storage_key("", IDENTIFIER),
        default_hash_name("", IDENTIFIER)
    );
    assert!(config.preprocess().is_none());
}

/// ConfigTest::testConfig_setTempDir.
#[test]
fn config_set_temp_dir() {
    let config = Config::builder("/some/dir", "/dest").build();
    assert_eq!(config.temp_dir(), Some(Path::new("/some/dir")));
}

/// ConfigTest::testConfig_setHashNameCallback.
#[test]
fn config_set_hash_name_callback() {
    let config = Config::builder("/t", "/d")
        .hash_name(|scope, id| format!("{}{}", scope.len(), id.len()))
        .build();
    assert_eq!(config.storage_key("ab", "cde"), "23");
}

/// ConfigTest::testConfig_setPreprocessCallback.
#[test]
fn config_set_preprocess_callback() {
    let config = Config::builder("/t", "/d")
        .preprocess(|_, r, w| io::copy(r, w).map(|_| ()))
        .build();
    assert!(config.preprocess().is_some());
}

/// ConfigTest::testConfig_setDeleteChunksOnSave: `false` is honoured (the Python flowjs port
/// silently ignores it).
#[test]
fn config_set_delete_chunks_on_save() {
    let config = Config::builder("/t", "/d")
        .delete_chunks_on_save(false)
        .build();
    assert!(!config.delete_chunks_on_save());
}

/// ConfigTest::testConfig_hashNameCallback: sha1 of the identifier when there is no scope.
#[test]
fn config_hash_name_callback() {
    assert_eq!(default_hash_name("", IDENTIFIER), SHA1_IDENTIFIER);
}

// ---------------------------------------------------------------- RequestTest

fn assert_fixture_view(request: &RawRequest) {
    let info = Dialects::default().parse(request).unwrap();
    assert_eq!(info.filename, "prettify.js");
    assert_eq!(info.total_size, Some(100));
    assert_eq!(info.identifier, IDENTIFIER);
    assert_eq!(info.relative_path, "home/prettify.js");
    assert_eq!(info.total_chunks, 42);
    assert_eq!(info.chunk_size, Some(1048576));
    assert_eq!(info.chunk_number(), 1);
    assert_eq!(info.current_chunk_size, Some(10));
    assert!(!info.is_test);
}

/// RequestTest::testRequest_construct_withREQUEST: typed getters from request parameters.
/// Adapted: there is no `$_REQUEST`; the parameters come from a query string.
#[test]
fn request_construct_with_request() {
    let query = b"flowChunkNumber=1&flowChunkSize=1048576&flowCurrentChunkSize=10&flowTotalSize=100\
        &flowIdentifier=13632-prettifyjs&flowFilename=prettify.js&flowRelativePath=home%2Fprettify.js\
        &flowTotalChunks=42";
    let mut request = RawRequest::new(RequestKind::Upload, Params::from_urlencoded(query).unwrap());
    assert_fixture_view(&request);
    assert!(request.take_body().is_none(), "getFile() is null");
}

/// RequestTest::testRequest_construct_withCustomRequest.
#[test]
fn request_construct_with_custom_request() {
    assert_fixture_view(&RawRequest::new(RequestKind::Upload, fixture()));
}

/// RequestTest::testRequest_construct_withFILES: the request hands out its file.
#[test]
fn request_construct_with_files() {
    let mut request =
        RawRequest::new(RequestKind::Upload, fixture()).with_body(ChunkBody::bytes(vec![1; 10]));
    let Some(ChunkBody::Stream(mut r)) = request.take_body() else {
        panic!("no body")
    };
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).unwrap();
    assert_eq!(buf.len(), 10);
    assert!(request.take_body().is_none(), "taken once");
}

/// RequestTest::testRequest_construct_withCustFiles: a file already on disk as the body.
#[test]
fn request_construct_with_cust_files() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let path = tmp.path().to_path_buf();
    let mut request =
        RawRequest::new(RequestKind::Upload, fixture()).with_body(ChunkBody::File(tmp));
    let Some(ChunkBody::File(p)) = request.take_body() else {
        panic!("no file body")
    };
    assert_eq!(p.path(), path);
}

// ---------------------------------------------------------------- FileTest

/// FileTest::testFile_construct_withRequest: the storage name is sha1(identifier).
#[test]
fn file_construct_with_request() {
    let config = Config::builder("/t", "/d").build();
    assert_eq!(config.storage_key("", IDENTIFIER), SHA1_IDENTIFIER);
}

/// FileTest::testFile_construct_noRequest: the same name for a request built from raw
/// parameters (flow-php reads `$_REQUEST`; there is no implicit global request here, so the
/// parameters go through the dialect): its chunks live under sha1(identifier).
#[test]
fn file_construct_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let mut request =
        RawRequest::new(RequestKind::Upload, fixture()).with_body(ChunkBody::bytes(vec![0; 10]));
    // Fixture geometry: chunk 1 of 42 is a whole chunk (1 MiB) but declares 10 bytes.
    let err = uploads.save(&mut request).unwrap_err();
    assert!(matches!(err, Error::BadRequest { .. }), "{err}");
    let f = flow_file(IDENTIFIER, b"0123456789", 10);
    uploads.save(&mut f.upload(1, "")).unwrap();
    let stored = dir.path().join("chunks").join(SHA1_IDENTIFIER);
    assert!(stored.join("assembled.json").is_file());
}

/// FileTest::testFile_construct_getChunkPath. Adapted: one directory per upload named by the
/// same SHA-1, `<temp>/<sha1>/data`, every chunk written at its offset in it, instead of a file
/// per chunk `<temp>/<sha1>_<number>`.
#[test]
fn file_construct_get_chunk_path() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file(IDENTIFIER, b"0123456789abcdefghij", 10);
    uploads.save(&mut f.upload(2, "")).unwrap();
    let data = dir.path().join("chunks").join(SHA1_IDENTIFIER).join("data");
    assert_eq!(&fs::read(data).unwrap()[10..], b"abcdefghij");
}

/// FileTest::testFile_construct_checkChunk: absent before, present after.
/// Here through the test request, which is what checkChunk serves.
#[test]
fn file_construct_check_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file(IDENTIFIER, b"0123456789abcdefghij", 10);
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Err(Error::NoContent { chunk: 1, .. })
    ));
    uploads.save(&mut f.upload(1, "")).unwrap();
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Ok(Outcome::ChunkPresent { chunk: 1 })
    ));
}

/// FileTest::testFile_validateChunk: no file is refused; a body of the declared size is stored;
/// a body one byte short is refused; a failed upload (PHP's UPLOAD_ERR_EXTENSION; here a body
/// that fails to read) is refused.
#[test]
fn file_validate_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file(IDENTIFIER, b"0123456789abcdefghij", 10);

    let mut no_file = RawRequest::new(RequestKind::Upload, f.params(1));
    assert!(
        matches!(uploads.save(&mut no_file), Err(Error::BadRequest { field, .. }) if field == "body")
    );

    let mut short = RawRequest::new(RequestKind::Upload, f.params(1))
        .with_body(ChunkBody::bytes(b"012345678".to_vec()));
    assert!(
        matches!(uploads.save(&mut short), Err(Error::BadRequest { field, .. }) if field == "body")
    );

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("client went away"))
        }
    }
    let mut failing =
        RawRequest::new(RequestKind::Upload, f.params(1)).with_body(ChunkBody::stream(Failing));
    assert!(
        matches!(uploads.save(&mut failing), Err(Error::BadRequest { field, .. }) if field == "body")
    );

    let mut ok = f.upload(1, "");
    assert!(matches!(
        uploads.save(&mut ok),
        Ok(Outcome::ChunkStored { .. })
    ));
}

/// FileTest::testFile_validateFile: total size 10 in 3 chunks: incomplete until the third
/// chunk arrives. Adapted (stricter): a last chunk of the wrong size ('789' for 4 bytes) is
/// refused when it arrives instead of making validateFile false later; the second half of the
/// original (total size 9) is its own upload.
#[test]
fn file_validate_file() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file("validate", b"1234567890", 3); // chunks '123', '456', '7890'
    assert_eq!(f.total_chunks(), 3);
    assert!(matches!(
        uploads.save(&mut f.upload(1, "")),
        Ok(Outcome::ChunkStored {
            chunks_present: 1,
            ..
        })
    ));
    assert!(matches!(
        uploads.save(&mut f.upload(2, "")),
        Ok(Outcome::ChunkStored {
            chunks_present: 2,
            ..
        })
    ));

    let mut wrong_last = RawRequest::new(RequestKind::Upload, {
        let mut p = f.params(3);
        p.insert("flowCurrentChunkSize", "3").unwrap();
        p
    })
    .with_body(ChunkBody::bytes(b"789".to_vec()));
    assert!(
        matches!(uploads.save(&mut wrong_last), Err(Error::BadRequest { field, .. }) if field == "flowCurrentChunkSize")
    );

    let Outcome::Assembled { file, fresh: true } = uploads.save(&mut f.upload(3, "")).unwrap()
    else {
        panic!("not assembled")
    };
    assert_eq!(fs::read(file.path().unwrap()).unwrap(), b"1234567890");

    let nine = FlowFile {
        name: "nine.txt".into(),
        ..flow_file("nine", b"123456789", 3)
    };
    for n in 1..=3 {
        uploads.save(&mut nine.upload(n, "")).unwrap();
    }
    assert_eq!(
        fs::read(dir.path().join("files/nine.txt")).unwrap(),
        b"123456789"
    );
}

/// FileTest::testFile_deleteChunks: chunks are deleted after assembly, other files in the
/// upload's directory are kept. Adapted: chunks are deleted by the assembly (flow-php's
/// `deleteChunks()` is called by `save()` too), never for a partial upload.
#[test]
fn file_delete_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file(IDENTIFIER, b"0123456789abcdefghij", 10);
    uploads.save(&mut f.upload(1, "")).unwrap();
    let upload_dir = dir.path().join("chunks").join(SHA1_IDENTIFIER);
    fs::write(upload_dir.join("other"), b"keep me").unwrap();
    assert!(upload_dir.join("data").exists());
    uploads.save(&mut f.upload(2, "")).unwrap();
    assert!(!upload_dir.join("data").exists());
    assert!(upload_dir.join("other").exists());
}

/// FileTest::testFile_saveChunk: a body already on disk is stored by a kernel copy into place;
/// the original file is gone afterwards and the chunk's place holds its bytes.
#[test]
fn file_save_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file(IDENTIFIER, b"1234567890abcdefghij", 10);
    let mut body = uploads.incoming_file().unwrap();
    body.write_all(b"1234567890").unwrap();
    let body_path = body.path().to_path_buf();
    let mut request =
        RawRequest::new(RequestKind::Upload, f.params(1)).with_body(ChunkBody::File(body));
    uploads.save(&mut request).unwrap();
    assert!(!body_path.exists(), "the staged body is removed");
    let data = dir.path().join("chunks").join(SHA1_IDENTIFIER).join("data");
    assert_eq!(&fs::read(data).unwrap()[..10], b"1234567890");
}

/// FileTest::testFile_save: three chunks assemble into a 10-byte file. Adapted (stricter): the
/// original's chunks '0123', '456', '789' do not follow any widget's geometry (the first chunk
/// is the biggest); here the chunks are '012', '345', '6789' (flow.js, chunk size 3).
#[test]
fn file_save() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file("save", b"0123456789", 3);
    for n in 1..=3 {
        uploads.save(&mut f.upload(n, "")).unwrap();
    }
    let dest = dir.path().join("files/prettify.js");
    assert_eq!(fs::metadata(&dest).unwrap().len(), 10);
}

/// FileTest::testFile_save_lock: while another holder has the upload's lock, the completing
/// request cannot assemble. Adapted: flow-php fails at once with FileLockException on the
/// destination's lock; here the lock is per upload, waiting is bounded by `lock_timeout`, and
/// the answer is `Error::Busy` (503, retry); once the holder lets go the retry assembles.
#[test]
fn file_save_lock() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .lock_timeout(Duration::from_millis(100))
            .build(),
    )
    .unwrap();
    let f = flow_file("locked", b"0123456789", 5);
    uploads.save(&mut f.upload(1, "")).unwrap();
    let lock_path = dir
        .path()
        .join("chunks")
        .join(default_hash_name("", "locked"))
        .join("lock");
    let holder = fs::File::open(&lock_path).unwrap();
    holder.lock().unwrap(); // another process or request
    let err = uploads.save(&mut f.upload(2, "")).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert_eq!(err.status(), 503);
    assert!(!dir.path().join("files/prettify.js").exists());
    drop(holder);
    assert!(matches!(
        uploads.save(&mut f.upload(2, "")),
        Ok(Outcome::Assembled { fresh: true, .. })
    ));
}

/// FileTest::testFile_save_FileOpenException: a destination that cannot be opened is an I/O
/// error naming it. Adapted: the chunks are kept, so the upload completes once the destination
/// is writable.
#[test]
fn file_save_file_open_exception() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"").unwrap();
    let dest_dir = Arc::new(std::sync::Mutex::new(blocker.join("sub")));
    let d = Arc::clone(&dest_dir);
    let uploads = Uploads::new(
        config(dir.path())
            .destination(move |info| d.lock().unwrap().join(&info.filename))
            .build(),
    )
    .unwrap();
    let f = flow_file("open-fail", b"0123456789", 10);
    let err = uploads.save(&mut f.upload(1, "")).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.starts_with(&blocker)),
        "{err}"
    );
    assert_eq!(err.status(), 500);
    *dest_dir.lock().unwrap() = dir.path().join("ok");
    // The widget retries the chunk: the upload completes.
    let Outcome::Assembled { file, .. } = uploads.save(&mut f.upload(1, "")).unwrap() else {
        panic!()
    };
    assert_eq!(fs::read(file.path().unwrap()).unwrap(), b"0123456789");
}

/// FileTest::testFile_save_chunk_FileOpenException: stored bytes missing at assembly time.
/// Adapted (stricter): flow-php opens the destination, then fails on the missing chunk; here the
/// upload's data file is removed behind the store's back, so what its ledger says cannot be
/// trusted: the upload starts over (the test requests say every chunk is absent), nothing
/// appears at the destination, and re-sending the chunks completes it.
#[test]
fn file_save_chunk_file_open_exception() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = flow_file("missing", b"0123456789ab", 4);
    uploads.save(&mut f.upload(1, "")).unwrap();
    uploads.save(&mut f.upload(2, "")).unwrap();
    let upload_dir = dir
        .path()
        .join("chunks")
        .join(default_hash_name("", "missing"));
    fs::remove_file(upload_dir.join("data")).unwrap(); // lost behind the ledger's back
    assert!(matches!(
        uploads.save(&mut f.upload(3, "")),
        Ok(Outcome::ChunkStored {
            chunks_present: 1,
            ..
        })
    ));
    assert!(common::visible_files(&dir.path().join("files")).is_empty());
    for n in [1, 2] {
        assert!(matches!(
            uploads.save(&mut f.test(n, "")),
            Err(Error::NoContent { .. })
        ));
    }
    uploads.save(&mut f.upload(1, "")).unwrap();
    let Outcome::Assembled { file, .. } = uploads.save(&mut f.upload(2, "")).unwrap() else {
        panic!()
    };
    assert_eq!(fs::read(file.path().unwrap()).unwrap(), b"0123456789ab");
}

/// FileTest::testFile_save_preProcess: the hook runs on every chunk during assembly.
#[test]
fn file_save_pre_process() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let uploads = Uploads::new(
        config(dir.path())
            .preprocess(move |_, r, w| {
                c.fetch_add(1, Ordering::SeqCst);
                io::copy(r, w).map(|_| ())
            })
            .build(),
    )
    .unwrap();
    let f = flow_file("pre", b"1234567890", 10);
    let Outcome::Assembled { file, .. } = uploads.save(&mut f.upload(1, "")).unwrap() else {
        panic!()
    };
    assert_eq!(file.size, 10);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- FustyRequestTest

fn fusty_params() -> Params {
    [
        ("flowIdentifier", IDENTIFIER),
        ("flowFilename", "prettify.js"),
        ("flowRelativePath", "home/prettify.js"),
    ]
    .into_iter()
    .collect()
}

/// FustyRequestTest::testFustyRequest_construct: a request without sizes but with a file is a
/// one-chunk upload; names pass through. Adapted: the sizes stay undeclared (`None`) and are
/// learnt from the body instead of being copied from `$_FILES`.
#[test]
fn fusty_request_construct() {
    let request = RawRequest::new(RequestKind::Upload, fusty_params());
    let info = Dialects::default().parse(&request).unwrap();
    assert_eq!((info.total_chunks, info.chunk_number()), (1, 1));
    assert_eq!(info.filename, "prettify.js");
    assert_eq!(info.identifier, IDENTIFIER);
    assert_eq!(info.relative_path, "home/prettify.js");
    assert_eq!(info.total_size, None);
}

/// FustyRequestTest::testFustyRequest_ValidateUpload: the whole file in one request is stored
/// and assembled: 10 bytes.
#[test]
fn fusty_request_validate_upload() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let mut body = uploads.incoming_file().unwrap();
    body.write_all(b"1234567890").unwrap();
    let mut request =
        RawRequest::new(RequestKind::Upload, fusty_params()).with_body(ChunkBody::File(body));
    let Outcome::Assembled { file, fresh: true } = uploads.save(&mut request).unwrap() else {
        panic!()
    };
    assert_eq!(file.size, 10);
    assert_eq!(
        fs::read(dir.path().join("files/prettify.js")).unwrap(),
        b"1234567890"
    );
}

// ---------------------------------------------------------------- UploaderTest

/// Sets the modification time of everything in an upload's directory to `when`.
fn age_upload(dir: &Path, when: SystemTime) {
    fn walk(path: &Path, when: SystemTime) {
        if path.is_dir() {
            for e in fs::read_dir(path).unwrap().flatten() {
                walk(&e.path(), when);
            }
        }
        let f = fs::File::open(path).unwrap();
        f.set_modified(when).unwrap();
    }
    walk(dir, when);
}

fn upload_dir(uploads: &Uploads, id: &str) -> PathBuf {
    uploads.temp_dir().unwrap().join(default_hash_name("", id))
}

/// UploaderTest::testUploader_pruneChunks: with a 30 s expiry, what is 31 s idle goes, what is
/// 30 s idle stays (strictly greater), the fresh one stays. Adapted: judged per upload by its
/// last activity, not per chunk file; and files that are not uploads (flow-php deletes any old
/// file in the folder) are left alone.
#[test]
fn uploader_prune_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let now = SystemTime::now();
    for id in ["fresh", "file31", "random30"] {
        let f = flow_file(id, b"0123456789", 5);
        uploads.save(&mut f.upload(1, "")).unwrap();
    }
    age_upload(
        &upload_dir(&uploads, "file31"),
        now - Duration::from_secs(31),
    );
    age_upload(
        &upload_dir(&uploads, "random30"),
        now - Duration::from_secs(29),
    );
    let stray = uploads.temp_dir().unwrap().join("not-an-upload.txt");
    fs::write(&stray, b"x").unwrap();
    fs::File::open(&stray)
        .unwrap()
        .set_modified(now - Duration::from_secs(3600))
        .unwrap();

    let report = uploads.sweep_idle(Duration::from_secs(30)).unwrap();
    assert_eq!(report.uploads_expired, 1);
    assert!(!upload_dir(&uploads, "file31").exists());
    assert!(upload_dir(&uploads, "random30").exists());
    assert!(upload_dir(&uploads, "fresh").exists());
    assert!(stray.exists());
}

/// UploaderTest::testUploader_exception: flow-php throws for a folder that does not exist.
/// Adapted: a temp dir that does not exist holds nothing to expire; the sweep reports nothing.
#[test]
fn uploader_exception() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    fs::remove_dir_all(uploads.temp_dir().unwrap()).unwrap();
    assert_eq!(uploads.sweep().unwrap(), Default::default());
}
