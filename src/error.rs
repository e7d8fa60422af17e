//! The crate's one error type and its one mapping to HTTP status codes.

use std::io;
use std::path::PathBuf;

/// A specialised `Result` whose error is this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which configured limit a request went over (see [`Error::TooLarge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`ConfigBuilder::max_file_size`](crate::ConfigBuilder::max_file_size): the whole file.
    FileSize,
    /// [`ConfigBuilder::max_chunk_size`](crate::ConfigBuilder::max_chunk_size): one chunk's body.
    ChunkSize,
    /// [`ConfigBuilder::max_chunks`](crate::ConfigBuilder::max_chunks): chunks in one file.
    Chunks,
    /// A request body (`Content-Length`) larger than any chunk may be, form overhead included.
    RequestBody,
    /// [`ConfigBuilder::max_uploads_per_scope`](crate::ConfigBuilder::max_uploads_per_scope):
    /// unfinished uploads one scope may have at once.
    UploadsPerScope,
    /// [`ConfigBuilder::max_pending_bytes_per_scope`](crate::ConfigBuilder::max_pending_bytes_per_scope):
    /// bytes one scope may have stored but not yet assembled.
    PendingBytesPerScope,
    /// The length a tus upload declared (`Upload-Length`): no byte may go beyond it.
    UploadLength,
    /// [`RequestLimits::max_part_header_bytes`](crate::RequestLimits::max_part_header_bytes):
    /// the headers of one part of a multipart form.
    PartHeaders,
    /// [`RequestLimits::max_part_header_bytes`](crate::RequestLimits::max_part_header_bytes):
    /// what a multipart body carries before its first boundary.
    Preamble,
    /// [`RequestLimits::max_fields`](crate::RequestLimits::max_fields): parts of a multipart
    /// form, or pairs of a urlencoded one.
    FormFields,
    /// [`RequestLimits::max_form_bytes`](crate::RequestLimits::max_form_bytes): the names and
    /// values of a form's text fields together (a urlencoded body as a whole).
    FormBytes,
}

impl Limit {
    /// A short human name for messages, e.g. `"file size"`.
    pub fn describe(self) -> &'static str {
        match self {
            Limit::FileSize => "file size",
            Limit::ChunkSize => "chunk size",
            Limit::Chunks => "number of chunks",
            Limit::RequestBody => "request body size",
            Limit::UploadsPerScope => "unfinished uploads per scope",
            Limit::PendingBytesPerScope => "bytes stored but not yet assembled per scope",
            Limit::UploadLength => "the upload's end",
            Limit::PartHeaders => "size of a multipart part's headers",
            Limit::Preamble => "size of the multipart preamble",
            Limit::FormFields => "number of form fields",
            Limit::FormBytes => "size of the form's text fields",
        }
    }
}

/// Which deadline of [`RequestLimits`](crate::RequestLimits) a request missed (see
/// [`Error::TimedOut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Deadline {
    /// [`RequestLimits::idle_timeout`](crate::RequestLimits::idle_timeout): the client sent
    /// nothing for this long while the server waited for the rest of its request.
    Idle,
    /// [`RequestLimits::fields_timeout`](crate::RequestLimits::fields_timeout): the form's
    /// fields (a urlencoded body, or every part header and text field of a multipart one) took
    /// longer than this to arrive.
    Fields,
    /// [`RequestLimits::body_timeout`](crate::RequestLimits::body_timeout): the chunk's bytes
    /// took longer than this to arrive.
    Body,
}

impl Deadline {
    /// A short human name for messages, e.g. `"idle time"`.
    pub fn describe(self) -> &'static str {
        match self {
            Deadline::Idle => "time without a byte from the client",
            Deadline::Fields => "time to receive the form's fields",
            Deadline::Body => "time to receive the chunk's body",
        }
    }
}

