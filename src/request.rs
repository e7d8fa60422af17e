//! What a framework adapter supplies: parameters by name, the caller's scope, and the chunk body.
//!
//! [`ChunkRequest`] is the request trait (flowjs's `IRequest`): an adapter only answers
//! "parameter by name", "is this a test request", "the body" and "the scope"; the typed view
//! ([`ChunkInfo`](crate::ChunkInfo): chunk number, sizes, totals, names) is built from those raw
//! parameters by a [dialect](crate::dialect). [`ChunkBody`] is the file trait (flowjs's `IFile`):
//! the chunk's bytes, either as a stream or as a file already on disk.
//!
//! [`RawRequest`] is a ready implementation over [`Params`] that the bundled adapters use and
//! that custom adapters can use too.

use std::fmt;
use std::io::Read;

use tempfile::NamedTempFile;

use crate::error::{Error, Problem, Result};

/// One request to the upload endpoint, as the core sees it.
///
/// Implement it for your framework's request type (see `examples/custom_adapter.rs`), or build
/// a [`RawRequest`].
pub trait ChunkRequest {
    /// The value of the parameter `name` (query string or form field), if present.
    fn param(&self, name: &str) -> Option<&str>;

    /// Whether this is a test request (flow.js / resumable.js `GET`: "do you have this chunk?")
    /// rather than an upload.
    fn is_test(&self) -> bool;

    /// The caller's scope: a user id, session id or tenant, chosen by the application. Uploads of
    /// different scopes never share chunks, even with identical identifiers. May be empty.
    fn scope(&self) -> &str;

    /// The file name the multipart part carried (`Content-Disposition: ...; filename="..."`), if
    /// any. Dropzone sends the name nowhere else.
    fn part_filename(&self) -> Option<&str> {
        None
    }

    /// Takes the chunk's body. Called at most once per request, and only for uploads that passed
    /// validation, so an adapter that streams can refuse a bad chunk before reading its body.
    fn take_body(&mut self) -> Option<ChunkBody>;
}

/// The bytes of one chunk (flowjs's `IFile`).
pub enum ChunkBody {
    /// A stream, read with a small buffer straight into the upload's storage.
    Stream(Box<dyn Read + Send>),
    /// A file already on disk (for instance a multipart part the adapter staged with
    /// [`Uploads::incoming_file`](crate::Uploads::incoming_file), which keeps it locked so the
    /// sweep leaves it alone). Storing it is a kernel copy into place; the file is deleted
    /// afterwards.
    File(NamedTempFile),
}

impl ChunkBody {
    /// A body read from any `Read`.
    pub fn stream(reader: impl Read + Send + 'static) -> ChunkBody {
        ChunkBody::Stream(Box::new(reader))
    }

    /// A body held in memory (tests, small chunks).
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> ChunkBody {
        ChunkBody::stream(std::io::Cursor::new(bytes.into()))
    }
}

impl fmt::Debug for ChunkBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkBody::Stream(_) => f.write_str("ChunkBody::Stream(..)"),
            ChunkBody::File(file) => f
                .debug_tuple("ChunkBody::File")
                .field(&file.path())
                .finish(),
        }
    }
}

/// Request parameters: query-string pairs and form fields, in arrival order.
///
/// When a name occurs more than once the last value wins, so form fields (added after the query
/// string) take precedence over query parameters of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Longest parameter value accepted, in bytes. Longer values are refused before they are stored.
pub const MAX_PARAM_LEN: usize = 8 * 1024;

impl Params {
    /// No parameters.
    pub fn new() -> Params {
        Params::default()
    }

