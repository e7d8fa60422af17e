//! tus on the core, without HTTP: appends through the local store (every size, resumed, zero
//! copies at publication), the `on_create` hook's refusal, expiry (410, then 404, and the
//! sweep), the progress monitor, quotas, the pre-process hook and the conflict policy, and the
//! lock taken over across two instances sharing one directory (as two processes would).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chunked_upload::tus::{Tus, TusBegun, TusReply, TusRequest};
use chunked_upload::{
    Concat, Config, ConfigBuilder, ConflictPolicy, Error, Refusal, State, Uploads,
};

const OCTET: &[u8] = b"application/offset+octet-stream";

struct Fixture {
    _dir: tempfile::TempDir,
    files: std::path::PathBuf,
    temp: std::path::PathBuf,
    tus: Tus,
}

fn fixture(configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (temp, files) = (dir.path().join("temp"), dir.path().join("files"));
    let config = configure(Config::builder(&temp, &files)).build();
    let tus = Tus::new(Uploads::new(config).unwrap());
    Fixture {
        _dir: dir,
        files,
        temp,
        tus,
    }
}

fn request(method: &str, id: Option<&str>, scope: &str, headers: &[(&str, &[u8])]) -> TusRequest {
    let mut r = TusRequest::new(method, "/tus/", id)
        .with_scope(scope)
        .with_header("Tus-Resumable", b"1.0.0");
    for (name, value) in headers {
        r.header(name, value);
    }
    r
}

fn create(tus: &Tus, scope: &str, length: u64, name: &str) -> String {
    let metadata = format!("filename {}", base64_of(name));
    let reply = tus.handle(
        &request(
            "POST",
            None,
            scope,
            &[
                ("Upload-Length", length.to_string().as_bytes()),
                ("Upload-Metadata", metadata.as_bytes()),
            ],
        ),
        &mut io::empty(),
    );
    assert_eq!(reply.status(), 201, "{reply:?}");
    id_of(&reply)
}

fn id_of(reply: &TusReply) -> String {
    reply
        .header("Location")
        .and_then(|l| l.strip_prefix("/tus/"))
        .expect("a Location under /tus/")
        .to_owned()
}

fn append(tus: &Tus, scope: &str, id: &str, offset: u64, bytes: &[u8]) -> TusReply {
    tus.handle(
        &request(
            "PATCH",
            Some(id),
            scope,
            &[
                ("Upload-Offset", offset.to_string().as_bytes()),
                ("Content-Type", OCTET),
                ("Content-Length", bytes.len().to_string().as_bytes()),
            ],
        ),
        &mut &bytes[..],
    )
}

fn head(tus: &Tus, scope: &str, id: &str) -> TusReply {
    tus.handle(&request("HEAD", Some(id), scope, &[]), &mut io::empty())
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn appends_of_every_size_are_stored_in_place_and_published_without_a_copy() {
    let published = Arc::new(Mutex::new(Vec::new()));
    let hook = Arc::clone(&published);
    let f = fixture(move |c| {
        c.on_assembled(move |file| hook.lock().unwrap().push(file.upload.identifier.clone()))
    });
    let bytes = data(1 << 20, 7);
    let id = create(&f.tus, "s", bytes.len() as u64, "appends.bin");
    // Appends of 0, 1, odd, a batch, and the rest; the offset moves by each.
    let mut offset = 0usize;
    for len in [0usize, 1, 4095, 64 * 1024, 3, 300_000] {
        let reply = append(
            &f.tus,
            "s",
            &id,
            offset as u64,
            &bytes[offset..offset + len],
        );
        assert_eq!(reply.status(), 204, "{reply:?}");
        offset += len;
        assert_eq!(
            reply.header("Upload-Offset"),
            Some(offset.to_string().as_str())
        );
        assert!(reply.assembled().is_none());
        let h = head(&f.tus, "s", &id);
        assert_eq!(h.header("Upload-Offset"), Some(offset.to_string().as_str()));
    }
    let last = append(&f.tus, "s", &id, offset as u64, &bytes[offset..]);
    let file = last
        .assembled()
        .expect("the last append publishes the file");
    let path = file.path().unwrap().to_path_buf();
    assert_eq!(path, f.files.join("appends.bin"));
    assert!(std::fs::read(&path).unwrap() == bytes);
    assert_eq!(file.upload.metadata["filename"], "appends.bin");
    assert_eq!(file.upload.concat, Concat::Whole);
    // Exactly once: a retried last append publishes nothing more.
    let again = append(&f.tus, "s", &id, bytes.len() as u64, b"");
    assert_eq!(again.status(), 204);
    assert!(again.assembled().is_none());
    assert_eq!(std::fs::read_dir(&f.files).unwrap().count(), 1);
    // The same on_assembled hook as the widgets', once.
    assert_eq!(*published.lock().unwrap(), vec![id.clone()]);
    // The data file was published by a link: nothing of the upload's bytes is left in temp.
    let left: u64 = walk(&f.temp).iter().map(|m| m.len()).sum();
    assert!(left < 64 * 1024, "{left} bytes left in the temp dir");
}

fn walk(dir: &std::path::Path) -> Vec<std::fs::Metadata> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(meta);
        }
    }
    out
}

