//! Plugging chunked-upload into a framework it has no adapter for.
//!
//! Implement [`ChunkRequest`] for your framework's request type: parameters by name, test or
//! upload, the caller's scope, and the body. Then call [`Uploads::save`] once per request and
//! answer with [`Reply`]. This example uses a framework-free request type and uploads a file in
//! chunks, out of order, the way flow.js would (a test request first, then the upload), and
//! prints the assembled path and its SHA-1.
//!
//! Run with `cargo run --example custom_adapter`.

use std::collections::HashMap;
use std::io::Cursor;

use chunked_upload::{ChunkBody, ChunkRequest, Config, ConflictPolicy, Outcome, Reply, Uploads};
use sha1::{Digest, Sha1};

/// Your framework's request, reduced to what matters here.
struct MyRequest {
    method: &'static str,
    query: HashMap<String, String>,
    session_id: String,
    body: Option<Vec<u8>>,
}

impl ChunkRequest for MyRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn is_test(&self) -> bool {
        self.method == "GET"
    }

    fn scope(&self) -> &str {
        &self.session_id
    }

    fn take_body(&mut self) -> Option<ChunkBody> {
        self.body.take().map(|b| ChunkBody::stream(Cursor::new(b)))
    }
}

/// What flow.js sends for 1-based chunk `number` of `data` split into `chunk_size` pieces.
fn flow_request(method: &'static str, data: &[u8], number: u64, chunk_size: u64) -> MyRequest {
    let size = data.len() as u64;
    let total = (size / chunk_size).max(1);
    let start = (number - 1) * chunk_size;
    let end = if number == total {
        size
    } else {
        start + chunk_size
    };
    let query = [
        ("flowChunkNumber", number.to_string()),
        ("flowChunkSize", chunk_size.to_string()),
        ("flowCurrentChunkSize", (end - start).to_string()),
        ("flowTotalSize", size.to_string()),
        ("flowIdentifier", format!("{size}-examplebin")),
        ("flowFilename", "example.bin".to_string()),
        ("flowRelativePath", "example.bin".to_string()),
        ("flowTotalChunks", total.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let body = (method == "POST").then(|| data[start as usize..end as usize].to_vec());
    MyRequest {
        method,
        query,
        session_id: "session-1234".into(),
        body,
    }
}

fn main() -> chunked_upload::Result<()> {
    let work = tempfile::tempdir().expect("temporary directory");
    let uploads = Uploads::new(
        Config::builder(work.path().join("chunks"), work.path().join("files"))
            .on_conflict(ConflictPolicy::Rename)
            .build(),
    )?;

    let data: Vec<u8> = (0..1_234_567u32).map(|i| (i * 31 % 251) as u8).collect();
    let chunk_size = 256 * 1024;
    let total = (data.len() as u64 / chunk_size).max(1);
    // Out of order, as parallel uploads arrive.
    let order: Vec<u64> = (1..=total).rev().collect();

    for number in order {
        // The test request: 204 means "send it".
        let mut test = flow_request("GET", &data, number, chunk_size);
        let reply = Reply::from_result(&uploads.save(&mut test));
        if reply.status == 200 {
            continue;
        }
        let mut upload = flow_request("POST", &data, number, chunk_size);
        let result = uploads.save(&mut upload);
        let reply = Reply::from_result(&result);
        println!("chunk {number}: {} {}", reply.status, reply.body);
        if let Ok(Outcome::Assembled { file, .. }) = result {
            let bytes = std::fs::read(file.path().expect("a local file")).expect("assembled file");
            println!("assembled {} ({} bytes)", file.location, file.size);
            println!("sha1 {}", hex::encode(Sha1::digest(&bytes)));
            assert_eq!(bytes, data);
        }
    }
    Ok(())
}
