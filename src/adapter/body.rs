//! What the adapters share, and nothing framework-specific: the [`Collector`] that gathers a
//! request's parameters and body and makes the core's calls, and the pump that writes an async
//! body to disk in batches on blocking threads, so that no thread ever waits on the network
//! (a client that stalls mid-body costs a file descriptor and a little memory, not a thread).
//!
//! An adapter translates its request into [`Collector::begin`], feeds it the form fields and
//! parts it parses (with its framework's multipart parser), and answers with
//! [`Reply`](crate::Reply).

use std::fmt;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tempfile::NamedTempFile;

use crate::{
    Begun, ChunkBody, Error, FORM_OVERHEAD, IncomingChunk, Limit, MAX_PARAM_LEN, Outcome, Params,
    Problem, RawRequest, RequestKind, Result, Uploads,
};

/// Most form fields one request may carry (widgets send about ten).
const MAX_FIELDS: usize = 256;
/// Bytes gathered from the body before they are written in one go on a blocking thread. One
/// batch is written while the next is read, so a request holds at most about two batches of
/// memory, whatever the chunk size.
const BATCH: usize = 64 * 1024;
/// A body must send at least [`MIN_WINDOW_BYTES`] in every window of this much time spent
/// waiting for it, or the request is abandoned (a client that stalls or trickles would hold a
/// body slot, and its memory, forever).
const RATE_WINDOW: Duration = Duration::from_secs(30);
/// See [`RATE_WINDOW`]: 16 KiB per 30 s, about 550 bytes per second.
const MIN_WINDOW_BYTES: u64 = 16 * 1024;

/// The error for a request body over [`Uploads::max_request_body`] (found while reading it).
pub(crate) fn too_large(value: u64, limit: u64) -> Error {
    Error::TooLarge {
        limit_kind: Limit::RequestBody,
        value,
        limit,
    }
}

/// The error for a body the framework could not read (a broken connection, malformed framing).
pub(crate) fn unreadable(err: impl fmt::Display) -> Error {
    Error::bad("body", format!("could not be read: {err}"))
}

/// How the body of a request is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body is read (test requests).
    None,
    /// `multipart/form-data`: fields, then (usually) the file part.
    Multipart,
    /// `application/x-www-form-urlencoded`: parameters only.
    Form,
    /// Anything else: the body is the chunk itself (flow.js / resumable.js `method: 'octet'`).
    Raw,
}

impl BodyKind {
    fn of(kind: RequestKind, content_type: Option<&str>) -> BodyKind {
        if kind == RequestKind::Test {
            return BodyKind::None;
        }
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("multipart/form-data") => BodyKind::Multipart,
            Some("application/x-www-form-urlencoded") => BodyKind::Form,
            _ => BodyKind::Raw,
        }
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The upload route: a test (`GET`) or a chunk (`POST`, `PUT`, `PATCH`).
    Save,
    /// The "done" route: finalize the upload the parameters name.
    Finalize,
}

/// What a request carries, as any framework exposes it.
pub(crate) struct Head<'a> {
    pub(crate) method: &'a str,
    /// The query string, without `?`.
    pub(crate) query: &'a str,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) content_length: Option<u64>,
}

/// One request on its way to the core: parameters so far, the scope, a body staged on disk,
/// or the outcome once the chunk is saved.
pub(crate) struct Collector {
    uploads: Uploads,
    purpose: Purpose,
    request: RawRequest,
    staged: Option<NamedTempFile>,
    saved: Option<Outcome>,
    limit: u64,
    received: u64,
    /// Parts of the form so far, and text fields among them.
    fields: usize,
    texts: usize,
}

