//! A whole tus request, headers and body, through `Tus::handle` on a local store in a temp
//! dir: the first line is `METHOD [id]`, then `name: value` lines, an empty line, the body. Any
//! input is answered (never a panic, never a 5xx), and an id the store never gave is not found.
#![no_main]

use std::sync::OnceLock;

use chunked_upload::tus::{Tus, TusRequest};
use chunked_upload::{Config, Uploads};
use libfuzzer_sys::fuzz_target;

fn tus() -> &'static Tus {
    static TUS: OnceLock<(tempfile::TempDir, Tus)> = OnceLock::new();
    &TUS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = Config::builder(dir.path().join("t"), dir.path().join("f"))
            .max_file_size(1 << 20)
            .max_chunks(10_000)
            .build();
        let tus = Tus::new(Uploads::new(config).expect("uploads"));
        (dir, tus)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut words = first.split_whitespace();
    let method = words.next().unwrap_or("HEAD");
    let id = words.next();
    let mut request = TusRequest::new(method, "/tus/", id).with_scope("fuzz");
    for line in lines {
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            request.header(name.trim(), line[colon + 1..].trim_ascii());
        }
    }
    let reply = tus().handle(&request, &mut &body[..]);
    let status = reply.status();
    assert!((200..500).contains(&status), "{status}: {reply:?}");
    if let Some(id) = id
        && method.eq_ignore_ascii_case("HEAD")
        && status == 200
    {
        // Only ids this store gave out exist; a fuzzer does not guess 128 random bits.
        panic!("a HEAD of an id never created answered 200: {id}");
    }
});