#[test]
fn the_on_create_hook_sees_the_description_and_its_refusal_is_answered() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let f = fixture(move |c| {
        c.on_create(move |upload| {
            log.lock().unwrap().push(upload.clone());
            if upload.filename.ends_with(".exe") {
                return Err(Refusal::new(403, "no executables"));
            }
            Ok(())
        })
    });
    let metadata = format!(
        "filename {},filetype {}",
        base64_of("setup.exe"),
        base64_of("application/x-msdownload")
    );
    let refused = f.tus.handle(
        &request(
            "POST",
            None,
            "s",
            &[
                ("Upload-Length", b"10"),
                ("Upload-Metadata", metadata.as_bytes()),
            ],
        ),
        &mut io::empty(),
    );
    assert_eq!(refused.status(), 403);
    assert!(refused.body().contains("no executables"), "{refused:?}");
    assert!(matches!(
        refused.error(),
        Some(Error::Rejected { status: 403, .. })
    ));
    // Nothing of it stays.
    assert_eq!(
        std::fs::read_dir(&f.temp)
            .unwrap()
            .filter(|e| !e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
            .count(),
        0
    );
    let id = create(&f.tus, "s", 3, "fine.txt");
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(
        (
            last.filename.as_str(),
            last.total_size,
            last.scope.as_str(),
            last.identifier.as_str()
        ),
        ("fine.txt", Some(3), "s", id.as_str())
    );
    assert_eq!(seen[0].metadata["filetype"], "application/x-msdownload");
}

