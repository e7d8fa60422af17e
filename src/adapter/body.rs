//! What the adapters share, and nothing framework-specific: the [`Collector`] that gathers a
//! request's parameters and body, applies the [`RequestLimits`] and makes the core's calls, the
//! multipart parsing every adapter uses (multer, behind a [`MultipartGuard`]), and the pump
//! that writes an async body to disk in batches on blocking threads, so that no thread ever
//! waits on the network (a client that stalls mid-body costs a file descriptor and a little
//! memory, not a thread).
//!
//! An adapter translates its request into [`Collector::begin`], hands it the body as a stream
//! of bytes ([`Collector::raw`], [`Collector::form`] or [`Collector::multipart`], as
//! [`BodyKind`] says), and answers with [`Reply`](crate::Reply).
//!
//! A multipart form is decided once all its fields are read. The file part is streamed
//! straight into its chunk when the fields before it describe a chunk of a chunked upload (as
//! every widget sends them); the chunk is published only once the form has ended and its late
//! fields, if any, change nothing in that description (otherwise: 400,
//! [`Error::FieldAfterFile`], and nothing is stored). A file part whose fields may still follow
//! (the form's first part, a request that lacks a parameter, or one that reads as a whole file
//! in one request, which later fields could turn into a chunk) is staged on disk and saved
//! when the form is read, with every field.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tempfile::NamedTempFile;

use crate::{
    Begun, ChunkBody, ChunkInfo, Deadline, Error, IncomingChunk, Limit, MAX_PARAM_LEN,
    MultipartGuard, Outcome, Params, Problem, RawRequest, RequestKind, RequestLimits, Result, Uploads,
};

/// Bytes gathered from the body before they are written in one go on a blocking thread. One
/// batch is written while the next is read, so a request holds at most about two batches of
/// memory, whatever the chunk size.
const BATCH: usize = 64 * 1024;

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

/// What became of a form's file part.
enum FilePart {
    /// Staged on disk, to be saved once the form is read, with every field.
    Staged(NamedTempFile),
    /// Streamed into its chunk under the description the fields before it gave: published once
    /// the form is read, if the fields after it change nothing.
    Received(Box<IncomingChunk>, ChunkInfo),
    /// Answered without its bytes (a chunk of an upload assembled already), under the
    /// description the fields before it gave.
    Answered(Outcome, ChunkInfo),
    /// Read and dropped (a finalize request needs no bytes).
    Ignored,
}

/// The fields' deadline: what is left of their total time.
struct Clock {
    fields: Duration,
    fields_left: Duration,
}

impl Clock {
    fn new(limits: &RequestLimits) -> Clock {
        Clock {
            fields: limits.fields_timeout,
            fields_left: limits.fields_timeout,
        }
    }

    /// Waits for `next`, the next part or bytes of the form's fields, within what is left of
    /// their time.
    async fn fields<F: Future>(&mut self, next: F) -> Result<F::Output> {
        let started = tokio::time::Instant::now();
        let next = tokio::time::timeout(self.fields_left, next).await;
        self.fields_left = self.fields_left.saturating_sub(started.elapsed());
        next.map_err(|_| Error::TimedOut {
            deadline: Deadline::Fields,
            limit: self.fields,
        })
    }
}