impl Collector {
    /// Starts a request: method, query string, and the body's kind and declared length.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a method that is not an upload method or a query string that is
    /// not UTF-8; [`Error::TooLarge`] when `Content-Length` is over the body limit.
    pub(crate) fn begin(
        uploads: &Uploads,
        purpose: Purpose,
        head: &Head<'_>,
        scope: String,
    ) -> Result<(Collector, BodyKind)> {
        let kind = match (purpose, head.method) {
            (Purpose::Finalize, _) | (Purpose::Save, "POST" | "PUT" | "PATCH") => {
                RequestKind::Upload
            }
            (Purpose::Save, "GET") => RequestKind::Test,
            (Purpose::Save, other) => {
                return Err(Error::bad(
                    "method",
                    format!(
                        "{other} is not an upload method (GET tests a chunk, POST uploads one)"
                    ),
                ));
            }
        };
        let body = BodyKind::of(kind, head.content_type);
        if body != BodyKind::None
            && let Some(length) = head.content_length
        {
            uploads.check_content_length(length)?;
        }
        let params = Params::from_urlencoded(head.query.as_bytes())?;
        let collector = Collector {
            uploads: uploads.clone(),
            purpose,
            request: RawRequest::new(kind, params).with_scope(scope),
            staged: None,
            saved: None,
            limit: uploads.max_request_body(),
            received: 0,
            fields: 0,
            texts: 0,
        };
        Ok((collector, body))
    }

    /// One multipart field: a text field joins the parameters; the file part is streamed into
    /// `save` when the fields before it make a valid request, refused unread when they make an
    /// invalid one, and staged on disk when parameters may still follow it: when it is the
    /// form's first part (widgets send their fields first; a form that starts with the file
    /// may have all its fields after it, and a bare file part is itself a valid one-request
    /// upload), or when the request lacks a parameter. Fields after a saved chunk are skipped
    /// unread (the adapter still reads the form to its end, so the connection stays usable).
    ///
    /// # Errors
    /// The request is answered with this error; read no further.
    pub(crate) async fn field<S>(
        &mut self,
        name: &str,
        filename: Option<&str>,
        part: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        self.fields += 1;
        if self.fields > MAX_FIELDS {
            return Err(Error::bad("form", format!("more than {MAX_FIELDS} fields")));
        }
        if self.saved.is_some() {
            return Ok(());
        }
        if !self.uploads.config().dialects().is_file_field(name) {
            self.texts += 1;
            return self.text(name, part).await;
        }
        if self.purpose == Purpose::Finalize || self.staged.is_some() {
            // A finalize request needs no bytes, and a second file part is not a chunk.
            return Ok(());
        }
        if let Some(filename) = filename {
            self.request.set_part_filename(filename);
        }
        if self.texts == 0 {
            return self.stage(part).await;
        }
        match self.uploads.chunk_info(&self.request) {
            Ok(_) => {
                self.saved = Some(self.stream_into_save(part).await?);
                Ok(())
            }
            Err(e) if may_still_arrive(&e, self.request.params()) => self.stage(part).await,
            Err(e) => Err(e),
        }
    }

