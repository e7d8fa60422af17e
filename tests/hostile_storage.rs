//! Storage against unlucky and hostile clients, over HTTP against the example server (issue
//! 11): never "stored" for bytes that were not, expiry that never removes what a live request
//! writes, staged bodies that survive a slow form, and a temp dir full of planted symlinks.

mod common;
mod server_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use chunked_upload::default_hash_name;
use common::{FlowFile, bytes, visible_files};
use server_support::{
    Body, Options, Request, Server, age_staging_files, assert_same_bytes, flow_pairs, flow_post,
    new_session, resume, scratch, upload_request,
};

/// The upload folder of `file` in `session`'s scope, under the example server's temp dir.
fn upload_dir(dir: &Path, session: &str, file: &FlowFile) -> std::path::PathBuf {
    // The scope is the session id, the part of the signed cookie before the tag.
    let scope = session.split('.').next().expect("a session id");
    dir.join(".chunks")
        .join(default_hash_name(scope, &file.identifier))
}

/// A changed file sent under an identifier that was assembled before (flow.js derives it from
/// size and name) ends with the new bytes stored, published beside the old file under the
/// example server's conflict policy (`Rename`); sending the same file again creates nothing.
#[test]
fn a_changed_file_under_an_assembled_identifier_is_stored_anew() {
    let root = scratch("reupload-");
    let dir = root.path().join("files");
    let server = Server::start(&Options::new(&dir));
    let session = new_session();
    let old = FlowFile::new("report.pdf", bytes(2000, 1), 1000);
    let (assembled, posted) = resume(server.addr, &session, &old, Body::Multipart);
    assert_eq!(posted, 2);
    assert!(assembled[0].is_assembled(Some(true)));
    let new = FlowFile {
        data: bytes(2000, 2),
        ..old.clone()
    };
    assert_eq!(
        new.identifier, old.identifier,
        "flow.js would send the same id"
    );
    // The test GETs must not say "present" (flow.js would skip every chunk).
    let (assembled, posted) = resume(server.addr, &session, &new, Body::Octet);
    assert_eq!(posted, 2, "every chunk of the changed file is sent");
    assert!(
        assembled.iter().any(|a| a.is_assembled(Some(true))),
        "{assembled:?}"
    );
    assert_same_bytes(&dir.join("report.pdf"), &old.data, "the old file stays");
    assert_same_bytes(&dir.join("report (1).pdf"), &new.data, "the new bytes");
    // The same file once more: its bytes are recognised, no third file.
    let (assembled, posted) = resume(server.addr, &session, &new, Body::Multipart);
    assert_eq!(posted, 2);
    assert!(assembled.iter().all(|a| a.is_assembled(Some(false))));
    assert_eq!(visible_files(&dir), ["report (1).pdf", "report.pdf"]);
}

/// Two different files that the widget cannot tell apart (same name and size, so the same
/// flow.js identifier) sent in one session with their chunks interleaved: each second copy of a
/// chunk with other bytes is refused (409, which flow.js reports), so the first file assembles
/// unmixed and nothing is ever published that mixes both.
#[test]
fn files_sharing_an_identifier_are_refused_not_mixed() {
    let root = scratch("same-id-");
    let dir = root.path().join("files");
    let server = Server::start(&Options::new(&dir));
    let session = new_session();
    let a = FlowFile::new("data.csv", bytes(3000, 3), 1000);
    let b = FlowFile {
        data: bytes(3000, 4),
        ..a.clone()
    };
    for n in 1..=3 {
        let first = flow_post(server.addr, &session, &a, n, Body::Multipart);
        if n < 3 {
            first.expect(200);
        } else {
            assert!(first.is_assembled(Some(true)), "{first}");
        }
        if n < 3 {
            let refused = flow_post(server.addr, &session, &b, n, Body::Octet);
            refused.expect(409);
            assert!(refused.error().contains("two files share"), "{refused}");
        }
    }
    assert_eq!(visible_files(&dir), ["data.csv"]);
    assert_same_bytes(&dir.join("data.csv"), &a.data, "the first file, unmixed");
}

/// Plupload retries a one-chunk file whose answer it did not get: one file, not `name (1)`.
#[test]
fn plupload_retries_of_a_one_chunk_file_publish_one_file() {
    let root = scratch("plupload-retry-");
    let dir = root.path().join("files");
    let server = Server::start(&Options::new(&dir));
    let session = new_session();
    let data = bytes(5000, 5);
    let pairs = vec![
        ("name".to_owned(), "photo.jpg".to_owned()),
        ("chunk".to_owned(), "0".to_owned()),
        ("chunks".to_owned(), "1".to_owned()),
    ];
    for attempt in 0..3 {
        let answer = upload_request(&pairs, &data, Body::Multipart)
            .cookie(&session)
            .send(server.addr);
        assert!(
            answer.is_assembled(Some(attempt == 0)),
            "attempt {attempt}: {answer}"
        );
    }
    assert_eq!(visible_files(&dir), ["photo.jpg"]);
    assert_same_bytes(&dir.join("photo.jpg"), &data, "photo.jpg");
}