/// Everything that can go wrong while handling an upload request.
///
/// Each variant names the offending value. [`Error::status`] is the one place that turns an
/// error into an HTTP status code; every adapter uses it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A test request (flow.js / resumable.js `GET`) asked for a chunk that is not stored yet.
    /// Answer `204 No Content` so the widget uploads it (never 404: flow.js treats 404 as fatal).
    #[error("chunk {chunk} of upload {identifier:?} is not stored yet")]
    NoContent {
        /// The chunk number as the widget counts it (1-based for flow.js and resumable.js).
        chunk: u64,
        /// The client's upload identifier.
        identifier: String,
    },

    /// The request is malformed: a missing, non-numeric or out-of-range parameter, a body whose
    /// length differs from the declared one, totals that cannot fit the declared geometry.
    #[error("{field}: {}{problem}", quoted_value(.value))]
    BadRequest {
        /// The parameter (as the widget names it) or concept that is wrong, e.g.
        /// `"flowChunkNumber"` or `"body"`.
        field: String,
        /// The offending value as sent (cut to 64 characters), when there is one to show.
        value: Option<String>,
        /// What is wrong with it.
        problem: Problem,
    },

    /// A declared or actual size is over a configured limit.
    #[error("{} {value} is over the limit of {limit}", .limit_kind.describe())]
    TooLarge {
        /// Which limit.
        limit_kind: Limit,
        /// The size, count or total that was asked for.
        value: u64,
        /// The configured limit.
        limit: u64,
    },

    /// The scope has too many unfinished uploads at once (answered `429 Too Many Requests`;
    /// finishing or expiring uploads makes room again).
    #[error("scope has {value} unfinished uploads, the limit is {limit}")]
    TooManyUploads {
        /// Unfinished uploads the scope would have with this one.
        value: u64,
        /// The configured limit.
        limit: u64,
    },

    /// Chunks of the same upload disagree with what the first chunk declared (total size, chunk
    /// size or number of chunks). The widget changed its settings or two different files share an
    /// identifier within one scope.
    #[error("upload {identifier:?}: {field} is {got} but the upload was started with {stored}")]
    GeometryMismatch {
        /// The client's upload identifier.
        identifier: String,
        /// Which fact disagrees (`"total size"`, `"chunk size"`, `"total chunks"`).
        field: &'static str,
        /// The value stored when the upload started.
        stored: String,
        /// The value in this request.
        got: String,
    },

    /// The destination exists and the [`ConflictPolicy`](crate::ConflictPolicy) says refuse.
    /// Clients are told only that the name is taken, never where.
    #[error("destination {location} already exists")]
    Conflict {
        /// The destination that exists.
        location: crate::Location,
    },

    /// A chunk arrived for a chunk that is already stored, with other bytes: two different
    /// files share one identifier in one scope (same name and size, say), and mixing them would
    /// make a file that is neither. Answered `409`; nothing of this request is stored.
    #[error(
        "chunk {chunk} of upload {identifier:?} is already stored with other bytes: two files share this identifier"
    )]
    ContentMismatch {
        /// The client's upload identifier.
        identifier: String,
        /// The chunk number as the widget counts it.
        chunk: u64,
    },

    /// The upload was restarted (a new upload under the same key began) while this request's
    /// body streamed in; its bytes belong to the old upload and were not stored (`409`).
    #[error("upload {identifier:?} was restarted while this chunk was being received")]
    Restarted {
        /// The client's upload identifier.
        identifier: String,
    },

    /// The application refused the upload before its first byte was stored (the
    /// [`on_create`](crate::ConfigBuilder::on_create) hook), with a status of its choosing.
    #[error("upload refused: {reason}")]
    Rejected {
        /// The HTTP status to answer (400-499).
        status: u16,
        /// Why, as shown to the client.
        reason: String,
    },

    /// A finalize request for an upload that still lacks chunks.
    #[error("upload {identifier:?} is incomplete: {present} of {total} chunks stored")]
    Incomplete {
        /// The client's upload identifier.
        identifier: String,
        /// Chunks stored.
        present: u64,
        /// Chunks the upload declared.
        total: u64,
    },

    /// A finalize or status request for an upload this scope does not have.
    #[error("no upload {identifier:?} in this scope")]
    NotFound {
        /// The client's upload identifier.
        identifier: String,
    },

    /// The file is refused for good (for instance by a pre-process hook rejecting its content).
    /// Answered `415`, which flow.js and resumable.js treat as fatal: the widget stops retrying.
    #[error("file refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },

    /// The request body arrives too slowly (stalled, or trickling): it sent `received` bytes
    /// in `seconds` seconds, less than `minimum` (408; the widget may retry the chunk).
    #[error(
        "the request body sent {received} bytes in {seconds} s, fewer than the {minimum} required"
    )]
    BodyTooSlow {
        /// Bytes sent in the window.
        received: u64,
        /// The window, in seconds.
        seconds: u64,
        /// Bytes a body must send per window.
        minimum: u64,
    },

    /// The client missed one of the request's deadlines (408; the widget may retry the chunk).
    #[error("{} is over the limit of {limit:?}", .deadline.describe())]
    TimedOut {
        /// Which deadline.
        deadline: Deadline,
        /// The configured limit.
        limit: std::time::Duration,
    },

    /// A form field arrived after the file part and changes what the fields before it said,
    /// while the file part was already being stored under their description (400). Send every
    /// parameter before the file part, as the widgets do.
    #[error(
        "{field} came after the file part and changes the chunk the fields before it described; \
         send every parameter before the file part"
    )]
    FieldAfterFile {
        /// The first late field that the chunk's description depends on.
        field: String,
    },

    /// The per-upload lock could not be taken in time; the client should retry (503).
    #[error("upload is busy, retry in {retry_after} s")]
    Busy {
        /// Suggested delay in seconds (`Retry-After`).
        retry_after: u64,
    },

    /// A request without a valid session cookie, when the server cannot derive its session
    /// safely: it does not know the client's address, without which every cookieless browser
    /// would share one scope (answered `400`: the widget shows the message; load the
    /// application's page first, so that the browser has a session cookie).
    #[error(
        "the request has no valid {cookie} session cookie, and the server does not know the \
         client's address to derive one; load this site's page first, then upload"
    )]
    NoSession {
        /// The name of the session cookie.
        cookie: &'static str,
    },

    /// A session signing key shorter than the minimum (a configuration error, found when the
    /// key is made).
    #[error("the session signing key has {length} bytes; it needs at least {minimum}")]
    InvalidSigningKey {
        /// The key's length in bytes.
        length: usize,
        /// The least length accepted.
        minimum: usize,
    },

    /// The configured hash-name callback produced a storage key that is not a safe file name.
    #[error(
        "hash-name callback returned {key:?}; storage keys must be 1-128 characters of [A-Za-z0-9_-]"
    )]
    InvalidStorageKey {
        /// What the callback returned.
        key: String,
    },

    /// An I/O operation on the server's storage failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. `"create chunk staging file in"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A record of the store is damaged (a ledger, a description or a marker that does not
    /// parse): the upload cannot be trusted and should be started over.
    #[error("{what} of upload {key} is corrupt: {reason}")]
    Corrupt {
        /// Which record, e.g. `"ledger"`.
        what: &'static str,
        /// The upload's storage key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// At assembly, the stored bytes do not add up to what the upload declared.
    #[error("upload {key}: {actual} bytes stored, {expected} declared")]
    SizeMismatch {
        /// The upload's storage key.
        key: String,
        /// Bytes the upload declared.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },

    /// The task handling a request failed (it panicked, or its runtime shut down).
    #[error("the request's task failed: {reason}")]
    TaskFailed {
        /// What the runtime said.
        reason: String,
    },

    /// The store cannot do what the request needs (see
    /// [`Capabilities`](crate::Capabilities)); answered `501 Not Implemented`.
    #[error("this server's storage cannot {operation}")]
    Unsupported {
        /// What could not be done.
        operation: &'static str,
    },

    /// A tus request without a protocol version this server speaks: `Tus-Resumable` missing or
    /// not `1.0.0` (nor an IETF draft's `Upload-Draft-Interop-Version` this server speaks);
    /// answered `412 Precondition Failed` with the versions it does speak.
    #[error("{header}: {} is not a version this server speaks ({supported})", .value.as_deref().map_or("missing".to_owned(), |v| format!("{v:?}")))]
    UnsupportedVersion {
        /// The header that says the version (`Tus-Resumable`, `Upload-Draft-Interop-Version`).
        header: &'static str,
        /// What it said, if it was there.
        value: Option<String>,
        /// The versions this server speaks.
        supported: &'static str,
    },

    /// A tus append at an offset other than the upload's (`409 Conflict`; the IETF draft's
    /// `mismatching-upload-offset` problem).
    #[error("upload {identifier:?} is at offset {expected}, the request says {provided}")]
    OffsetMismatch {
        /// The upload's id.
        identifier: String,
        /// Its offset: where the next append must start.
        expected: u64,
        /// What the request said.
        provided: u64,
    },

    /// A request body of a media type the request may not have (a tus `PATCH` must be
    /// `application/offset+octet-stream`); `415 Unsupported Media Type`.
    #[error("Content-Type: {} (expected {expected})", .got.as_deref().map_or("missing".to_owned(), |v| format!("{v:?}")))]
    UnsupportedMediaType {
        /// What the request said, if anything.
        got: Option<String>,
        /// What it must say.
        expected: &'static str,
    },

    /// The body's checksum (tus `Upload-Checksum`) does not match the bytes received: nothing
    /// of them is stored and the offset stays (`460 Checksum Mismatch`).
    #[error(
        "{algorithm} checksum of the {received} bytes received is {actual}, the request says {expected}"
    )]
    ChecksumMismatch {
        /// The algorithm (`sha1`, `md5`, `sha256`).
        algorithm: &'static str,
        /// The checksum the request declared (base64).
        expected: String,
        /// The checksum of the bytes received (base64).
        actual: String,
        /// Bytes received.
        received: u64,
    },

    /// The upload expired (it was idle longer than the expiry age) and is removed now; `410
    /// Gone`, then `404`.
    #[error("upload {identifier:?} expired")]
    Expired {
        /// The upload's id.
        identifier: String,
    },

    /// The request may not do this to this upload, whatever it says (appending to a tus final
    /// upload, which is made of its partial uploads); `403 Forbidden`.
    #[error("upload {identifier:?}: {reason}")]
    Forbidden {
        /// The upload's id.
        identifier: String,
        /// Why.
        reason: &'static str,
    },

    /// The upload is complete: nothing more may be appended (`400`; the IETF draft's
    /// `completed-upload` problem).
    #[error("upload {identifier:?} is complete: nothing more may be appended")]
    UploadComplete {
        /// The upload's id.
        identifier: String,
    },

    /// The request's length disagrees with the upload's: a length declared twice with two
    /// values, a length smaller than what is stored, an upload said complete short of its
    /// length (`400`; the IETF draft's `inconsistent-upload-length` problem).
    #[error("upload {identifier:?}: {reason}")]
    InconsistentLength {
        /// The upload's id.
        identifier: String,
        /// What disagrees.
        reason: String,
    },

    /// Another request took this upload over while this one was receiving its body (a client
    /// resuming after it thought this connection dead): the bytes received so far are kept,
    /// and this request is answered `400` so that two live clients do not take turns.
    #[error(
        "upload {identifier:?} was taken over by another request after {kept} bytes of this one"
    )]
    TakenOver {
        /// The upload's id.
        identifier: String,
        /// Bytes of this request that were kept.
        kept: u64,
    },

    /// The request's method is not one the route answers (`405 Method Not Allowed`).
    #[error("method {method} is not allowed here")]
    MethodNotAllowed {
        /// The method.
        method: String,
    },

    /// An object-store request failed (the `s3` store).
    #[error("object store: {op} {key}: {reason}")]
    ObjectStore {
        /// What was being done.
        op: &'static str,
        /// The object key involved.
        key: String,
        /// What the store answered.
        reason: String,
        /// Whether retrying may help (throttling, a timeout, a connection error).
        transient: bool,
    },
}