    /// An `application/x-www-form-urlencoded` body: its pairs join the parameters.
    pub(crate) async fn form<S>(mut self, body: S) -> Result<Collector>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let mut form = Vec::new();
        let mut body = pin!(body);
        while let Some(piece) = body.next().await {
            let piece = piece?;
            if (form.len() + piece.len()) as u64 > FORM_OVERHEAD {
                return Err(too_large((form.len() + piece.len()) as u64, FORM_OVERHEAD));
            }
            form.extend_from_slice(&piece);
        }
        self.request.params_mut().extend_from_urlencoded(&form)?;
        Ok(self)
    }

    /// A raw body (octet mode): validated from the query string first, refused unread when
    /// wrong, else streamed into `save`. A finalize request ignores it.
    pub(crate) async fn raw<S>(mut self, body: S) -> Result<Outcome>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        if self.purpose == Purpose::Finalize {
            return self.finish().await;
        }
        self.uploads.chunk_info(&self.request)?;
        self.stream_into_save(body).await
    }

    /// The form is read: the outcome of the chunk already saved, or save (with the staged body,
    /// if any), or finalize.
    pub(crate) async fn finish(self) -> Result<Outcome> {
        let Collector {
            uploads,
            purpose,
            mut request,
            staged,
            saved,
            ..
        } = self;
        if let Some(outcome) = saved {
            return Ok(outcome);
        }
        if let Some(file) = staged {
            request.set_body(ChunkBody::File(file));
        }
        blocking(move || match purpose {
            Purpose::Save => uploads.save(&mut request),
            Purpose::Finalize => uploads.finalize_request(&request),
        })
        .await
    }

    fn count(&mut self, bytes: usize) -> Result<()> {
        self.received = self.received.saturating_add(bytes as u64);
        if self.received > self.limit {
            return Err(too_large(self.received, self.limit));
        }
        Ok(())
    }

    /// Reads a text field, keeping at most one byte more than a parameter may have (the core
    /// then refuses it with its usual message).
    async fn text<S>(&mut self, name: &str, part: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let mut value = Vec::new();
        let mut part = pin!(part);
        while let Some(piece) = part.next().await {
            let piece = piece?;
            self.count(piece.len())?;
            let room = (MAX_PARAM_LEN + 1).saturating_sub(value.len());
            value.extend_from_slice(&piece[..piece.len().min(room)]);
            if value.len() > MAX_PARAM_LEN {
                break;
            }
        }
        self.request.params_mut().insert_bytes(name, value)
    }

    /// Starts the upload in the core, writes the body to its chunk as it arrives, then finishes
    /// it; each step on a blocking thread, none while waiting for the network.
    async fn stream_into_save<S>(&mut self, body: S) -> Result<Outcome>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let mut request = std::mem::replace(
            &mut self.request,
            RawRequest::new(RequestKind::Upload, Params::new()),
        );
        let uploads = self.uploads.clone();
        let begun = blocking(move || uploads.begin(&mut request)).await?;
        let chunk = match begun {
            Begun::Done(outcome) => return Ok(outcome),
            Begun::Receiving(chunk) => *chunk,
        };
        let chunk = pump(&self.uploads, chunk, body, &mut self.received, self.limit)
            .await
            .map_err(|cut| cut.error)?;
        blocking(move || chunk.finish()).await
    }

    /// Streams a file part that came before its parameters into a staging file in the temp dir.
    async fn stage<S>(&mut self, part: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let uploads = self.uploads.clone();
        let file = blocking(move || uploads.incoming_file()).await?;
        let file = pump(&self.uploads, file, part, &mut self.received, self.limit)
            .await
            .map_err(|cut| cut.error)?;
        self.staged = Some(file);
        Ok(())
    }
}

/// Where [`pump`] writes: a chunk being received, a staging file, a tus append.
pub(super) trait Sink: Send + 'static {
    fn put(&mut self, bytes: &[u8]) -> Result<()>;
}

impl Sink for IncomingChunk {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(bytes)
    }
}

impl Sink for NamedTempFile {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_all(bytes)
            .map_err(|e| Error::io("write the request body to", self.path(), e))
    }
}

/// A body [`pump`] did not read to its end: why, and the sink with every byte written before
/// (a tus append keeps them), unless the task writing to it failed.
pub(super) struct Cut<T> {
    pub(super) error: Error,
    pub(super) sink: Option<T>,
}

impl<T> fmt::Debug for Cut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cut")
            .field("error", &self.error)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

