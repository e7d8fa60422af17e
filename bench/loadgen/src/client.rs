//! The client side: a flow.js upload (chunks streamed from the file, N requests in flight) and
//! a plain single-request upload.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};

/// Bytes per read of the file (and so per body frame the client sends, at most).
const PIECE: usize = 256 * 1024;
/// Attempts per chunk request (flow.js retries a chunk after a server error or a dropped
/// connection; it gives up on other 4xx).
const ATTEMPTS: u32 = 4;
const BOUNDARY: &str = "----loadgen7MA4YWxkTrZu0gW";

/// A client for one server: keeps its cookies (the `cu_session` scope), never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(1800))
        .build()
        .expect("a reqwest client")
}

/// How a chunk travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `multipart/form-data`: the flow.js fields, then the part `file` (flow.js's default).
    Multipart,
    /// The chunk is the body; the parameters are in the query string (flow.js `method: 'octet'`).
    Raw,
}

/// One flow.js upload.
pub struct FlowUpload {
    /// Where chunks go: `http://127.0.0.1:PORT/upload`.
    pub url: String,
    /// More servers of the same uploads: chunk `i` goes to `[url, also...][i % n]`.
    pub also: Vec<String>,
    pub file: Arc<File>,
    pub total: u64,
    pub chunk_size: u64,
    pub concurrency: usize,
    pub identifier: String,
    pub filename: String,
    pub mode: Mode,
    /// Send flow.js's `GET` test request before each chunk (flow.js `testChunks: true`).
    pub test_chunks: bool,
}

/// What a flow.js upload took.
#[derive(Debug, Clone, Default)]
pub struct FlowOutcome {
    pub elapsed: Duration,
    /// The assembled file's name and size, from the response that said `assembled`.
    pub assembled: Option<(String, u64)>,
    /// Responses that said `assembled` (1 expected; more only if finals raced).
    pub assembled_responses: u32,
    pub requests: u64,
    pub retries: u64,
    /// How long the request that got `assembled` took (its chunk plus the assembly).
    pub final_request: Duration,
    /// Median and largest duration of the other chunk requests.
    pub chunk_p50: Duration,
    pub chunk_max: Duration,
}

/// A chunk: 0-based index and byte range.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    index: u64,
    start: u64,
    len: u64,
}

/// flow.js's chunking (`forceChunkSize: false`): `max(floor(total / size), 1)` chunks, the last
/// one taking the remainder.
fn chunks(total: u64, size: u64) -> Vec<Chunk> {
    let count = (total / size).max(1);
    (0..count)
        .map(|index| {
            let start = index * size;
            let end = if index + 1 == count {
                total
            } else {
                start + size
            };
            Chunk {
                index,
                start,
                len: end - start,
            }
        })
        .collect()
}

impl FlowUpload {
    fn url_for(&self, index: u64) -> &str {
        let n = self.also.len() as u64 + 1;
        match index % n {
            0 => &self.url,
            i => &self.also[i as usize - 1],
        }
    }

    fn params(&self, chunk: Chunk, count: u64) -> Vec<(&'static str, String)> {
        vec![
            ("flowChunkNumber", (chunk.index + 1).to_string()),
            ("flowChunkSize", self.chunk_size.to_string()),
            ("flowCurrentChunkSize", chunk.len.to_string()),
            ("flowTotalSize", self.total.to_string()),
            ("flowIdentifier", self.identifier.clone()),
            ("flowFilename", self.filename.clone()),
            ("flowRelativePath", self.filename.clone()),
            ("flowTotalChunks", count.to_string()),
        ]
    }

    /// flow.js's test request for the first chunk, before the timed part: it is absent (204),
    /// and the answer sets the session cookie, so the chunks that follow, in parallel, share
    /// one scope.
    pub async fn prime(&self, client: &reqwest::Client) -> io::Result<u16> {
        let all = chunks(self.total, self.chunk_size);
        let params = self.params(all[0], all.len() as u64);
        let r = client
            .get(&self.url)
            .query(&params)
            .send()
            .await
            .map_err(io::Error::other)?;
        Ok(r.status().as_u16())
    }