/// One request on its way to the core: parameters so far, the scope, what became of the file
/// part, and the limits it is read under.
pub(crate) struct Collector {
    uploads: Uploads,
    purpose: Purpose,
    request: RawRequest,
    limits: RequestLimits,
    clock: Clock,
    /// The request body limit.
    limit: u64,
    /// The multipart boundary, from `Content-Type`.
    boundary: Option<String>,
    file: Option<FilePart>,
    /// Parts of the form so far, text fields among them, and the bytes of those kept.
    fields: usize,
    texts: usize,
    form_bytes: u64,
    /// Text fields that came after the file part, by name.
    late: Vec<String>,
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
        let boundary = match body {
            BodyKind::Multipart => Some(
                head.content_type
                    .and_then(|ct| multer::parse_boundary(ct).ok())
                    .ok_or_else(|| {
                        Error::bad("Content-Type", "multipart/form-data without a boundary")
                    })?,
            ),
            _ => None,
        };
        let params = Params::from_urlencoded(head.query.as_bytes())?;
        let limits = *uploads.config().request_limits();
        let collector = Collector {
            uploads: uploads.clone(),
            purpose,
            request: RawRequest::new(kind, params).with_scope(scope),
            limits,
            clock: Clock::new(&limits),
            limit: uploads.max_request_body(),
            boundary,
            file: None,
            fields: 0,
            texts: 0,
            form_bytes: 0,
            late: Vec::new(),
        };
        Ok((collector, body))
    }

    /// A `multipart/form-data` body: parsed with multer behind a [`MultipartGuard`] (so that no
    /// preamble or part header block over [`RequestLimits::max_part_header_bytes`] is ever
    /// buffered), every field read under the limits, then the request decided.
    pub(crate) async fn multipart<S>(mut self, body: S) -> Result<Outcome>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let boundary = self
            .boundary
            .take()
            .ok_or_else(|| Error::bad("Content-Type", "multipart/form-data without a boundary"))?;
        let mut guard = MultipartGuard::new(&boundary, self.limits.max_part_header_bytes)?;
        let body = watched(limited(body, self.limit), self.limits.idle_timeout).map(move |piece| {
            let piece = piece?;
            guard.feed(&piece)?;
            Ok::<_, Error>(piece)
        });
        let mut form = multer::Multipart::new(body, boundary);
        while let Some(field) = self
            .clock
            .fields(form.next_field())
            .await?
            .map_err(malformed)?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let filename = field.file_name().map(str::to_owned);
            let part = field.map(|piece| piece.map_err(malformed));
            self.field(&name, filename.as_deref(), part).await?;
        }
        self.finish().await
    }

    /// An `application/x-www-form-urlencoded` body: its pairs join the parameters.
    pub(crate) async fn form<S>(mut self, body: S) -> Result<Collector>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let max = self.limits.max_form_bytes;
        let mut form = Vec::new();
        let mut body = pin!(watched(limited(body, self.limit), self.limits.idle_timeout));
        while let Some(piece) = self.clock.fields(body.next()).await? {
            let piece = piece?;
            let len = (form.len() + piece.len()) as u64;
            if len > max {
                return Err(Error::TooLarge {
                    limit_kind: Limit::FormBytes,
                    value: len,
                    limit: max,
                });
            }
            form.extend_from_slice(&piece);
        }
        let pairs = form
            .split(|&b| b == b'&')
            .filter(|pair| !pair.is_empty())
            .count();
        self.count_fields(pairs)?;
        self.request.params_mut().extend_from_urlencoded(&form)?;
        Ok(self)
    }

    /// A raw body (octet mode): validated from the query string first, refused unread when
    /// wrong, else streamed into its chunk. A finalize request ignores it.
    pub(crate) async fn raw<S>(mut self, body: S) -> Result<Outcome>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        if self.purpose == Purpose::Finalize {
            return self.finish().await;
        }
        self.uploads.chunk_info(&self.request)?;
        let chunk = match self.begin_upload().await? {
            Begun::Done(outcome) => return Ok(outcome),
            Begun::Receiving(chunk) => *chunk,
        };
        let body = watched(limited(body, self.limit), self.limits.idle_timeout);
        let chunk = pump(&self.uploads, chunk, body).await?;
        blocking(move || chunk.finish()).await
    }

    /// The form is read: publish the chunk received (if the fields after it changed nothing),
    /// or save with the staged body (if any), or finalize.
    pub(crate) async fn finish(self) -> Result<Outcome> {
        let Collector {
            uploads,
            purpose,
            mut request,
            file,
            late,
            ..
        } = self;
        match file {
            Some(FilePart::Received(chunk, info)) => {
                unchanged(&uploads, &request, &info, &late)?;
                return blocking(move || chunk.finish()).await;
            }
            Some(FilePart::Answered(outcome, info)) => {
                unchanged(&uploads, &request, &info, &late)?;
                return Ok(outcome);
            }
            Some(FilePart::Staged(path)) => request.set_body(ChunkBody::File(path)),
            Some(FilePart::Ignored) | None => {}
        }
        blocking(move || match purpose {
            Purpose::Save => uploads.save(&mut request),
            Purpose::Finalize => uploads.finalize_request(&request),
        })
        .await
    }

    /// One multipart field: a text field joins the parameters; the file part is streamed into
    /// its chunk when the fields before it describe a chunk of a chunked upload, refused unread
    /// when they make an invalid request, and staged on disk when fields that change the
    /// decision may still follow it: when it is the form's first part (widgets send their
    /// fields first; a form that starts with the file may have all its fields after it), when
    /// the request lacks a parameter, or when it reads as a whole file sent in one request
    /// (a later `flowChunkNumber`, `chunk` or `qqpartindex` would make it a chunk).
    ///
    /// # Errors
    /// The request is answered with this error; read no further.
    async fn field<S>(&mut self, name: &str, filename: Option<&str>, part: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        self.count_fields(1)?;
        if !self.uploads.config().dialects().is_file_field(name) {
            self.texts += 1;
            self.text(name, part).await?;
            if self.file.is_some() {
                self.late.push(name.to_owned());
            }
            return Ok(());
        }
        if self.file.is_some() {
            return Err(Error::bad(
                "form",
                format!("a second file part ({name:?}): a request carries one chunk"),
            ));
        }
        if self.purpose == Purpose::Finalize {
            pump(&self.uploads, Discard, part).await?;
            self.file = Some(FilePart::Ignored);
            return Ok(());
        }
        if let Some(filename) = filename {
            self.request.set_part_filename(filename);
        }
        if self.texts == 0 {
            return self.stage(part).await;
        }
        match self.uploads.chunk_info(&self.request) {
            Ok(info) if info.total_chunks > 1 || info.chunk_size.is_some() => {
                self.receive(info, part).await
            }
            Ok(_) => self.stage(part).await,
            Err(e) if may_still_arrive(&e, self.request.params()) => self.stage(part).await,
            Err(e) => Err(e),
        }
    }

    /// Counts `n` more fields against [`RequestLimits::max_fields`].
    fn count_fields(&mut self, n: usize) -> Result<()> {
        self.fields = self.fields.saturating_add(n);
        if self.fields > self.limits.max_fields {
            return Err(Error::TooLarge {
                limit_kind: Limit::FormFields,
                value: self.fields as u64,
                limit: self.limits.max_fields as u64,
            });
        }
        Ok(())
    }

    /// Counts `n` more bytes of text fields kept against [`RequestLimits::max_form_bytes`].
    fn count_form_bytes(&mut self, n: usize) -> Result<()> {
        self.form_bytes = self.form_bytes.saturating_add(n as u64);
        if self.form_bytes > self.limits.max_form_bytes {
            return Err(Error::TooLarge {
                limit_kind: Limit::FormBytes,
                value: self.form_bytes,
                limit: self.limits.max_form_bytes,
            });
        }
        Ok(())
    }

    /// Reads a text field, keeping at most one byte more than a parameter may have (the core
    /// then refuses it with its usual message).
    async fn text<S>(&mut self, name: &str, part: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        self.count_form_bytes(name.len())?;
        let mut value = Vec::new();
        let mut part = pin!(part);
        while let Some(piece) = self.clock.fields(part.next()).await? {
            let piece = piece?;
            let room = (MAX_PARAM_LEN + 1).saturating_sub(value.len());
            let kept = &piece[..piece.len().min(room)];
            self.count_form_bytes(kept.len())?;
            value.extend_from_slice(kept);
            if value.len() > MAX_PARAM_LEN {
                break;
            }
        }
        // Kept until the request ends: no more than its bytes.
        value.shrink_to_fit();
        self.request.params_mut().insert_bytes(name, value)
    }

    /// [`Uploads::begin`] on a blocking thread, for the request as it is.
    async fn begin_upload(&mut self) -> Result<Begun> {
        let uploads = self.uploads.clone();
        let placeholder = RawRequest::new(RequestKind::Upload, Params::new());
        let mut request = std::mem::replace(&mut self.request, placeholder);
        let (request, begun) = blocking(move || {
            let begun = uploads.begin(&mut request);
            Ok((request, begun))
        })
        .await?;
        self.request = request;
        begun
    }

    /// Streams the file part into its chunk (not published yet: see [`finish`](Self::finish)),
    /// or reads and drops it when its upload is assembled already.
    async fn receive<S>(&mut self, info: ChunkInfo, part: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        match self.begin_upload().await? {
            Begun::Done(outcome) => {
                pump(&self.uploads, Discard, part).await?;
                self.file = Some(FilePart::Answered(outcome, info));
            }
            Begun::Receiving(chunk) => {
                let chunk = *chunk;
                let chunk = pump(&self.uploads, chunk, part).await?;
                self.file = Some(FilePart::Received(Box::new(chunk), info));
            }
        }
        Ok(())
    }

    /// Streams a file part whose fields may still follow into a staging file in the temp dir.
    async fn stage<S>(&mut self, part: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let uploads = self.uploads.clone();
        let file = blocking(move || uploads.incoming_file()).await?;
        let file = pump(&self.uploads, file, part).await?;
        self.file = Some(FilePart::Staged(file));
        Ok(())
    }
}