/// Writes `body` to `sink` in batches of [`BATCH`] bytes on blocking threads, one batch written
/// while the next is read, counting bytes against `limit`. At most
/// [`max_concurrent_bodies`](crate::ConfigBuilder::max_concurrent_bodies) bodies stream past
/// their first batch at once (the others wait with that batch, their further bytes held by the
/// kernel's socket buffers), and a body slower than [`MIN_WINDOW_BYTES`] per [`RATE_WINDOW`]
/// is abandoned. Returns the sink once the body has ended; when it does not, the sink comes
/// back with the error.
pub(super) async fn pump<T, S>(
    uploads: &Uploads,
    sink: T,
    body: S,
    received: &mut u64,
    limit: u64,
) -> std::result::Result<T, Cut<T>>
where
    T: Sink,
    S: Stream<Item = Result<Bytes>>,
{
    let slots = body_slots(uploads);
    // A body takes a slot once it has sent a whole batch: clients that stall or trickle never
    // hold one (the rate rule ends them), and bodies waiting for one hold a batch at most.
    let mut slot = None;
    let mut body = pin!(body);
    let mut batch = BytesMut::new();
    let mut sink = Some(sink);
    let mut writing: Option<tokio::task::JoinHandle<(T, Result<()>)>> = None;
    // The sink once the write in flight (if any) is done, and the first error.
    async fn settle<T>(
        writing: Option<tokio::task::JoinHandle<(T, Result<()>)>>,
        sink: Option<T>,
    ) -> (Option<T>, Result<()>) {
        match writing {
            Some(task) => match task.await {
                Ok((target, result)) => (Some(target), result),
                Err(e) => (
                    None,
                    Err(Error::TaskFailed {
                        reason: e.to_string(),
                    }),
                ),
            },
            None => (sink, Ok(())),
        }
    }
    // Time spent waiting for the client, and what it sent meanwhile, in the current window.
    let (mut waited, mut window_bytes) = (Duration::ZERO, 0u64);
    loop {
        let started = tokio::time::Instant::now();
        let piece = tokio::select! {
            piece = body.next() => Some(piece),
            () = tokio::time::sleep(RATE_WINDOW.saturating_sub(waited)) => None,
        };
        waited += started.elapsed();
        let mut failed = None;
        if waited >= RATE_WINDOW {
            if window_bytes < MIN_WINDOW_BYTES {
                failed = Some(Error::BodyTooSlow {
                    received: window_bytes,
                    seconds: RATE_WINDOW.as_secs(),
                    minimum: MIN_WINDOW_BYTES,
                });
            }
            (waited, window_bytes) = (Duration::ZERO, 0);
        }
        let mut ended = false;
        let mut ready = None;
        match (failed.is_some(), piece) {
            (true, _) | (false, None) => {}
            (false, Some(None)) => ended = true,
            (false, Some(Some(Err(e)))) => failed = Some(e),
            (false, Some(Some(Ok(piece)))) => {
                window_bytes += piece.len() as u64;
                *received = received.saturating_add(piece.len() as u64);
                if *received > limit {
                    failed = Some(too_large(*received, limit));
                } else if batch.is_empty() && piece.len() >= BATCH {
                    ready = Some(piece); // big enough on its own: no copy
                } else {
                    batch.extend_from_slice(&piece);
                }
            }
        }
        if let Some(error) = failed {
            // What arrived before the failure reaches the sink (a tus append keeps it).
            let (mut sink, _) = settle(writing, sink).await;
            if !batch.is_empty()
                && let Some(mut target) = sink.take()
            {
                let bytes = batch.split().freeze();
                let flushed = tokio::task::spawn_blocking(move || {
                    let result = target.put(&bytes);
                    (target, result)
                });
                sink = flushed.await.ok().map(|(target, _)| target);
            }
            return Err(Cut { error, sink });
        }
        if ready.is_none() && (batch.len() >= BATCH || (ended && !batch.is_empty())) {
            ready = Some(batch.split().freeze());
        }
        if let Some(bytes) = ready {
            if slot.is_none() {
                slot = Some(
                    Arc::clone(&slots)
                        .acquire_owned()
                        .await
                        .expect("the body slots are never closed"),
                );
            }
            let mut target = match settle(writing.take(), sink.take()).await {
                (Some(target), Ok(())) => target,
                (target, Err(error)) => {
                    return Err(Cut {
                        error,
                        sink: target,
                    });
                }
                (None, Ok(())) => unreachable!("the sink is here when no write is"),
            };
            writing = Some(tokio::task::spawn_blocking(move || {
                let result = target.put(&bytes);
                (target, result)
            }));
        }
        if ended {
            return match settle(writing, sink).await {
                (Some(target), Ok(())) => Ok(target),
                (target, Err(error)) => Err(Cut {
                    error,
                    sink: target,
                }),
                (None, Ok(())) => unreachable!("the sink is here when no write is"),
            };
        }
    }
}

