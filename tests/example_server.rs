//! Runs `examples/server` as a real process on a free port and uploads a file through it the
//! way the page does (flow.js parameters, test GETs, multipart chunks, the session cookie), then
//! checks `/files`, the file's bytes, scope isolation, and a graceful shutdown on SIGINT.
//!
//! The example binary is the one cargo built next to this test (`cargo test` builds examples);
//! when it is missing (a `cargo test --test example_server` run), it is built first.

mod common;
mod server_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response, multipart};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

const CHUNK: usize = 64 * 1024;

/// The server process; killed when dropped (a failing test leaves nothing behind).
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        let mut child = Command::new(server_support::example_binary())
            .args(["--addr", "127.0.0.1:0", "--max-chunk-size", "1048576"])
            .arg("--dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the example server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server's first line");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn session_cookie(response: &Response) -> Option<String> {
    let header = response.headers().get(SET_COOKIE)?.to_str().ok()?;
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Lax"), "{header}");
    assert!(header.contains("Path=/"), "{header}");
    header.split(';').next().map(str::to_owned)
}

fn flow_params(n: usize, data: &[u8], total: usize, id: &str, name: &str) -> Vec<(String, String)> {
    let start = (n - 1) * CHUNK;
    let end = if n == total {
        data.len()
    } else {
        start + CHUNK
    };
    [
        ("flowChunkNumber", n.to_string()),
        ("flowChunkSize", CHUNK.to_string()),
        ("flowCurrentChunkSize", (end - start).to_string()),
        ("flowTotalSize", data.len().to_string()),
        ("flowIdentifier", id.to_owned()),
        ("flowFilename", name.to_owned()),
        ("flowRelativePath", name.to_owned()),
        ("flowTotalChunks", total.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[test]
fn example_server_uploads_lists_and_shuts_down() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let mut server = Server::start(dir.path());
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The page, with a fresh session cookie.
    let page = client.get(format!("{}/", server.url)).send().unwrap();
    assert_eq!(page.status(), 200);
    let cookie = session_cookie(&page).expect("a session cookie on the first response");
    assert!(page.text().unwrap().contains("app.js"));
    for (path, kind) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let r = client.get(format!("{}{path}", server.url)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        // Known sessions get no new cookie.
        let again = client
            .get(format!("{}{path}", server.url))
            .header(COOKIE, &cookie)
            .send()
            .unwrap();
        assert!(again.headers().get(SET_COOKIE).is_none(), "{path}");
    }

    // A 3.5-chunk file, as flow.js sends it: test GET, then the multipart chunk.
    let data: Vec<u8> = (0..CHUNK * 7 / 2).map(|i| (i * 31 % 251) as u8).collect();
    let (id, name) = ("229376-report.bin", "report.bin");
    let total = data.len() / CHUNK; // flow.js default: the last chunk holds the remainder
    let upload_url = format!("{}/upload", server.url);
    for n in 1..=total {
        let params = flow_params(n, &data, total, id, name);
        let test = client
            .get(&upload_url)
            .query(&params)
            .header(COOKIE, &cookie)
            .send()
            .unwrap();
        assert_eq!(test.status(), 204, "chunk {n} is not stored yet");
        let start = (n - 1) * CHUNK;
        let end = if n == total {
            data.len()
        } else {
            start + CHUNK
        };
        let mut form = multipart::Form::new();
        for (k, v) in &params {
            form = form.text(k.clone(), v.clone());
        }
        let part = multipart::Part::bytes(data[start..end].to_vec()).file_name("blob");
        let r = client
            .post(&upload_url)
            .multipart(form.part("file", part))
            .header(COOKIE, &cookie)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "chunk {n}");
        let json: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        let expected = if n == total {
            "assembled"
        } else {
            "chunk_stored"
        };
        assert_eq!(json["status"], expected, "chunk {n}: {json}");
    }

    // Another browser (no cookie, so a new scope) does not see that upload.
    let params = flow_params(1, &data, total, id, name);
    let stranger = client.get(&upload_url).query(&params).send().unwrap();
    assert_eq!(stranger.status(), 204);
    let other = session_cookie(&stranger).expect("a new session for a request without one");
    assert_ne!(other, cookie);

    // The file is listed and byte-identical; the chunk folder is hidden.
    let listing = client.get(format!("{}/files", server.url)).send().unwrap();
    assert_eq!(listing.status(), 200);
    let files: serde_json::Value = serde_json::from_str(&listing.text().unwrap()).unwrap();
    let files = files.as_array().expect("a JSON array");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["name"], name);
    assert_eq!(files[0]["size"], data.len());
    assert!(files[0]["modified"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), data);
    assert!(dir.path().join(".chunks").is_dir());

    // Ctrl-C (SIGINT) shuts the server down gracefully.
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGINT: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