/// Checks that the fields after the file part leave the chunk described as it was when the
/// part was streamed under the fields before it.
///
/// # Errors
/// A late field's own error (malformed, say), or [`Error::FieldAfterFile`] naming the first
/// late field the description depends on when the request now reads differently or not at all.
fn unchanged(
    uploads: &Uploads,
    request: &RawRequest,
    info: &ChunkInfo,
    late: &[String],
) -> Result<()> {
    if late.is_empty() {
        return Ok(());
    }
    let now = match uploads.chunk_info(request) {
        Ok(now) if now == *info => return Ok(()),
        Err(e @ Error::BadRequest { .. })
            if matches!(&e, Error::BadRequest { field, .. } if late.contains(field)) =>
        {
            return Err(e);
        }
        Ok(now) => Some(now),
        Err(_) => None,
    };
    let described = |name: &str| {
        std::iter::once(info).chain(now.as_ref()).any(|i| {
            let n = &i.names;
            [
                &n.identifier,
                &n.filename,
                &n.relative_path,
                &n.chunk_number,
                &n.total_chunks,
                &n.chunk_size,
                &n.current_chunk_size,
                &n.total_size,
            ]
            .iter()
            .any(|field| field.as_str() == name)
        })
    };
    let field = late
        .iter()
        .find(|name| described(name))
        .or(late.first())
        .cloned()
        .unwrap_or_default();
    Err(Error::FieldAfterFile { field })
}

