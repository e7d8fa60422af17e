//! [`RequestLimits`]: what one connection and one request may make the server hold, and for how
//! long. The core only carries them; the bundled adapters and their serving loops apply them.

use std::time::Duration;

/// Bounds on what a request may make the server hold and how long each phase may take.
///
/// Every byte a request can make the server keep is bounded by one of these, or by a
/// [`Limits`](crate::Limits) size, whatever part of the request it is in:
///
/// | part of the request | bound | default |
/// |---|---|---|
/// | request line and headers | [`max_head_bytes`](Self::max_head_bytes) (431 past it) | 64 KiB |
/// | bytes before a multipart body's first boundary | [`max_part_header_bytes`](Self::max_part_header_bytes) (413) | 16 KiB |
/// | one multipart part's headers | [`max_part_header_bytes`](Self::max_part_header_bytes) (413) | 16 KiB |
/// | one text field | [`MAX_PARAM_LEN`](crate::MAX_PARAM_LEN) (400) | 8 KiB |
/// | number of fields (parts, or urlencoded pairs) | [`max_fields`](Self::max_fields) (413) | 256 |
/// | all text fields together, or a urlencoded body | [`max_form_bytes`](Self::max_form_bytes) (413) | 64 KiB |
/// | the request body | [`Uploads::max_request_body`](crate::Uploads::max_request_body) (413) | max chunk size + 64 KiB |
/// | the chunk, in memory while it streams to disk | two 64 KiB batches | |
///
/// And every phase has a deadline (408, or the connection closed when no answer is possible):
///
/// | phase | deadline | default |
/// |---|---|---|
/// | the request head, from the connection's start or the previous answer (so also the keep-alive idle limit) | [`head_timeout`](Self::head_timeout) (connection closed) | 30 s |
/// | any wait for the client's next bytes | [`idle_timeout`](Self::idle_timeout) | 30 s |
/// | the form's fields: part headers and text fields, or a urlencoded body | [`fields_timeout`](Self::fields_timeout) | 30 s |
/// | the chunk's bytes | at least [`min_body_bytes`](Self::min_body_bytes) in every [`body_window`](Self::body_window) | 16 KiB per 30 s |
/// | the chunk's bytes, in all | [`body_timeout`](Self::body_timeout) | 1 hour |
///
/// Time counts while the server waits for the client, not while it writes to disk or waits
/// for a body slot ([`ConfigBuilder::max_concurrent_bodies`](crate::ConfigBuilder::max_concurrent_bodies)).
///
/// [`max_head_bytes`](Self::max_head_bytes), [`head_timeout`](Self::head_timeout) and
/// [`max_connections`](Self::max_connections) belong to the connection, not the request: the
/// serving loops of the adapters (`adapter::axum::serve`, `adapter::hyper::serve`) apply them,
/// and an actix-web server takes them as its own settings (see `adapter::actix`). Everything
/// else is applied by every adapter to every request, from the [`Config`](crate::Config).
///
/// # Memory
///
/// A connection that sends a request head holds at most `max_head_bytes` of it; one that
/// sends a form, at most `max_form_bytes` of fields plus one part's headers
/// (`max_part_header_bytes`); one that streams a chunk, two 64 KiB batches; each plus the HTTP
/// layer's read-ahead (128 KiB in the adapters' serving loops) and its state. Measured with the
/// defaults (`tests/hostile_connections.rs`, 100 connections at once against the example
/// server): from 12 KiB per connection (silent) to 222 KiB (fields up to the limit, then
/// silence), so `max_connections` (1024) connections hold about 230 MiB however they
/// misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request head (request line and headers), in bytes (default 64 KiB). A longer
    /// one is answered `431` by the HTTP layer and the connection closed.
    pub max_head_bytes: usize,
    /// Time a connection has to send a complete request head, from its start or from the
    /// answer to its previous request (default 30 s): a connection that sends nothing, or
    /// half a head, is closed after it. It is also the limit on an idle keep-alive connection.
    pub head_timeout: Duration,
    /// Largest part header block of a multipart form (from its boundary to the blank line), and
    /// largest preamble before the first boundary, in bytes (default 16 KiB).
    pub max_part_header_bytes: usize,
    /// Most fields in one form: parts of a multipart form (the file part included), pairs of a
    /// urlencoded body (default 256; widgets send about ten).
    pub max_fields: usize,
    /// Most bytes of text fields in one form, names and values together, and the largest
    /// urlencoded body (default 64 KiB).
    pub max_form_bytes: u64,
    /// Longest the client may send nothing while the server waits for the rest of its request
    /// (default 30 s).
    pub idle_timeout: Duration,
    /// Longest the server waits, in all, for a form's fields: every part header and text field
    /// of a multipart form, or a whole urlencoded body (default 30 s). The file part's bytes do
    /// not count; [`body_timeout`](Self::body_timeout) and the rate rule govern them.
    pub fields_timeout: Duration,
    /// Fewest bytes a chunk's body must deliver in every [`body_window`](Self::body_window) of
    /// time spent waiting for it (default 16 KiB, about 550 bytes per second with the default
    /// window): a body that stalls or trickles is refused with `408` instead of holding a body
    /// slot, and its memory, for ever.
    pub min_body_bytes: u64,
    /// The window of [`min_body_bytes`](Self::min_body_bytes) (default 30 s).
    pub body_window: Duration,
    /// Longest the server waits, in all, for one chunk's body (default 1 hour).
    pub body_timeout: Duration,
    /// Most connections served at once (default 1024); further ones wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
}

impl Default for RequestLimits {
    fn default() -> RequestLimits {
        RequestLimits {
            max_head_bytes: 64 * 1024,
            head_timeout: Duration::from_secs(30),
            max_part_header_bytes: 16 * 1024,
            max_fields: 256,
            max_form_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(30),
            fields_timeout: Duration::from_secs(30),
            min_body_bytes: 16 * 1024,
            body_window: Duration::from_secs(30),
            body_timeout: Duration::from_secs(3600),
            max_connections: 1024,
        }
    }
}