/// What is wrong with a parameter (see [`Error::BadRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// It is not there.
    Missing,
    /// It is empty.
    Empty,
    /// It is not valid UTF-8.
    NotUtf8,
    /// The parameter's name is not valid UTF-8 (the field shows it decoded lossily).
    NameNotUtf8,
    /// It is longer than allowed.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// It contains a control character.
    ControlCharacter(char),
    /// It is not a non-negative decimal integer.
    NotAnInteger,
    /// It is a negative integer.
    Negative,
    /// It is an integer too large for 64 bits.
    Overflow,
    /// It is an integer out of the range allowed.
    OutOfRange {
        /// The least value allowed.
        first: u64,
        /// The greatest value allowed.
        last: u64,
    },
    /// No upload protocol recognises the request's parameters.
    Unrecognised {
        /// The protocols the endpoint speaks.
        protocols: Vec<&'static str>,
    },
    /// Anything else, said in words (a geometry that does not add up, say).
    Invalid(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing => f.write_str("missing"),
            Problem::Empty => f.write_str("must not be empty"),
            Problem::NotUtf8 => f.write_str("is not valid UTF-8"),
            Problem::NameNotUtf8 => f.write_str("parameter name is not valid UTF-8"),
            Problem::TooLong { len, max } => {
                write!(f, "{len} bytes long, longer than the {max} bytes allowed")
            }
            Problem::ControlCharacter(c) => write!(f, "contains the control character {c:?}"),
            Problem::NotAnInteger => f.write_str("is not a non-negative integer"),
            Problem::Negative => f.write_str("is negative, expected a non-negative integer"),
            Problem::Overflow => write!(f, "is too large (the maximum is {})", u64::MAX),
            Problem::OutOfRange { first, last } if *last == u64::MAX => {
                write!(f, "must be at least {first}")
            }
            Problem::OutOfRange { first, last } => write!(f, "is out of range {first}..={last}"),
            Problem::Unrecognised { protocols } => write!(
                f,
                "no upload protocol recognised (this endpoint speaks {})",
                protocols.join(", ")
            ),
            Problem::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// `"value" ` for messages, or nothing.
fn quoted_value(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{v:?} "),
        None => String::new(),
    }
}