#[test]
fn expired_uploads_answer_410_then_404_and_the_sweep_removes_them() {
    let f = fixture(|c| c.expire_after(Duration::from_millis(800)));
    let id = create(&f.tus, "s", 10, "expiring.bin");
    let h = head(&f.tus, "s", &id);
    let expires = httpdate::parse_http_date(h.header("Upload-Expires").unwrap()).unwrap();
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(left <= Duration::from_secs(2), "{left:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(head(&f.tus, "s", &id).status(), 410);
    assert_eq!(head(&f.tus, "s", &id).status(), 404);
    // The same expiry, by the sweep.
    let other = create(&f.tus, "s", 10, "swept.bin");
    std::thread::sleep(Duration::from_millis(1500));
    let report = f.tus.uploads().sweep().unwrap();
    assert!(report.uploads_expired >= 1, "{report:?}");
    assert_eq!(head(&f.tus, "s", &other).status(), 404);
}

#[test]
fn progress_and_quotas_count_tus_uploads() {
    let f = fixture(|c| c.max_uploads_per_scope(2));
    let bytes = data(5000, 1);
    let a = create(&f.tus, "s", 5000, "a.bin");
    let _b = create(&f.tus, "s", 10, "b.bin");
    let third = f.tus.handle(
        &request("POST", None, "s", &[("Upload-Length", b"10")]),
        &mut io::empty(),
    );
    assert_eq!(third.status(), 429, "{third:?}");
    append(&f.tus, "s", &a, 0, &bytes[..2000]);
    let progress = f.tus.uploads().progress().report("s", &a).expect("tracked");
    assert_eq!((progress.received, progress.size), (2000, Some(5000)));
    assert_eq!(progress.filename, "a.bin");
    assert!(f.tus.uploads().progress().report("other", &a).is_none());
    append(&f.tus, "s", &a, 2000, &bytes[2000..]);
    let progress = f.tus.uploads().progress().report("s", &a).unwrap();
    assert_eq!(progress.state, State::Done);
    // Finished, it no longer counts against the scope.
    let fourth = f.tus.handle(
        &request("POST", None, "s", &[("Upload-Length", b"10")]),
        &mut io::empty(),
    );
    assert_eq!(fourth.status(), 201, "{fourth:?}");
}

#[test]
fn the_preprocess_hook_and_the_conflict_policy_apply() {
    let f = fixture(|c| {
        c.on_conflict(ConflictPolicy::Refuse)
            .preprocess(|_, input, output| {
                let mut bytes = Vec::new();
                input.read_to_end(&mut bytes)?;
                output.write_all(&bytes.to_ascii_uppercase())
            })
    });
    let id = create(&f.tus, "s", 5, "same.txt");
    append(&f.tus, "s", &id, 0, b"he");
    let done = append(&f.tus, "s", &id, 2, b"llo");
    assert!(done.assembled().is_some(), "{done:?}");
    assert_eq!(std::fs::read(f.files.join("same.txt")).unwrap(), b"HELLO");
    // A second file of that name: refused at publication (409), and HEAD says so too.
    let second = create(&f.tus, "s", 2, "same.txt");
    let refused = append(&f.tus, "s", &second, 0, b"hi");
    assert_eq!(refused.status(), 409, "{refused:?}");
    assert_eq!(head(&f.tus, "s", &second).status(), 409);
    assert_eq!(std::fs::read(f.files.join("same.txt")).unwrap(), b"HELLO");
}

#[test]
fn a_second_instance_takes_the_lock_over_from_a_stalled_append() {
    let dir = tempfile::tempdir().unwrap();
    let instance = || {
        let config = Config::builder(dir.path().join("temp"), dir.path().join("files"))
            .lock_timeout(Duration::from_secs(20))
            .build();
        Tus::new(Uploads::new(config).unwrap())
    };
    let (first, second) = (instance(), instance());
    let bytes = data(100_000, 3);
    let id = create(&first, "s", bytes.len() as u64, "takeover.bin");
    let patch = request(
        "PATCH",
        Some(&id),
        "s",
        &[("Upload-Offset", b"0"), ("Content-Type", OCTET)],
    );
    let TusBegun::Receiving(mut stalled) = first.begin(&patch) else {
        panic!("an append")
    };
    stalled.write(&bytes[..30_000]).unwrap();
    let watch = stalled.release_watch();
    assert!(!watch.asked());
    // The second instance's HEAD waits for the lock, asking for it.
    let resumed = std::thread::spawn({
        let id = id.clone();
        move || {
            let started = Instant::now();
            let reply = head(&second, "s", &id);
            (reply, started.elapsed(), second)
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watch.asked() {
        assert!(
            Instant::now() < deadline,
            "the request for the lock never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let answer = stalled.interrupted(Error::TakenOver {
        identifier: id.clone(),
        kept: 0,
    });
    assert_eq!(answer.status(), 400);
    assert!(
        matches!(answer.error(), Some(Error::TakenOver { kept: 30_000, .. })),
        "{answer:?}"
    );
    let (reply, waited, second) = resumed.join().unwrap();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(reply.header("Upload-Offset"), Some("30000"), "{reply:?}");
    let done = append(&second, "s", &id, 30_000, &bytes[30_000..]);
    assert!(done.assembled().is_some(), "{done:?}");
    assert!(std::fs::read(dir.path().join("files/takeover.bin")).unwrap() == bytes);
}

#[test]
fn a_deferred_length_is_declared_once() {
    let f = fixture(|c| c.max_file_size(1000));
    let created = f.tus.handle(
        &request("POST", None, "s", &[("Upload-Defer-Length", b"1")]),
        &mut io::empty(),
    );
    let id = id_of(&created);
    assert_eq!(created.header("Upload-Defer-Length"), Some("1"));
    // More than the file size limit cannot be sent, declared or not.
    let over = append(&f.tus, "s", &id, 0, &[0; 1001]);
    assert_eq!(over.status(), 413, "{over:?}");
    append(&f.tus, "s", &id, 0, b"abc");
    let declare = |length: &[u8], offset: &[u8], body: &[u8]| {
        f.tus.handle(
            &request(
                "PATCH",
                Some(&id),
                "s",
                &[
                    ("Upload-Offset", offset),
                    ("Upload-Length", length),
                    ("Content-Type", OCTET),
                ],
            ),
            &mut &body[..],
        )
    };
    assert_eq!(declare(b"2", b"3", b"").status(), 400, "less than stored");
    assert_eq!(
        declare(b"5000", b"3", b"").status(),
        413,
        "over the file size limit"
    );
    assert_eq!(declare(b"6", b"3", b"de").status(), 204);
    assert_eq!(declare(b"7", b"5", b"f").status(), 400, "declared once");
    let done = append(&f.tus, "s", &id, 5, b"f");
    assert!(done.assembled().is_some(), "{done:?}");
    assert_eq!(std::fs::read(f.files.join(&id)).unwrap(), b"abcdef");
}