    /// Uploads every chunk, `concurrency` at once, and waits for the last answer.
    pub async fn run(&self, client: &reqwest::Client) -> io::Result<FlowOutcome> {
        let all = chunks(self.total, self.chunk_size);
        let count = all.len() as u64;
        let started = Instant::now();
        let mut results = stream::iter(
            all.into_iter()
                .map(|chunk| self.send_chunk(client, chunk, count)),
        )
        .buffer_unordered(self.concurrency.max(1));
        let mut outcome = FlowOutcome::default();
        let mut times = Vec::with_capacity(count as usize);
        while let Some(result) = results.next().await {
            let sent = result?;
            outcome.requests += sent.requests;
            outcome.retries += sent.retries;
            if sent.json["status"] == "assembled" {
                outcome.assembled_responses += 1;
                let name = sent.json["file"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let size = sent.json["file"]["size"].as_u64().unwrap_or(0);
                if outcome.assembled.is_none() || sent.json["fresh"] == true {
                    outcome.assembled = Some((name, size));
                    outcome.final_request = sent.took;
                }
            } else {
                times.push(sent.took);
            }
        }
        outcome.elapsed = started.elapsed();
        times.sort();
        outcome.chunk_p50 = times.get(times.len() / 2).copied().unwrap_or_default();
        outcome.chunk_max = times.last().copied().unwrap_or_default();
        Ok(outcome)
    }

    async fn send_chunk(
        &self,
        client: &reqwest::Client,
        chunk: Chunk,
        count: u64,
    ) -> io::Result<Sent> {
        let params = self.params(chunk, count);
        let mut requests = 0;
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            if self.test_chunks {
                requests += 1;
                let r = client
                    .get(self.url_for(chunk.index))
                    .query(&params)
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status().as_u16() == 200
                {
                    // Present already (a retry after a lost answer): flow.js skips it.
                    let json = serde_json::json!({"status": "chunk_present"});
                    return Ok(Sent {
                        json,
                        took: Duration::ZERO,
                        requests,
                        retries: u64::from(attempt),
                    });
                }
            }
            requests += 1;
            let took = Instant::now();
            let request = match self.mode {
                Mode::Multipart => {
                    let (head, tail) = multipart_frame(&params, &self.filename);
                    let length = head.len() as u64 + chunk.len + tail.len() as u64;
                    let body = stream::once(async move { Ok(head) })
                        .chain(file_slice(self.file.clone(), chunk.start, chunk.len))
                        .chain(stream::once(async move { Ok(tail) }));
                    client
                        .post(self.url_for(chunk.index))
                        .header(
                            CONTENT_TYPE,
                            format!("multipart/form-data; boundary={BOUNDARY}"),
                        )
                        .header(CONTENT_LENGTH, length)
                        .body(reqwest::Body::wrap_stream(body))
                }
                Mode::Raw => client
                    .post(self.url_for(chunk.index))
                    .query(&params)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, chunk.len)
                    .body(reqwest::Body::wrap_stream(file_slice(
                        self.file.clone(),
                        chunk.start,
                        chunk.len,
                    ))),
            };
            match request.send().await {
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    if status.is_success() {
                        let json = serde_json::from_str(&text).map_err(|e| {
                            io::Error::other(format!(
                                "chunk {}: answer is not JSON ({e}): {text}",
                                chunk.index + 1
                            ))
                        })?;
                        return Ok(Sent {
                            json,
                            took: took.elapsed(),
                            requests,
                            retries: u64::from(attempt),
                        });
                    }
                    last_error = format!("HTTP {status}: {text}");
                    // flow.js gives up on a permanent error; 5xx (and 408/429) are retried.
                    if status.is_client_error() && status != 408 && status != 429 {
                        break;
                    }
                }
                Err(e) => last_error = format!("{e:#}"),
            }
        }
        Err(io::Error::other(format!(
            "chunk {} failed: {last_error}",
            chunk.index + 1
        )))
    }
}

struct Sent {
    json: serde_json::Value,
    took: Duration,
    requests: u64,
    retries: u64,
}

/// The multipart text around a chunk's bytes: the flow.js fields and the file part's header,
/// then the closing boundary.
fn multipart_frame(params: &[(&str, String)], filename: &str) -> (Bytes, Bytes) {
    let mut head = String::new();
    for (name, value) in params {
        head.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    head.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    ));
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    (Bytes::from(head), Bytes::from(tail))
}

/// Reads `len` bytes of `file` from `start`, `PIECE` at a time (off the async threads).
pub fn file_slice(
    file: Arc<File>,
    start: u64,
    len: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    stream::unfold((start, len), move |(pos, left)| {
        let file = file.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(PIECE as u64) as usize;
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, pos).map(|()| Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
            match read {
                Ok(piece) => Some((Ok(piece), (pos + n as u64, left - n as u64))),
                Err(e) => Some((Err(e), (pos, 0))),
            }
        }
    })
}

/// A tus upload (as tus-js-client sends one with `chunkSize` set): `POST` to create it, then
/// `PATCH`es of `chunk_size` bytes one after the other, each streamed from the file.
pub struct TusUpload {
    /// The creation endpoint: `http://127.0.0.1:PORT/tus/`.
    pub endpoint: String,
    pub file: Arc<File>,
    pub total: u64,
    pub chunk_size: u64,
    pub filename: String,
}

