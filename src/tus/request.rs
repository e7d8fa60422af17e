//! [`TusRequest`]: a tus request as any framework exposes it (method, where the tus endpoint is
//! mounted, the upload id in the path, the headers tus reads, the caller's scope), and the
//! protocol it speaks ([`Protocol`]: tus 1.0 or an IETF draft).

use super::headers;
use crate::error::{Error, Result};

/// The headers the tus handler reads; any other header given to [`TusRequest::header`] is
/// dropped, so memory stays bounded whatever a client sends.
const READ: &[&str] = &[
    "tus-resumable",
    "upload-draft-interop-version",
    "upload-length",
    "upload-defer-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
    "upload-concat",
    "upload-complete",
    "content-type",
    "content-length",
    "transfer-encoding",
    "x-http-method-override",
];

/// The tus version this server speaks.
pub const TUS_VERSION: &str = "1.0.0";

/// The IETF draft interop versions this server speaks (`Upload-Draft-Interop-Version`): 5 is
/// what tus-js-client calls `ietf-draft-03`, 6 its `ietf-draft-05`.
pub const INTEROP_VERSIONS: [u8; 2] = [5, 6];

/// The protocol a request speaks, told by its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// tus 1.0 (`Tus-Resumable: 1.0.0`).
    Tus,
    /// draft-ietf-httpbis-resumable-upload, by its `Upload-Draft-Interop-Version`.
    Ietf(u8),
}

impl Protocol {
    /// Whether this is a draft whose appends must be `application/partial-upload` (interop 6
    /// and later; version 5 takes any media type).
    pub(crate) fn wants_partial_upload_type(self) -> bool {
        matches!(self, Protocol::Ietf(v) if v >= 6)
    }
}

/// One tus request, before its body.
///
/// The adapter gives the method, the mount (the path of the creation endpoint, e.g. `/tus/`:
/// upload URLs are the mount plus an id, and `Location`s are written that way), the id (the
/// path segment after the mount, none for the creation endpoint), the caller's scope and the
/// request's headers (only those tus reads are kept).
///
/// ```
/// use chunked_upload::tus::TusRequest;
///
/// // PATCH /tus/abc, as a nested router sees it: the full path, and the path inside the mount.
/// let request = TusRequest::from_paths("PATCH", "/tus/abc", "/abc")
///     .with_scope("user-1")
///     .with_header("Tus-Resumable", b"1.0.0")
///     .with_header("Upload-Offset", b"0")
///     .with_header("X-Unrelated", b"dropped");
/// assert_eq!(request.mount(), "/tus/");
/// assert_eq!(request.id(), Some("abc"));
/// assert_eq!(request.get("upload-offset"), Some(&b"0"[..]));
/// assert_eq!(request.get("x-unrelated"), None);
/// ```
#[derive(Debug, Clone)]
pub struct TusRequest {
    method: String,
    mount: String,
    id: Option<String>,
    scope: String,
    headers: Vec<(&'static str, Vec<u8>)>,
}

impl TusRequest {
    /// A request of `method` to the endpoint mounted at `mount` (a trailing `/` is added when
    /// missing), for the upload `id` (`None`: the creation endpoint itself).
    pub fn new(method: &str, mount: &str, id: Option<&str>) -> TusRequest {
        let mut mount = mount.to_owned();
        if !mount.ends_with('/') {
            mount.push('/');
        }
        TusRequest {
            method: method.to_ascii_uppercase(),
            mount,
            id: id.filter(|id| !id.is_empty()).map(str::to_owned),
            scope: String::new(),
            headers: Vec::new(),
        }
    }

    /// A request as a router mounted somewhere sees it: the request's full path (`/tus/abc`)
    /// and the path within the mount (`/abc`, or `/` or empty for the creation endpoint).
    pub fn from_paths(method: &str, full_path: &str, within_mount: &str) -> TusRequest {
        let inner = within_mount.trim_start_matches('/');
        let mount = full_path
            .strip_suffix(inner)
            .unwrap_or(full_path)
            .trim_end_matches('/');
        let inner = inner.trim_end_matches('/');
        TusRequest::new(method, mount, (!inner.is_empty()).then_some(inner))
    }

    /// Sets the caller's scope (a user id, a session): another scope never sees the upload.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> TusRequest {
        self.scope = scope.into();
        self
    }