    /// Parses an `application/x-www-form-urlencoded` string (a query string without the `?`,
    /// or a urlencoded form body) and appends its pairs.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the parameter when a name or value is not valid UTF-8 after
    /// percent-decoding, or when a value is longer than [`MAX_PARAM_LEN`].
    pub fn extend_from_urlencoded(&mut self, input: &[u8]) -> Result<()> {
        for pair in input.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &pair[..0]),
            };
            let name = decode_component(name).map_err(|_| {
                Error::problem(
                    String::from_utf8_lossy(name).into_owned(),
                    Problem::NameNotUtf8,
                )
            })?;
            let value = decode_component(value)
                .map_err(|_| Error::problem(name.clone(), Problem::NotUtf8))?;
            self.insert(name, value)?;
        }
        Ok(())
    }

    /// Parses a query string or urlencoded body into new `Params`. See
    /// [`extend_from_urlencoded`](Params::extend_from_urlencoded).
    ///
    /// # Errors
    /// As [`extend_from_urlencoded`](Params::extend_from_urlencoded).
    pub fn from_urlencoded(input: &[u8]) -> Result<Params> {
        let mut params = Params::new();
        params.extend_from_urlencoded(input)?;
        Ok(params)
    }

    /// Appends one parameter (a form field, say).
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the value is longer than [`MAX_PARAM_LEN`].
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let (name, value) = (name.into(), value.into());
        if value.len() > MAX_PARAM_LEN {
            return Err(Error::problem(
                name,
                Problem::TooLong {
                    len: value.len(),
                    max: MAX_PARAM_LEN,
                },
            ));
        }
        self.pairs.push((name, value));
        Ok(())
    }

    /// Appends a form field given as raw bytes (a multipart text field).
    ///
    /// # Errors
    /// [`Error::BadRequest`] when it is not UTF-8 or longer than [`MAX_PARAM_LEN`].
    pub fn insert_bytes(&mut self, name: impl Into<String>, value: Vec<u8>) -> Result<()> {
        let name = name.into();
        match String::from_utf8(value) {
            Ok(value) => self.insert(name, value),
            Err(_) => Err(Error::problem(name, Problem::NotUtf8)),
        }
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether any parameter is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// All pairs in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Params {
    /// Collects pairs without the length check (for tests and trusted input).
    fn from_iter<T: IntoIterator<Item = (N, V)>>(iter: T) -> Params {
        Params {
            pairs: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

/// Decodes one urlencoded component: `+` is a space, `%XX` a byte; malformed escapes are kept
/// literally, as browsers and the WHATWG URL parser do.
fn decode_component(input: &[u8]) -> std::result::Result<String, std::string::FromUtf8Error> {
    let plus_as_space: Vec<u8> = input
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes)
}

/// Whether the request is a test or an upload, as the HTTP method says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `GET`: does the server have this chunk?
    Test,
    /// `POST` / `PUT` / `PATCH`: store this chunk.
    Upload,
}

/// A ready [`ChunkRequest`]: parameters, kind, scope, optional part file name and body.
///
/// ```
/// use chunked_upload::{ChunkBody, Params, RawRequest, RequestKind};
///
/// let params = Params::from_urlencoded(b"flowChunkNumber=1&flowTotalChunks=1").unwrap();
/// let request = RawRequest::new(RequestKind::Upload, params)
///     .with_scope("session-42")
///     .with_body(ChunkBody::bytes(b"hello".to_vec()));
/// # let _ = request;
/// ```
#[derive(Debug)]
pub struct RawRequest {
    kind: RequestKind,
    params: Params,
    scope: String,
    part_filename: Option<String>,
    body: Option<ChunkBody>,
}

impl RawRequest {
    /// A request of `kind` with these parameters, an empty scope and no body.
    pub fn new(kind: RequestKind, params: Params) -> RawRequest {
        RawRequest {
            kind,
            params,
            scope: String::new(),
            part_filename: None,
            body: None,
        }
    }

    /// Sets the caller's scope.
    pub fn with_scope(mut self, scope: impl Into<String>) -> RawRequest {
        self.scope = scope.into();
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: ChunkBody) -> RawRequest {
        self.body = Some(body);
        self
    }

    /// Sets the file name the multipart part carried.
    pub fn with_part_filename(mut self, name: impl Into<String>) -> RawRequest {
        self.part_filename = Some(name.into());
        self
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The parameters, to add form fields as they arrive.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// Sets the body in place.
    pub fn set_body(&mut self, body: ChunkBody) {
        self.body = Some(body);
    }

    /// Sets the part file name in place.
    pub fn set_part_filename(&mut self, name: impl Into<String>) {
        self.part_filename = Some(name.into());
    }

    /// The request kind.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }
}

impl ChunkRequest for RawRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    fn is_test(&self) -> bool {
        self.kind == RequestKind::Test
    }

    fn scope(&self) -> &str {
        &self.scope
    }

    fn part_filename(&self) -> Option<&str> {
        self.part_filename.as_deref()
    }

    fn take_body(&mut self) -> Option<ChunkBody> {
        self.body.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_decoding() {
        let p = Params::from_urlencoded(b"a=1&b=x+y%20z&c&=empty&d=%E2%9C%93&a=2&&e=%zz").unwrap();
        assert_eq!(p.get("a"), Some("2"), "last value wins");
        assert_eq!(p.get("b"), Some("x y z"));
        assert_eq!(p.get("c"), Some(""));
        assert_eq!(p.get(""), Some("empty"));
        assert_eq!(p.get("d"), Some("✓"));
        assert_eq!(p.get("e"), Some("%zz"), "malformed escapes stay literal");
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn invalid_utf8_is_a_bad_request_naming_the_field() {
        let err = Params::from_urlencoded(b"flowFilename=%FF%FE").unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "flowFilename"));
    }

    #[test]
    fn overlong_values_are_refused() {
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        let err = Params::from_urlencoded(format!("flowIdentifier={long}").as_bytes()).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "flowIdentifier"));
    }

    #[test]
    fn form_fields_override_query() {
        let mut p = Params::from_urlencoded(b"n=1").unwrap();
        p.insert("n", "2").unwrap();
        assert_eq!(p.get("n"), Some("2"));
    }
}