/// The body, failing once it is longer than `limit`.
fn limited<S>(body: S, limit: u64) -> impl Stream<Item = Result<Bytes>>
where
    S: Stream<Item = Result<Bytes>>,
{
    let mut seen = 0u64;
    body.map(move |piece| {
        let piece = piece?;
        seen = seen.saturating_add(piece.len() as u64);
        if seen > limit {
            return Err(too_large(seen, limit));
        }
        Ok(piece)
    })
}

/// The body, failing with [`Deadline::Idle`] once the client has sent nothing for `idle`
/// while it is waited for: the time counts from the first poll for the next piece (a wait for
/// a body slot or a disk write between pieces is not the client's), and does not restart when
/// a waiting consumer gives up its poll and polls again.
pub(super) fn watched<S>(body: S, idle: Duration) -> impl Stream<Item = Result<Bytes>>
where
    S: Stream<Item = Result<Bytes>>,
{
    futures_util::stream::unfold(Some(Box::pin(body)), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(piece)) => Some((piece, Some(body))),
            Ok(None) => None,
            Err(_) => Some((
                Err(Error::TimedOut {
                    deadline: Deadline::Idle,
                    limit: idle,
                }),
                None,
            )),
        }
    })
}

/// A multer error; errors of the body stream itself (this crate's: limits, deadlines, a
/// broken connection) come back unwrapped.
fn malformed(error: multer::Error) -> Error {
    if let multer::Error::StreamReadFailed(source) = error {
        return match source.downcast::<Error>() {
            Ok(error) => *error,
            Err(source) => unreadable(source),
        };
    }
    Error::bad("body", format!("malformed multipart form: {error}"))
}