    /// Adds a header (any case); kept only if tus reads it. A header sent twice is kept twice
    /// (and refused by the handler where it must be single).
    pub fn header(&mut self, name: &str, value: &[u8]) {
        if let Some(known) = READ.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            // At most a few per header: a client repeating one endlessly gains nothing.
            if self.headers.iter().filter(|(n, _)| n == known).count() < 4 {
                self.headers.push((known, value.to_vec()));
            }
        }
    }

    /// [`header`](Self::header), chained.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &[u8]) -> TusRequest {
        self.header(name, value);
        self
    }

    /// The method as sent (uppercase).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The mount: the creation endpoint's path, ending in `/`.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The upload id in the path, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The caller's scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The value of header `name` (lowercase), if it was sent once.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of header `name` (lowercase), if sent.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when it was sent more than once.
    pub(crate) fn single(&self, name: &'static str) -> Result<Option<&[u8]>> {
        let mut values = self.headers.iter().filter(|(n, _)| *n == name);
        let first = values.next().map(|(_, v)| v.as_slice());
        if values.next().is_some() {
            return Err(Error::bad(header_name(name), "sent more than once"));
        }
        Ok(first)
    }

    /// The method to act on: `X-HTTP-Method-Override` of a `POST`, else the method.
    pub(crate) fn effective_method(&self) -> Result<String> {
        match (self.method.as_str(), self.single("x-http-method-override")?) {
            ("POST", Some(value)) => headers::parse_method(value),
            _ => Ok(self.method.clone()),
        }
    }

    /// The protocol the request speaks.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when neither `Tus-Resumable: 1.0.0` (which `OPTIONS` may
    /// leave out) nor a supported `Upload-Draft-Interop-Version` is there.
    pub(crate) fn protocol(&self, method: &str) -> Result<Protocol> {
        if let Some(value) = self.single("upload-draft-interop-version")? {
            let unsupported = || Error::UnsupportedVersion {
                header: "Upload-Draft-Interop-Version",
                value: Some(String::from_utf8_lossy(value).chars().take(32).collect()),
                supported: "5, 6",
            };
            let version = headers::parse_offset("Upload-Draft-Interop-Version", value)
                .map_err(|_| unsupported())?;
            return INTEROP_VERSIONS
                .into_iter()
                .find(|&v| u64::from(v) == version)
                .map(Protocol::Ietf)
                .ok_or_else(unsupported);
        }
        match self.single("tus-resumable")? {
            Some(v) if v.trim_ascii() == TUS_VERSION.as_bytes() => Ok(Protocol::Tus),
            None if method == "OPTIONS" => Ok(Protocol::Tus),
            value => Err(Error::UnsupportedVersion {
                header: "Tus-Resumable",
                value: value.map(|v| String::from_utf8_lossy(v).chars().take(32).collect()),
                supported: TUS_VERSION,
            }),
        }
    }

    /// Whether the request carries a body: a `Content-Length` above 0, or a chunked one.
    pub(crate) fn has_body(&self) -> Result<bool> {
        if self.get("transfer-encoding").is_some() {
            return Ok(true);
        }
        Ok(self.content_length()?.is_some_and(|n| n > 0))
    }

    /// `Content-Length`, if sent.
    pub(crate) fn content_length(&self) -> Result<Option<u64>> {
        self.single("content-length")?
            .map(|v| headers::parse_offset("Content-Length", v))
            .transpose()
    }
}

/// A header's name as the protocol spells it, for messages.
pub(crate) fn header_name(lower: &str) -> &'static str {
    match lower {
        "tus-resumable" => "Tus-Resumable",
        "upload-draft-interop-version" => "Upload-Draft-Interop-Version",
        "upload-length" => "Upload-Length",
        "upload-defer-length" => "Upload-Defer-Length",
        "upload-offset" => "Upload-Offset",
        "upload-metadata" => "Upload-Metadata",
        "upload-checksum" => "Upload-Checksum",
        "upload-concat" => "Upload-Concat",
        "upload-complete" => "Upload-Complete",
        "content-type" => "Content-Type",
        "content-length" => "Content-Length",
        "transfer-encoding" => "Transfer-Encoding",
        "x-http-method-override" => "X-HTTP-Method-Override",
        _ => "header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_give_mount_and_id() {
        let cases = [
            ("/tus/abc", "/abc", "/tus/", Some("abc")),
            ("/tus/", "/", "/tus/", None),
            ("/tus", "/", "/tus/", None),
            ("/tus", "", "/tus/", None),
            ("/a/b/tus/x1", "/x1", "/a/b/tus/", Some("x1")),
            ("/", "/", "/", None),
            ("/abc", "/abc", "/", Some("abc")),
        ];
        for (full, inner, mount, id) in cases {
            let r = TusRequest::from_paths("head", full, inner);
            assert_eq!((r.mount(), r.id()), (mount, id), "{full} {inner}");
            assert_eq!(r.method(), "HEAD");
        }
    }

    #[test]
    fn protocol_from_headers() {
        let r = |headers: &[(&str, &[u8])]| {
            let mut r = TusRequest::new("PATCH", "/tus", Some("a"));
            for (n, v) in headers {
                r.header(n, v);
            }
            r
        };
        assert_eq!(
            r(&[("Tus-Resumable", b"1.0.0")]).protocol("PATCH").unwrap(),
            Protocol::Tus
        );
        assert_eq!(
            r(&[("Upload-Draft-Interop-Version", b"6")])
                .protocol("PATCH")
                .unwrap(),
            Protocol::Ietf(6)
        );
        assert_eq!(r(&[]).protocol("OPTIONS").unwrap(), Protocol::Tus);
        for headers in [
            &[][..],
            &[("Tus-Resumable", &b"0.2.2"[..])],
            &[("Upload-Draft-Interop-Version", b"2")],
            &[("Upload-Draft-Interop-Version", b"x")],
        ] {
            assert!(matches!(
                r(headers).protocol("PATCH"),
                Err(Error::UnsupportedVersion { .. })
            ));
        }
        let twice = r(&[("Upload-Offset", b"1"), ("upload-offset", b"2")]);
        assert!(twice.single("upload-offset").is_err());
        let mut many = r(&[]);
        for _ in 0..100 {
            many.header("Upload-Offset", b"1");
        }
        assert_eq!(many.headers.len(), 4);
    }

    #[test]
    fn method_override_only_on_post() {
        let post = TusRequest::new("POST", "/tus", Some("a"))
            .with_header("X-HTTP-Method-Override", b"patch");
        assert_eq!(post.effective_method().unwrap(), "PATCH");
        let get = TusRequest::new("GET", "/tus", Some("a"))
            .with_header("X-HTTP-Method-Override", b"DELETE");
        assert_eq!(get.effective_method().unwrap(), "GET");
    }
}