impl Error {
    /// The HTTP status code for this error; the one mapping every adapter uses.
    ///
    /// | error | status |
    /// |---|---|
    /// | [`NoContent`](Error::NoContent) | 204 (test request: chunk absent) |
    /// | [`BadRequest`](Error::BadRequest), [`Incomplete`](Error::Incomplete), [`NoSession`](Error::NoSession), [`FieldAfterFile`](Error::FieldAfterFile) | 400 |
    /// | [`NotFound`](Error::NotFound) | 404 |
    /// | [`BodyTooSlow`](Error::BodyTooSlow), [`TimedOut`](Error::TimedOut) | 408 |
    /// | [`Conflict`](Error::Conflict), [`GeometryMismatch`](Error::GeometryMismatch), [`ContentMismatch`](Error::ContentMismatch), [`Restarted`](Error::Restarted) | 409 |
    /// | [`TooLarge`](Error::TooLarge) | 413 |
    /// | [`Refused`](Error::Refused) | 415 |
    /// | [`TooManyUploads`](Error::TooManyUploads) | 429 |
    /// | [`Rejected`](Error::Rejected) | its own (400-499) |
    /// | [`UnsupportedVersion`](Error::UnsupportedVersion) | 412 |
    /// | [`OffsetMismatch`](Error::OffsetMismatch) | 409 |
    /// | [`UnsupportedMediaType`](Error::UnsupportedMediaType) | 415 |
    /// | [`ChecksumMismatch`](Error::ChecksumMismatch) | 460 (tus: Checksum Mismatch) |
    /// | [`Expired`](Error::Expired) | 410 |
    /// | [`Forbidden`](Error::Forbidden) | 403 |
    /// | [`UploadComplete`](Error::UploadComplete), [`InconsistentLength`](Error::InconsistentLength), [`TakenOver`](Error::TakenOver) | 400 |
    /// | [`MethodNotAllowed`](Error::MethodNotAllowed) | 405 |
    /// | [`Unsupported`](Error::Unsupported) | 501 |
    /// | [`Busy`](Error::Busy), a transient [`ObjectStore`](Error::ObjectStore) failure | 503 |
    /// | [`Io`](Error::Io) with the disk full | 507 |
    /// | other [`Io`](Error::Io), [`InvalidStorageKey`](Error::InvalidStorageKey), [`InvalidSigningKey`](Error::InvalidSigningKey), [`Corrupt`](Error::Corrupt), [`SizeMismatch`](Error::SizeMismatch), [`TaskFailed`](Error::TaskFailed), [`ObjectStore`](Error::ObjectStore) | 500 |
    pub fn status(&self) -> u16 {
        match self {
            Error::NoContent { .. } => 204,
            Error::BadRequest { .. }
            | Error::Incomplete { .. }
            | Error::NoSession { .. }
            | Error::FieldAfterFile { .. } => 400,
            Error::NotFound { .. } => 404,
            Error::BodyTooSlow { .. } | Error::TimedOut { .. } => 408,
            Error::UnsupportedVersion { .. } => 412,
            Error::OffsetMismatch { .. } => 409,
            Error::UnsupportedMediaType { .. } => 415,
            Error::ChecksumMismatch { .. } => 460,
            Error::Expired { .. } => 410,
            Error::Forbidden { .. } => 403,
            Error::UploadComplete { .. }
            | Error::InconsistentLength { .. }
            | Error::TakenOver { .. } => 400,
            Error::MethodNotAllowed { .. } => 405,
            Error::Unsupported { .. } => 501,
            Error::Conflict { .. }
            | Error::GeometryMismatch { .. }
            | Error::ContentMismatch { .. }
            | Error::Restarted { .. } => 409,
            Error::Rejected { status, .. } => {
                if (400..500).contains(status) {
                    *status
                } else {
                    400
                }
            }
            Error::TooLarge { .. } => 413,
            Error::Refused { .. } => 415,
            Error::TooManyUploads { .. } => 429,
            Error::Busy { .. }
            | Error::ObjectStore {
                transient: true, ..
            } => 503,
            Error::Io { source, .. } if is_storage_full(source) => 507,
            Error::Io { .. }
            | Error::InvalidStorageKey { .. }
            | Error::InvalidSigningKey { .. }
            | Error::Corrupt { .. }
            | Error::SizeMismatch { .. }
            | Error::TaskFailed { .. }
            | Error::ObjectStore { .. } => 500,
        }
    }