impl TusUpload {
    /// Creates the upload and appends every byte; the timed part is all of it.
    pub async fn run(&self, client: &reqwest::Client) -> io::Result<FlowOutcome> {
        let started = Instant::now();
        let fail = |what: &str, status: reqwest::StatusCode, text: String| {
            io::Error::other(format!("{what}: HTTP {status}: {text}"))
        };
        let metadata = format!("filename {}", base64_encode(self.filename.as_bytes()));
        let created = client
            .post(&self.endpoint)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", self.total)
            .header("Upload-Metadata", metadata)
            .send()
            .await
            .map_err(io::Error::other)?;
        let status = created.status();
        let location = created
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status != 201 {
            return Err(fail(
                "create",
                status,
                created.text().await.unwrap_or_default(),
            ));
        }
        let location = location.ok_or_else(|| io::Error::other("create: no Location"))?;
        let origin_end = self.endpoint[8..]
            .find('/')
            .map_or(self.endpoint.len(), |i| i + 8);
        let url = format!("{}{location}", &self.endpoint[..origin_end]);
        let mut outcome = FlowOutcome {
            requests: 1,
            ..FlowOutcome::default()
        };
        let mut times = Vec::new();
        let mut offset = 0u64;
        while offset < self.total {
            let len = self.chunk_size.min(self.total - offset);
            let took = Instant::now();
            let r = client
                .patch(&url)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", offset)
                .header(CONTENT_TYPE, "application/offset+octet-stream")
                .header(CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(file_slice(
                    self.file.clone(),
                    offset,
                    len,
                )))
                .send()
                .await
                .map_err(io::Error::other)?;
            outcome.requests += 1;
            let status = r.status();
            let new_offset = r
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if status != 204 {
                return Err(fail("append", status, r.text().await.unwrap_or_default()));
            }
            if new_offset != Some(offset + len) {
                return Err(io::Error::other(format!(
                    "append at {offset}: Upload-Offset {new_offset:?}, expected {}",
                    offset + len
                )));
            }
            offset += len;
            if offset == self.total {
                outcome.final_request = took.elapsed();
                outcome.assembled = Some((self.filename.clone(), self.total));
                outcome.assembled_responses = 1;
            } else {
                times.push(took.elapsed());
            }
        }
        outcome.elapsed = started.elapsed();
        times.sort();
        outcome.chunk_p50 = times.get(times.len() / 2).copied().unwrap_or_default();
        outcome.chunk_max = times.last().copied().unwrap_or_default();
        Ok(outcome)
    }
}

/// Standard base64 with padding (for `Upload-Metadata`).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What the plain upload took.
#[derive(Debug, Clone, Default)]
pub struct PlainOutcome {
    pub elapsed: Duration,
    pub size: u64,
    /// The server's own account: seconds receiving and writing, seconds in fsync.
    pub write_s: f64,
    pub fsync_s: f64,
}

/// Uploads the whole file in one streaming `POST` with a `Content-Length`.
pub async fn plain_upload(
    client: &reqwest::Client,
    url: &str,
    file: Arc<File>,
    total: u64,
) -> io::Result<PlainOutcome> {
    let started = Instant::now();
    let r = client
        .post(url)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, total)
        .body(reqwest::Body::wrap_stream(file_slice(file, 0, total)))
        .send()
        .await
        .map_err(io::Error::other)?;
    let status = r.status();
    let text = r.text().await.map_err(io::Error::other)?;
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Err(io::Error::other(format!("HTTP {status}: {text}")));
    }
    let json: serde_json::Value = serde_json::from_str(&text).map_err(io::Error::other)?;
    Ok(PlainOutcome {
        elapsed,
        size: json["size"].as_u64().unwrap_or(0),
        write_s: json["write_s"].as_f64().unwrap_or(f64::NAN),
        fsync_s: json["fsync_s"].as_f64().unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"bench.bin"), "YmVuY2guYmlu");
    }

    #[test]
    fn flowjs_chunking() {
        let c = chunks(10, 3);
        assert_eq!(c.len(), 3);
        assert_eq!((c[2].start, c[2].len), (6, 4));
        let c = chunks(2, 3);
        assert_eq!((c.len(), c[0].len), (1, 2));
        let c = chunks(0, 3);
        assert_eq!((c.len(), c[0].len), (1, 0));
        let c = chunks(1 << 30, 1 << 20);
        assert_eq!(c.len(), 1024);
        assert!(c.iter().all(|c| c.len == 1 << 20));
    }
}