/// Runs `f` on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(f).await)
}

/// The slots of request bodies read at once, shared by every adapter serving these uploads
/// ([`max_concurrent_bodies`](crate::ConfigBuilder::max_concurrent_bodies)).
fn body_slots(uploads: &Uploads) -> Arc<tokio::sync::Semaphore> {
    let slots = uploads.config().max_concurrent_bodies();
    uploads
        .shared_state(|| BodySlots(Arc::new(tokio::sync::Semaphore::new(slots))))
        .0
        .clone()
}

/// The semaphore behind [`body_slots`], as kept in [`Uploads::shared_state`].
struct BodySlots(Arc<tokio::sync::Semaphore>);

/// Whether the error is about a parameter the form has not sent (yet): a file part that
/// precedes its fields.
fn may_still_arrive(error: &Error, params: &Params) -> bool {
    let _ = params;
    matches!(
        error,
        Error::BadRequest {
            problem: Problem::Missing | Problem::Unrecognised { .. },
            ..
        }
    )
}

/// The result of a blocking task; a panic in it becomes a 500.
fn joined<T>(result: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    result.unwrap_or_else(|e| {
        Err(Error::TaskFailed {
            reason: e.to_string(),
        })
    })
}

/// Logs the end of a request: `info` for an assembled file, `warn` for a refused request,
/// `error` for a server-side failure.
pub(crate) fn log(result: &Result<Outcome>, started: Instant) {
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(Outcome::Assembled { file, fresh: true }) => tracing::info!(
            file = %file.location,
            size = file.size,
            identifier = %file.upload.identifier,
            upload_ms = file.duration_ms(),
            elapsed_ms,
            "file assembled"
        ),
        Ok(outcome) => tracing::debug!(?outcome, elapsed_ms, "upload request handled"),
        Err(e) => match e.status() {
            204 => tracing::debug!(reason = %e, "test request: chunk absent"),
            status if status >= 500 => {
                tracing::error!(status, reason = %e, elapsed_ms, "upload request failed");
            }
            status => tracing::warn!(status, reason = %e, elapsed_ms, "upload request rejected"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    fn test_uploads() -> (tempfile::TempDir, Uploads) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config::builder(dir.path().join("t"), dir.path().join("f")).build();
        (dir, Uploads::new(config).unwrap())
    }

    /// A sink that records what it was given.
    #[derive(Debug)]
    struct Recorder(Vec<u8>);

    impl Sink for Recorder {
        fn put(&mut self, bytes: &[u8]) -> Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn pieces(sizes: &[usize]) -> impl Stream<Item = Result<Bytes>> {
        let mut n = 0u8;
        let pieces: Vec<Result<Bytes>> = sizes
            .iter()
            .map(|&size| {
                n = n.wrapping_add(1);
                Ok(Bytes::from(vec![n; size]))
            })
            .collect();
        futures_util::stream::iter(pieces)
    }

    #[test]
    fn pump_writes_every_byte_in_order() {
        runtime().block_on(async {
            let sizes = [0, 1, 5000, BATCH, 3, BATCH * 2 + 7, 10];
            let mut received = 0;
            let (_dir, uploads) = test_uploads();
            let sink = pump(
                &uploads,
                Recorder(Vec::new()),
                pieces(&sizes),
                &mut received,
                u64::MAX,
            )
            .await
            .unwrap();
            let mut expected = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                expected.extend(std::iter::repeat_n((i + 1) as u8, *size));
            }
            assert_eq!(received, expected.len() as u64);
            assert!(sink.0 == expected);
        });
    }

    #[test]
    fn pump_stops_at_the_limit_and_on_a_broken_body() {
        runtime().block_on(async {
            let mut received = 0;
            let (_dir, uploads) = test_uploads();
            let over = pump(
                &uploads,
                Recorder(Vec::new()),
                pieces(&[10, 10]),
                &mut received,
                15,
            )
            .await;
            let over = over.expect_err("over the limit");
            assert!(matches!(
                over.error,
                Error::TooLarge {
                    value: 20,
                    limit: 15,
                    ..
                }
            ));
            // The bytes before the limit come back with the error.
            assert_eq!(over.sink.expect("the sink").0, vec![1u8; 10]);
            let broken = futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"abc")),
                Err(unreadable("connection reset")),
            ]);
            let mut received = 0;
            let cut = pump(
                &uploads,
                Recorder(Vec::new()),
                broken,
                &mut received,
                u64::MAX,
            )
            .await;
            let cut = cut.expect_err("a broken body");
            assert!(matches!(&cut.error, Error::BadRequest { field, .. } if field == "body"));
            assert_eq!(cut.sink.expect("the sink").0, b"abc");
        });
    }

    #[test]
    fn body_kind_follows_content_type() {
        use RequestKind::{Test, Upload};
        let cases = [
            (
                Test,
                Some("multipart/form-data; boundary=x"),
                BodyKind::None,
            ),
            (
                Upload,
                Some("multipart/form-data; boundary=x"),
                BodyKind::Multipart,
            ),
            (
                Upload,
                Some("Multipart/Form-Data;boundary=x"),
                BodyKind::Multipart,
            ),
            (
                Upload,
                Some("application/x-www-form-urlencoded"),
                BodyKind::Form,
            ),
            (Upload, Some("application/octet-stream"), BodyKind::Raw),
            (Upload, None, BodyKind::Raw),
        ];
        for (kind, ct, expected) in cases {
            assert_eq!(BodyKind::of(kind, ct), expected, "{kind:?} {ct:?}");
        }
    }

    #[test]
    fn begin_refuses_from_content_length_and_method() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config::builder(dir.path().join("t"), dir.path().join("f"))
            .max_chunk_size(1000)
            .build();
        let uploads = Uploads::new(config).unwrap();
        let head = |method, content_length| Head {
            method,
            query: "a=1",
            content_type: Some("application/octet-stream"),
            content_length,
        };
        let limit = 1000 + FORM_OVERHEAD;
        let begin = |h: &Head<'_>| Collector::begin(&uploads, Purpose::Save, h, String::new());
        assert!(begin(&head("POST", Some(limit))).is_ok());
        assert!(matches!(
            begin(&head("POST", Some(limit + 1))),
            Err(Error::TooLarge { limit_kind: Limit::RequestBody, value, .. }) if value == limit + 1
        ));
        // A test request has no body to refuse.
        assert!(begin(&head("GET", Some(limit + 1))).is_ok());
        assert!(matches!(
            begin(&head("DELETE", None)),
            Err(Error::BadRequest { field, .. }) if field == "method"
        ));
        let bad_query = Head {
            query: "flowFilename=%FF",
            ..head("GET", None)
        };
        assert!(matches!(
            begin(&bad_query),
            Err(Error::BadRequest { field, .. }) if field == "flowFilename"
        ));
    }

    #[test]
    fn missing_parameters_may_still_arrive_malformed_ones_not() {
        let params: Params = [("flowChunkNumber", "0")].into_iter().collect();
        assert!(may_still_arrive(&Error::missing("flowIdentifier"), &params));
        let unrecognised = Error::problem(
            "parameters",
            Problem::Unrecognised {
                protocols: vec!["flow.js"],
            },
        );
        assert!(may_still_arrive(&unrecognised, &params));
        assert!(!may_still_arrive(
            &Error::bad("flowChunkNumber", "0"),
            &params
        ));
        assert!(!may_still_arrive(&too_large(2, 1), &params));
    }
}