/// Where [`pump`] writes: a chunk being received, a staging file, a tus append, or nowhere.
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

/// Bytes read only to be dropped.
struct Discard;

impl Sink for Discard {
    fn put(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// Which of the body's limits the current wait would run into first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Window,
    Total,
}

/// Writes `body` to `sink` in batches of [`BATCH`] bytes on blocking threads, one batch written
/// while the next is read. At most
/// [`max_concurrent_bodies`](crate::ConfigBuilder::max_concurrent_bodies) bodies stream past
/// their first batch at once (the others wait with that batch, their further bytes held by the
/// kernel's socket buffers). While waiting for the client the body's deadlines apply
/// ([`RequestLimits`]): at least `min_body_bytes` per `body_window`
/// ([`Error::BodyTooSlow`]) and no more than `body_timeout` in all ([`Error::TimedOut`]); the
/// body stream itself is [`watched`] for silence. Returns the sink once the body has ended.
async fn pump<T, S>(uploads: &Uploads, sink: T, body: S) -> Result<T>
where
    T: Sink,
    S: Stream<Item = Result<Bytes>>,
{
    pump_keeping(uploads, sink, body).await.map_err(|cut| cut.error)
}

/// A body [`pump_keeping`] did not read to its end: why, and the sink with every byte that
/// arrived before (a tus append keeps them), unless the task writing to it failed.
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

/// The sink once the write in flight (if any) is done, and that write's result.
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

/// [`pump`], handing the sink back with the error when the body does not end well: every
/// byte that arrived before the failure is written to it first.
pub(super) async fn pump_keeping<T, S>(
    uploads: &Uploads,
    sink: T,
    body: S,
) -> std::result::Result<T, Cut<T>>
where
    T: Sink,
    S: Stream<Item = Result<Bytes>>,
{
    let limits = uploads.config().request_limits();
    let slots = body_slots(uploads);
    // A body takes a slot once it has sent a whole batch: clients that stall or trickle never
    // hold one (the rate rule ends them), and bodies waiting for one hold a batch at most.
    let mut slot = None;
    let mut body = pin!(body);
    let mut batch = BytesMut::new();
    let mut sink = Some(sink);
    let mut writing: Option<tokio::task::JoinHandle<(T, Result<()>)>> = None;
    // Time spent waiting for the client, and what it sent meanwhile, in the current window.
    let (mut waited, mut window_bytes) = (Duration::ZERO, 0u64);
    let mut total_left = limits.body_timeout;
    loop {
        let window_left = limits.body_window.saturating_sub(waited);
        let (wait, runs_into) = if total_left < window_left {
            (total_left, Wait::Total)
        } else {
            (window_left, Wait::Window)
        };
        let started = tokio::time::Instant::now();
        let piece = tokio::time::timeout(wait, body.next()).await;
        let elapsed = started.elapsed();
        waited += elapsed;
        total_left = total_left.saturating_sub(elapsed);
        let mut failed = None;
        if piece.is_err() && runs_into == Wait::Total {
            failed = Some(Error::TimedOut {
                deadline: Deadline::Body,
                limit: limits.body_timeout,
            });
        } else if waited >= limits.body_window {
            if window_bytes < limits.min_body_bytes {
                failed = Some(Error::BodyTooSlow {
                    received: window_bytes,
                    seconds: limits.body_window.as_secs(),
                    minimum: limits.min_body_bytes,
                });
            }
            (waited, window_bytes) = (Duration::ZERO, 0);
        }
        let mut ended = false;
        let mut ready = None;
        match (failed.is_some(), piece) {
            (true, _) | (false, Err(_)) => {}
            (false, Ok(None)) => ended = true,
            (false, Ok(Some(Err(e)))) => failed = Some(e),
            (false, Ok(Some(Ok(piece)))) => {
                window_bytes += piece.len() as u64;
                if batch.is_empty() && piece.len() >= BATCH {
                    ready = Some(piece); // big enough on its own: no copy
                } else {
                    batch.extend_from_slice(&piece);
                }
            }
        }
        if let Some(error) = failed {
            // What arrived before the failure reaches the sink.
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
                (target, Err(error)) => return Err(Cut { error, sink: target }),
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
                (target, Err(error)) => Err(Cut { error, sink: target }),
                (None, Ok(())) => unreachable!("the sink is here when no write is"),
            };
        }
    }
}