/// Sends `request` with its body in `pieces` writes `pause` apart, calling `midway` once half
/// of it is sent; returns the status and the body of the answer.
fn send_slowly(
    server: &Server,
    request: &Request,
    pieces: usize,
    pause: Duration,
    midway: impl FnOnce(),
) -> (u16, String) {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(&request.head(server.addr)).unwrap();
    let size = request.body.len().div_ceil(pieces).max(1);
    let mut midway = Some(midway);
    for (i, piece) in request.body.chunks(size).enumerate() {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
        if i + 1 >= pieces / 2
            && let Some(f) = midway.take()
        {
            f();
        }
        std::thread::sleep(pause);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Expiry of 1 s with a sweep every second, and a chunk that takes 4 s to arrive (above the
/// 408 rate): the sweep must leave the upload alone while the body is written, so the chunk
/// stored before it is still there and the upload completes.
#[test]
fn expiry_never_removes_an_upload_a_slow_body_is_writing() {
    let root = scratch("expiry-live-");
    let dir = root.path().join("files");
    let server = Server::start(
        &Options::new(&dir)
            .arg("--expire-after", 1)
            .arg("--sweep-interval", 1),
    );
    let session = new_session();
    let f = FlowFile::new("slow.bin", bytes(40 * 1024, 6), 20 * 1024);
    flow_post(server.addr, &session, &f, 1, Body::Multipart).expect(200);
    let request =
        upload_request(&flow_pairs(&f, 2), &f.data[f.range(2)], Body::Octet).cookie(&session);
    let (status, body) = send_slowly(&server, &request, 20, Duration::from_millis(200), || ());
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert!(body.contains("\"assembled\""), "{body}");
    assert_same_bytes(&dir.join("slow.bin"), &f.data, "slow.bin");
}

/// A multipart form whose file part comes first and whose fields come much later: the staged
/// part, aged past the sweep's grace period mid-request, survives the sweep (it is locked while
/// the request holds it), and the chunk is stored.
#[test]
fn a_staged_file_part_survives_a_long_gap_before_its_fields() {
    let root = scratch("staged-gap-");
    let dir = root.path().join("files");
    let server = Server::start(&Options::new(&dir).arg("--sweep-interval", 1));
    let session = new_session();
    let f = FlowFile::new("late-fields.bin", bytes(64 * 1024, 7), 64 * 1024);
    let request = upload_request(&flow_pairs(&f, 1), &f.data, Body::FileFirst).cookie(&session);
    let temp = dir.join(".chunks");
    let (status, body) = send_slowly(&server, &request, 10, Duration::from_millis(300), || {
        // The file part is staged: make it look old, then let two sweeps run.
        std::thread::sleep(Duration::from_millis(200));
        age_staging_files(&temp);
        std::thread::sleep(Duration::from_millis(2200));
    });
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_same_bytes(&dir.join("late-fields.bin"), &f.data, "late-fields.bin");
}

/// Symlinks planted where the store keeps or creates its files, each pointing at a victim file
/// outside: requests fail or go around them, and the victim is never written, truncated or
/// published.
#[cfg(unix)]
#[test]
fn planted_symlinks_are_never_followed() {
    use std::os::unix::fs::symlink;
    let root = scratch("symlinks-");
    let dir = root.path().join("files");
    let victim = root.path().join("victim.txt");
    let precious = b"precious, do not touch".to_vec();
    std::fs::write(&victim, &precious).unwrap();
    let server = Server::start(&Options::new(&dir));
    let session = new_session();
    let temp = dir.join(".chunks");
    // Places inside an upload's folder, planted before its first chunk.
    for (n, name) in ["lock", "upload.json", "ledger", "data", "claims/0"]
        .iter()
        .enumerate()
    {
        let f = FlowFile::new(&format!("planted-{n}.bin"), bytes(100, n as u64), 100);
        let up = upload_dir(&dir, &session, &f);
        let place = up.join(name);
        std::fs::create_dir_all(place.parent().unwrap()).unwrap();
        symlink(&victim, &place).unwrap();
        let answers: Vec<_> = (0..2)
            .map(|_| flow_post(server.addr, &session, &f, 1, Body::Multipart))
            .collect();
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            precious,
            "{name}: {answers:?}"
        );
        for a in &answers {
            assert!(a.status == 200 || a.status >= 500, "{name}: {a}");
            assert!(
                !a.text().contains(&*root.path().to_string_lossy()),
                "{name}: {a}"
            );
        }
    }
    // The upload's folder itself, and the folder of early file parts.
    let f = FlowFile::new("dir-link.bin", bytes(100, 9), 100);
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    symlink(&elsewhere, upload_dir(&dir, &session, &f)).unwrap();
    let answer = flow_post(server.addr, &session, &f, 1, Body::Octet);
    assert!(answer.status >= 500, "{answer}");
    let _ = std::fs::remove_dir_all(temp.join(".incoming"));
    symlink(&elsewhere, temp.join(".incoming")).unwrap();
    let g = FlowFile::new("incoming-link.bin", bytes(100, 10), 100);
    let answer = flow_post(server.addr, &session, &g, 1, Body::FileFirst);
    assert!(answer.status >= 500, "{answer}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through a linked folder"
    );
    // The destination: a symlink with the file's name is a name taken (Rename picks another).
    let h = FlowFile::new("dest-link.bin", bytes(100, 11), 100);
    std::fs::create_dir_all(&dir).unwrap();
    symlink(&victim, dir.join("dest-link.bin")).unwrap();
    flow_post(server.addr, &session, &h, 1, Body::Multipart).expect(200);
    assert_same_bytes(&dir.join("dest-link (1).bin"), &h.data, "published beside");
    assert_eq!(std::fs::read(&victim).unwrap(), precious);
}