    /// Whether retrying the same request later could succeed (busy, storage full, I/O trouble),
    /// as opposed to a request that is wrong and will be wrong again. Adapters use it for
    /// Fine Uploader's `preventRetry`.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Busy { .. }
                | Error::Io { .. }
                | Error::TooManyUploads { .. }
                | Error::BodyTooSlow { .. }
                | Error::Restarted { .. }
                | Error::OffsetMismatch { .. }
                | Error::ChecksumMismatch { .. }
                | Error::TaskFailed { .. }
                | Error::ObjectStore {
                    transient: true,
                    ..
                }
                | Error::TimedOut { .. }
        )
    }

    /// The message to show a client: this error's text, except where that text names files of
    /// the server (log those; clients get a plain sentence). No client message carries a server
    /// path: not for server-side failures, and not for [`Conflict`](Error::Conflict), whose
    /// answer says only that the destination is taken.
    ///
    /// # Security
    /// A `409` for a taken destination tells the client that a file of that name exists where
    /// its file was to go. When several users share one destination folder, that is a fact
    /// about another user's files (and so is the ` (1)` name
    /// [`ConflictPolicy::Rename`](crate::ConflictPolicy::Rename) picks): give each user a folder
    /// of their own with [`ConfigBuilder::destination`](crate::ConfigBuilder::destination).
    pub fn client_message(&self) -> String {
        match self {
            Error::Conflict { .. } => {
                "a file of this name already exists at the destination and is not replaced; \
                 rename the file and upload it again"
                    .to_owned()
            }
            Error::Io { source, .. } if is_storage_full(source) => {
                "the server's storage is full; retry later".to_owned()
            }
            Error::Io { op, .. } => format!("the server could not {op} (details in its log)"),
            Error::InvalidStorageKey { .. } => {
                "the server's hash-name callback is misconfigured (details in its log)".to_owned()
            }
            Error::InvalidSigningKey { .. } => {
                "the server's session signing key is misconfigured (details in its log)".to_owned()
            }
            Error::Corrupt { .. } | Error::SizeMismatch { .. } | Error::TaskFailed { .. } => {
                "the server failed to handle the upload (details in its log)".to_owned()
            }
            Error::ObjectStore { op, .. } => {
                format!("the server's storage could not {op} (details in its log)")
            }
            other => other.to_string(),
        }
    }

    /// Seconds after which a client may retry, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Busy { retry_after } => Some(*retry_after),
            Error::ObjectStore {
                transient: true, ..
            } => Some(2),
            Error::TooManyUploads { .. } => Some(5),
            _ => None,
        }
    }

    /// A bad request whose problem is said in words.
    pub(crate) fn bad(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::BadRequest {
            field: field.into(),
            value: None,
            problem: Problem::Invalid(reason.into()),
        }
    }

    /// A bad request with a problem of a known kind.
    pub(crate) fn problem(field: impl Into<String>, problem: Problem) -> Error {
        Error::BadRequest {
            field: field.into(),
            value: None,
            problem,
        }
    }

    /// A bad request quoting the value sent (cut to 64 characters).
    pub(crate) fn bad_value(field: impl Into<String>, value: &str, problem: Problem) -> Error {
        const MAX: usize = 64;
        let value = if value.chars().count() <= MAX {
            value.to_owned()
        } else {
            let head: String = value.chars().take(MAX).collect();
            format!("{head}...")
        };
        Error::BadRequest {
            field: field.into(),
            value: Some(value),
            problem,
        }
    }

    /// A missing parameter.
    pub(crate) fn missing(field: impl Into<String>) -> Error {
        Error::problem(field, Problem::Missing)
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// `ENOSPC` / `EDQUOT`, and `EFBIG` (a file-size rlimit): retrying after space is freed helps.
fn is_storage_full(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// Attaches an operation and a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_matches_the_design_table() {
        let cases: Vec<(Error, u16)> = vec![
            (
                Error::NoContent {
                    chunk: 1,
                    identifier: "x".into(),
                },
                204,
            ),
            (Error::bad("flowChunkNumber", "missing"), 400),
            (
                Error::TooLarge {
                    limit_kind: Limit::FileSize,
                    value: 2,
                    limit: 1,
                },
                413,
            ),
            (
                Error::Conflict {
                    location: crate::Location::Path("a".into()),
                },
                409,
            ),
            (
                Error::Rejected {
                    status: 403,
                    reason: "no".into(),
                },
                403,
            ),
            (
                Error::Rejected {
                    status: 200,
                    reason: "no".into(),
                },
                400,
            ),
            (
                Error::Refused {
                    reason: "no".into(),
                },
                415,
            ),
            (Error::Busy { retry_after: 1 }, 503),
            (
                Error::io("write", "f", io::ErrorKind::StorageFull.into()),
                507,
            ),
            (Error::io("write", "f", io::ErrorKind::Other.into()), 500),
            (
                Error::TimedOut {
                    deadline: Deadline::Fields,
                    limit: std::time::Duration::from_secs(30),
                },
                408,
            ),
            (
                Error::FieldAfterFile {
                    field: "flowTotalSize".into(),
                },
                400,
            ),
            (
                Error::TooLarge {
                    limit_kind: Limit::PartHeaders,
                    value: 20_000,
                    limit: 16_384,
                },
                413,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
        }
    }

    #[test]
    fn client_messages_hide_server_paths() {
        let e = Error::io(
            "write chunk staging file",
            "/srv/secret/chunks/x",
            io::ErrorKind::PermissionDenied.into(),
        );
        assert!(
            e.to_string().contains("/srv/secret"),
            "the log keeps the path"
        );
        assert!(
            !e.client_message().contains("/srv"),
            "{}",
            e.client_message()
        );
        let full = Error::io("write", "/srv/x", io::ErrorKind::StorageFull.into());
        assert_eq!(
            full.client_message(),
            "the server's storage is full; retry later"
        );
        let bad = Error::bad("flowChunkNumber", "0 is out of range 1..=3");
        assert_eq!(bad.client_message(), bad.to_string());
        let conflict = Error::Conflict {
            location: crate::Location::Path("/srv/secret/files/report.pdf".into()),
        };
        assert!(
            conflict.to_string().contains("/srv/secret"),
            "the log keeps it"
        );
        let message = conflict.client_message();
        assert!(
            !message.contains("/srv") && !message.contains("report.pdf"),
            "{message}"
        );
        assert_eq!(conflict.status(), 409);
    }

    #[test]
    fn bad_values_are_quoted() {
        let quoted = Error::bad_value("flowChunkNumber", "-5", Problem::Negative);
        assert_eq!(
            quoted.to_string(),
            "flowChunkNumber: \"-5\" is negative, expected a non-negative integer"
        );
    }

    #[test]
    fn session_errors_map_to_their_statuses() {
        let no_session = Error::NoSession {
            cookie: "cu_session",
        };
        assert_eq!(no_session.status(), 400);
        assert!(!no_session.is_retryable());
        assert!(
            no_session
                .client_message()
                .contains("load this site's page first")
        );
        let key = Error::InvalidSigningKey {
            length: 3,
            minimum: 32,
        };
        assert_eq!(key.status(), 500);
        assert!(
            !key.client_message().contains('3'),
            "{}",
            key.client_message()
        );
    }

    #[test]
    fn messages_name_the_value() {
        let e = Error::TooLarge {
            limit_kind: Limit::ChunkSize,
            value: 10,
            limit: 5,
        };
        assert_eq!(e.to_string(), "chunk size 10 is over the limit of 5");
        let e = Error::TimedOut {
            deadline: Deadline::Idle,
            limit: std::time::Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "time without a byte from the client is over the limit of 1.5s"
        );
        assert!(e.is_retryable());
    }
}