/// Runs `f` on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
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
    use crate::FORM_OVERHEAD;

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

    fn uploads_with(limits: RequestLimits) -> (tempfile::TempDir, Uploads) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config::builder(dir.path().join("t"), dir.path().join("f"))
            .request_limits(limits)
            .build();
        (dir, Uploads::new(config).unwrap())
    }

    /// `count` pieces of `size` bytes, one every `every` (in tokio's time).
    fn trickle(size: usize, every: Duration, count: usize) -> impl Stream<Item = Result<Bytes>> {
        futures_util::stream::unfold(0, move |sent| async move {
            if sent == count {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Bytes::from(vec![7u8; size])), sent + 1))
        })
    }

    /// A runtime whose clock only moves when every task waits (deadline tests take no time).
    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn pump_writes_every_byte_in_order() {
        runtime().block_on(async {
            let sizes = [0, 1, 5000, BATCH, 3, BATCH * 2 + 7, 10];
            let (_dir, uploads) = test_uploads();
            let sink = pump(&uploads, Recorder(Vec::new()), pieces(&sizes))
                .await
                .unwrap();
            let mut expected = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                expected.extend(std::iter::repeat_n((i + 1) as u8, *size));
            }
            assert!(sink.0 == expected);
        });
    }

    #[test]
    fn bodies_stop_at_the_limit_and_on_a_broken_body() {
        runtime().block_on(async {
            let (_dir, uploads) = test_uploads();
            let over = pump(
                &uploads,
                Recorder(Vec::new()),
                limited(pieces(&[10, 10]), 15),
            )
            .await;
            assert!(matches!(
                over,
                Err(Error::TooLarge {
                    limit_kind: Limit::RequestBody,
                    value: 20,
                    limit: 15,
                })
            ));
            let broken = futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"abc")),
                Err(unreadable("connection reset")),
            ]);
            let cut = pump(&uploads, Recorder(Vec::new()), broken).await;
            assert!(matches!(cut, Err(Error::BadRequest { field, .. }) if field == "body"));
            // Kept: what arrived before the break comes back with the error.
            let broken = futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"abc")),
                Err(unreadable("connection reset")),
            ]);
            let cut = pump_keeping(&uploads, Recorder(Vec::new()), broken)
                .await
                .expect_err("a broken body");
            assert!(matches!(&cut.error, Error::BadRequest { field, .. } if field == "body"));
            assert_eq!(cut.sink.expect("the sink").0, b"abc");
        });
    }

    #[test]
    fn a_body_that_stalls_trickles_or_drags_on_misses_its_deadline() {
        let limits = RequestLimits {
            idle_timeout: Duration::from_secs(5),
            body_window: Duration::from_secs(10),
            min_body_bytes: 1000,
            body_timeout: Duration::from_secs(60),
            ..RequestLimits::default()
        };
        let (_dir, uploads) = uploads_with(limits);
        async fn run<S>(uploads: &Uploads, body: S) -> Result<Recorder>
        where
            S: Stream<Item = Result<Bytes>>,
        {
            let idle = uploads.config().request_limits().idle_timeout;
            pump(uploads, Recorder(Vec::new()), watched(body, idle)).await
        }
        paused().block_on(async {
            // Silent after its first 20 KiB (more than a window's worth): the idle limit, five
            // seconds after the last byte, though the window's rule was met.
            let silent = trickle(20_000, Duration::ZERO, 1).chain(futures_util::stream::pending());
            let started = tokio::time::Instant::now();
            assert!(matches!(
                run(&uploads, silent).await,
                Err(Error::TimedOut { deadline: Deadline::Idle, limit }) if limit == limits.idle_timeout
            ));
            assert_eq!(started.elapsed(), limits.idle_timeout);
            // 100 bytes a second: never idle, but under 1000 bytes per 10 s.
            let started = tokio::time::Instant::now();
            let slow = run(&uploads, trickle(50, Duration::from_millis(500), 1000)).await;
            assert!(
                matches!(
                    slow,
                    Err(Error::BodyTooSlow {
                        received: 950,
                        seconds: 10,
                        minimum: 1000
                    })
                ),
                "{slow:?}"
            );
            assert_eq!(started.elapsed(), limits.body_window);
            // Fast enough, but longer than the body's deadline.
            let started = tokio::time::Instant::now();
            let long = run(&uploads, trickle(200, Duration::from_millis(500), 1000)).await;
            assert!(matches!(
                long,
                Err(Error::TimedOut {
                    deadline: Deadline::Body,
                    ..
                })
            ));
            assert_eq!(started.elapsed(), limits.body_timeout);
            // Within every limit: stored.
            let fine = run(&uploads, trickle(200, Duration::from_millis(500), 20)).await;
            assert_eq!(fine.unwrap().0.len(), 4000);
        });
    }

    #[test]
    fn silence_counts_from_the_first_poll_for_the_next_piece() {
        paused().block_on(async {
            let idle = Duration::from_secs(4);
            // A piece every 3 s: never idle.
            let steady = watched(trickle(1, Duration::from_secs(3), 5), idle);
            assert_eq!(steady.collect::<Vec<_>>().await.len(), 5);
            // A consumer that gives up waiting after a second and asks again does not restart
            // the count: silence ends the body 4 s after the first poll.
            let mut silent = pin!(watched(futures_util::stream::pending(), idle));
            let started = tokio::time::Instant::now();
            let ended = loop {
                match tokio::time::timeout(Duration::from_secs(1), silent.next()).await {
                    Ok(piece) => break piece,
                    Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            };
            assert!(matches!(
                ended,
                Some(Err(Error::TimedOut {
                    deadline: Deadline::Idle,
                    ..
                }))
            ));
            assert_eq!(started.elapsed(), idle);
            assert!(
                silent.next().await.is_none(),
                "the body ends after the error"
            );
        });
    }

    #[test]
    fn the_fields_deadline_adds_up_every_wait() {
        let limits = RequestLimits {
            fields_timeout: Duration::from_secs(10),
            ..RequestLimits::default()
        };
        paused().block_on(async {
            let mut clock = Clock::new(&limits);
            for _ in 0..3 {
                clock
                    .fields(tokio::time::sleep(Duration::from_secs(3)))
                    .await
                    .unwrap();
            }
            // 9 s spent: 1 s left.
            let started = tokio::time::Instant::now();
            let late = clock.fields(tokio::time::sleep(Duration::from_secs(3))).await;
            assert!(matches!(
                late,
                Err(Error::TimedOut { deadline: Deadline::Fields, limit }) if limit == limits.fields_timeout
            ));
            assert_eq!(started.elapsed(), Duration::from_secs(1));
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
