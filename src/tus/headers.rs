//! Parsers for the headers tus 1.0 and the IETF resumable-upload draft send, each strict, each
//! refusing with an [`Error::BadRequest`] that names the header (never a panic, whatever the
//! bytes: every one is fuzzed, `fuzz/fuzz_targets/tus_*.rs`).
//!
//! ```
//! use chunked_upload::tus::headers::{self, Checksum, ConcatHeader};
//!
//! let metadata = headers::parse_metadata(b"filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")?;
//! assert_eq!(metadata["filename"], "world_domination_plan.pdf");
//! assert_eq!(metadata["is_confidential"], "");
//!
//! let checksum = headers::parse_checksum(b"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")?;
//! assert_eq!(checksum.algorithm, Checksum::Sha1);
//!
//! let concat = headers::parse_concat(b"final;/files/a http://tus.example.org/files/b", "/files/")?;
//! assert_eq!(concat, ConcatHeader::Final(vec!["a".into(), "b".into()]));
//! assert_eq!(headers::parse_offset("Upload-Offset", b"1024")?, 1024);
//! assert!(headers::parse_offset("Upload-Offset", b"-1").is_err());
//! # Ok::<(), chunked_upload::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

use crate::chunk::parse_u64;
use crate::error::{Error, Problem, Result};

/// The longest `Upload-Metadata` accepted, in bytes (tusd accepts any; browsers send a few
/// hundred bytes).
pub const MAX_METADATA_LEN: usize = 16 * 1024;
/// Most partial uploads one final upload may name.
pub const MAX_CONCAT_PARTS: usize = 256;
/// The longest upload id accepted in a URL.
pub const MAX_ID_LEN: usize = 64;

/// Base64 as tus clients write it: the standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A header value as text: visible ASCII and spaces only, surrounding whitespace trimmed.
fn text<'a>(header: &str, value: &'a [u8]) -> Result<&'a str> {
    if let Some(&b) = value
        .iter()
        .find(|&&b| !(b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b)))
    {
        let problem = if b < 0x20 || b == 0x7f {
            Problem::ControlCharacter(char::from(b))
        } else {
            Problem::Invalid("must be ASCII text".into())
        };
        return Err(Error::problem(header, problem));
    }
    let value = std::str::from_utf8(value).expect("ASCII is UTF-8");
    Ok(value.trim_matches([' ', '\t']))
}

/// A non-negative decimal integer (`Upload-Offset`, `Upload-Length`, `Content-Length`): no
/// sign, no fraction, at most `u64::MAX`.
///
/// # Errors
/// [`Error::BadRequest`] naming `header`: empty, negative, not an integer, too large.
pub fn parse_offset(header: &str, value: &[u8]) -> Result<u64> {
    parse_u64(header, text(header, value)?)
}

/// `Upload-Defer-Length`: its only valid value is `1`.
///
/// # Errors
/// [`Error::BadRequest`] for any other value.
pub fn parse_defer_length(value: &[u8]) -> Result<()> {
    let header = "Upload-Defer-Length";
    match text(header, value)? {
        "1" => Ok(()),
        other => Err(Error::bad_value(
            header,
            other,
            Problem::Invalid("must be 1".into()),
        )),
    }
}

/// `Upload-Metadata`: comma-separated `key base64-value` pairs (the value may be left out).
/// Keys are visible ASCII without commas, unique; values must decode to UTF-8 text (tus
/// clients send text: file names, types). At most [`MAX_METADATA_LEN`] bytes. An empty header
/// is no metadata.
///
/// # Errors
/// [`Error::BadRequest`] naming `Upload-Metadata` (and the key where there is one): too long,
/// an empty pair, a bad key, a duplicate key, a value that is not base64 or not UTF-8.
pub fn parse_metadata(value: &[u8]) -> Result<BTreeMap<String, String>> {
    let header = "Upload-Metadata";
    if value.len() > MAX_METADATA_LEN {
        return Err(Error::problem(
            header,
            Problem::TooLong {
                len: value.len(),
                max: MAX_METADATA_LEN,
            },
        ));
    }
    let value = text(header, value)?;
    let mut map = BTreeMap::new();
    if value.is_empty() {
        return Ok(map);
    }
    for pair in value.split(',') {
        let pair = pair.trim_matches([' ', '\t']);
        let (key, encoded) = match pair.split_once([' ', '\t']) {
            Some((key, rest)) => (key, rest.trim_matches([' ', '\t'])),
            None => (pair, ""),
        };
        if key.is_empty() {
            return Err(Error::bad(header, "an empty key-value pair"));
        }
        if encoded.contains([' ', '\t']) {
            return Err(Error::bad_value(
                format!("{header} {key}"),
                encoded,
                Problem::Invalid("a value is one base64 word".into()),
            ));
        }
        let decoded = BASE64.decode(encoded).map_err(|e| {
            Error::bad_value(
                format!("{header} {key}"),
                encoded,
                Problem::Invalid(format!("is not base64: {e}")),
            )
        })?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Error::problem(format!("{header} {key}"), Problem::NotUtf8))?;
        if map.insert(key.to_owned(), decoded).is_some() {
            return Err(Error::bad_value(
                header,
                key,
                Problem::Invalid("the key appears twice".into()),
            ));
        }
    }
    Ok(map)
}

/// `Upload-Metadata` for a response: the pairs again, values base64 (padded), a key alone
/// when its value is empty.
pub fn encode_metadata(metadata: &BTreeMap<String, String>) -> String {
    metadata
        .iter()
        .map(|(key, value)| {
            if value.is_empty() {
                key.clone()
            } else {
                format!("{key} {}", general_purpose::STANDARD.encode(value))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A checksum algorithm of the tus `checksum` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Checksum {
    /// SHA-1 (the one every server must support).
    Sha1,
    /// MD5.
    Md5,
    /// SHA-256.
    Sha256,
}

impl Checksum {
    /// Every algorithm, in the order `Tus-Checksum-Algorithm` lists them.
    pub const ALL: [Checksum; 3] = [Checksum::Sha1, Checksum::Md5, Checksum::Sha256];

    /// Its name in `Upload-Checksum`.
    pub fn name(self) -> &'static str {
        match self {
            Checksum::Sha1 => "sha1",
            Checksum::Md5 => "md5",
            Checksum::Sha256 => "sha256",
        }
    }

    /// Bytes of its digest.
    pub fn digest_len(self) -> usize {
        match self {
            Checksum::Sha1 => 20,
            Checksum::Md5 => 16,
            Checksum::Sha256 => 32,
        }
    }

    /// The `Tus-Checksum-Algorithm` value: `sha1,md5,sha256`.
    pub fn list() -> String {
        Checksum::ALL.map(Checksum::name).join(",")
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `Upload-Checksum` declares: the algorithm and the digest of the request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredChecksum {
    /// The algorithm.
    pub algorithm: Checksum,
    /// The digest the body must have.
    pub digest: Vec<u8>,
}

/// `Upload-Checksum`: `<algorithm> <base64 digest>`, the algorithm one of [`Checksum::ALL`]
/// (names are case-insensitive), the digest as long as the algorithm's.
///
/// # Errors
/// [`Error::BadRequest`] naming `Upload-Checksum`: not two words, an algorithm this server does
/// not support (tus: 400), a digest that is not base64 or has the wrong length.
pub fn parse_checksum(value: &[u8]) -> Result<DeclaredChecksum> {
    let header = "Upload-Checksum";
    let value = text(header, value)?;
    let Some((name, encoded)) = value.split_once([' ', '\t']) else {
        return Err(Error::bad_value(
            header,
            value,
            Problem::Invalid("expected an algorithm and a base64 digest".into()),
        ));
    };
    let encoded = encoded.trim_matches([' ', '\t']);
    let algorithm = Checksum::ALL
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            Error::bad_value(
                header,
                name,
                Problem::Invalid(format!(
                    "is not a supported algorithm (supported: {})",
                    Checksum::list()
                )),
            )
        })?;
    let digest = BASE64.decode(encoded).map_err(|e| {
        Error::bad_value(
            header,
            encoded,
            Problem::Invalid(format!("is not base64: {e}")),
        )
    })?;
    if digest.len() != algorithm.digest_len() {
        return Err(Error::bad_value(
            header,
            encoded,
            Problem::Invalid(format!(
                "is {} bytes, a {algorithm} digest has {}",
                digest.len(),
                algorithm.digest_len()
            )),
        ));
    }
    Ok(DeclaredChecksum { algorithm, digest })
}

/// What `Upload-Concat` says on a creation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcatHeader {
    /// `partial`: this upload is a part of a file.
    Partial,
    /// `final;<url> <url> ...`: the file is these partial uploads (their ids), in order.
    Final(Vec<String>),
}

/// `Upload-Concat`: `partial`, or `final;` and the space-separated URLs of the partial uploads,
/// each an absolute URL or an absolute path under `mount` (the creation URL's path, ending in
/// `/`), its last segment an upload id. At most [`MAX_CONCAT_PARTS`] parts, no part twice.
///
/// # Errors
/// [`Error::BadRequest`] naming `Upload-Concat`: another value, no part, a URL outside
/// `mount` or with a query, an id that cannot be one, too many parts, a part twice.
pub fn parse_concat(value: &[u8], mount: &str) -> Result<ConcatHeader> {
    let header = "Upload-Concat";
    let value = text(header, value)?;
    if value == "partial" {
        return Ok(ConcatHeader::Partial);
    }
    let Some(list) = value.strip_prefix("final;") else {
        return Err(Error::bad_value(
            header,
            value,
            Problem::Invalid("expected partial or final;<urls>".into()),
        ));
    };
    let mut ids: Vec<String> = Vec::new();
    for url in list.split([' ', '\t']).filter(|u| !u.is_empty()) {
        if ids.len() == MAX_CONCAT_PARTS {
            return Err(Error::bad(
                header,
                format!("more than {MAX_CONCAT_PARTS} partial uploads"),
            ));
        }
        let id = id_in_url(url, mount).ok_or_else(|| {
            Error::bad_value(
                header,
                url,
                Problem::Invalid(format!("is not the URL of an upload under {mount}")),
            )
        })?;
        if ids.iter().any(|seen| seen == id) {
            return Err(Error::bad_value(
                header,
                url,
                Problem::Invalid("names the same partial upload twice".into()),
            ));
        }
        ids.push(id.to_owned());
    }
    if ids.is_empty() {
        return Err(Error::bad(header, "final names no partial upload"));
    }
    Ok(ConcatHeader::Final(ids))
}

/// The upload id a URL names: `scheme://authority/path` or `/path`, the path being `mount`
/// then an id.
fn id_in_url<'a>(url: &'a str, mount: &str) -> Option<&'a str> {
    let path = match url.split_once("://") {
        Some((scheme, rest)) => {
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            {
                return None;
            }
            let slash = rest.find('/')?;
            if slash == 0 {
                return None; // no authority
            }
            &rest[slash..]
        }
        None => url,
    };
    let id = path.strip_prefix(mount)?;
    is_upload_id(id).then_some(id)
}

/// Whether `id` can be an upload id: 1 to [`MAX_ID_LEN`] characters of `[A-Za-z0-9_-]`.
pub fn is_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A structured-field boolean (RFC 8941): `?1` or `?0`, as the IETF draft's `Upload-Complete`
/// says it.
///
/// # Errors
/// [`Error::BadRequest`] naming `header` for anything else.
pub fn parse_boolean(header: &str, value: &[u8]) -> Result<bool> {
    match text(header, value)? {
        "?1" => Ok(true),
        "?0" => Ok(false),
        other => Err(Error::bad_value(
            header,
            other,
            Problem::Invalid("expected ?1 or ?0".into()),
        )),
    }
}

/// The media type of a `Content-Type` value, lowercase, without its parameters.
pub fn media_type(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

/// `X-HTTP-Method-Override`: a method name (an HTTP token), uppercased.
///
/// # Errors
/// [`Error::BadRequest`] when it is not a token.
pub fn parse_method(value: &[u8]) -> Result<String> {
    let header = "X-HTTP-Method-Override";
    let method = text(header, value)?;
    if method.is_empty()
        || method.len() > 16
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(Error::bad_value(
            header,
            method,
            Problem::Invalid("is not a method".into()),
        ));
    }
    Ok(method.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_field(result: Result<impl fmt::Debug>) -> String {
        match result {
            Err(Error::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn offsets_are_strict_non_negative_integers() {
        assert_eq!(parse_offset("Upload-Offset", b"0").unwrap(), 0);
        assert_eq!(parse_offset("Upload-Offset", b" 42\t").unwrap(), 42);
        assert_eq!(
            parse_offset("Upload-Offset", b"18446744073709551615").unwrap(),
            u64::MAX
        );
        for (bad, problem) in [
            (&b"-1"[..], Problem::Negative),
            (b"18446744073709551616", Problem::Overflow),
            (b"1.5", Problem::NotAnInteger),
            (b"+1", Problem::NotAnInteger),
            (b"0x10", Problem::NotAnInteger),
            (b"1 2", Problem::NotAnInteger),
            (b"", Problem::Empty),
        ] {
            match parse_offset("Upload-Offset", bad) {
                Err(Error::BadRequest {
                    field, problem: p, ..
                }) => {
                    assert_eq!(field, "Upload-Offset");
                    assert_eq!(p, problem, "{bad:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_offset("Upload-Offset", b"1\n"),
            Err(Error::BadRequest {
                problem: Problem::ControlCharacter('\n'),
                ..
            })
        ));
        assert!(parse_offset("Upload-Offset", "١٢".as_bytes()).is_err());
    }

    #[test]
    fn defer_length_is_one() {
        assert!(parse_defer_length(b"1").is_ok());
        for bad in [&b"0"[..], b"true", b"", b"11"] {
            assert_eq!(bad_field(parse_defer_length(bad)), "Upload-Defer-Length");
        }
    }

    #[test]
    fn metadata_round_trips() {
        let m = parse_metadata(b"filename aGVsbG8udHh0, filetype dGV4dC9wbGFpbg==,empty").unwrap();
        assert_eq!(m["filename"], "hello.txt");
        assert_eq!(m["filetype"], "text/plain");
        assert_eq!(m["empty"], "");
        let encoded = encode_metadata(&m);
        assert_eq!(parse_metadata(encoded.as_bytes()).unwrap(), m);
        assert!(parse_metadata(b"").unwrap().is_empty());
        // Unpadded base64 and UTF-8 names.
        let m = parse_metadata("name w6l0w6k".as_bytes()).unwrap();
        assert_eq!(m["name"], "été");
    }

    #[test]
    fn metadata_is_validated() {
        assert_eq!(
            bad_field(parse_metadata(b"a YQ==,a Yg==")),
            "Upload-Metadata"
        );
        assert_eq!(bad_field(parse_metadata(b"a !!!")), "Upload-Metadata a");
        assert_eq!(
            bad_field(parse_metadata(b"a YQ== Yg==")),
            "Upload-Metadata a"
        );
        assert_eq!(
            bad_field(parse_metadata(b"a YQ==,,b Yg==")),
            "Upload-Metadata"
        );
        assert_eq!(bad_field(parse_metadata(b"a /w==")), "Upload-Metadata a"); // 0xff
        assert_eq!(bad_field(parse_metadata(b"a\x00 YQ==")), "Upload-Metadata");
        let long = format!("a {}", "Q".repeat(MAX_METADATA_LEN));
        assert!(matches!(
            parse_metadata(long.as_bytes()),
            Err(Error::BadRequest {
                problem: Problem::TooLong { .. },
                ..
            })
        ));
    }

    #[test]
    fn checksums() {
        // sha1("hello") = aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d
        let c = parse_checksum(b"sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=").unwrap();
        assert_eq!(c.algorithm, Checksum::Sha1);
        assert_eq!(
            hex::encode(&c.digest),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        assert_eq!(
            parse_checksum(b"SHA256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
                .unwrap()
                .algorithm,
            Checksum::Sha256
        );
        assert_eq!(
            parse_checksum(b"md5 XUFAKrxLKna5cZ2REBfFkg==")
                .unwrap()
                .algorithm,
            Checksum::Md5
        );
        for bad in [
            &b"sha512 qvTGHdzF6KLavt4PO0gs2a6pQ00="[..],
            b"sha1",
            b"sha1 !!",
            b"sha1 XUFAKrxLKna5cZ2REBfFkg==",
            b"",
        ] {
            assert_eq!(bad_field(parse_checksum(bad)), "Upload-Checksum", "{bad:?}");
        }
        assert_eq!(Checksum::list(), "sha1,md5,sha256");
    }

    #[test]
    fn concat() {
        assert_eq!(
            parse_concat(b"partial", "/tus/").unwrap(),
            ConcatHeader::Partial
        );
        assert_eq!(
            parse_concat(b"final;/tus/a https://h:1/tus/b-c_d", "/tus/").unwrap(),
            ConcatHeader::Final(vec!["a".into(), "b-c_d".into()])
        );
        for bad in [
            &b"final;"[..],
            b"final; ",
            b"final;/other/a",
            b"final;/tus/a/b",
            b"final;/tus/a?x=1",
            b"final;/tus/",
            b"final;/tus/a /tus/a",
            b"final;http:///tus/a",
            b"partial;",
            b"whole",
        ] {
            assert_eq!(
                bad_field(parse_concat(bad, "/tus/")),
                "Upload-Concat",
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_CONCAT_PARTS)
            .map(|i| format!("/tus/p{i}"))
            .collect();
        let header = format!("final;{}", many.join(" "));
        assert!(parse_concat(header.as_bytes(), "/tus/").is_err());
    }

    #[test]
    fn booleans_methods_media_types() {
        assert!(parse_boolean("Upload-Complete", b"?1").unwrap());
        assert!(!parse_boolean("Upload-Complete", b" ?0 ").unwrap());
        for bad in [&b"1"[..], b"true", b"?2", b""] {
            assert!(parse_boolean("Upload-Complete", bad).is_err());
        }
        assert_eq!(parse_method(b"patch").unwrap(), "PATCH");
        assert!(parse_method(b"PA TCH").is_err());
        assert!(parse_method(b"").is_err());
        assert_eq!(
            media_type(b"Application/Offset+Octet-Stream; charset=x").as_deref(),
            Some("application/offset+octet-stream")
        );
        assert_eq!(media_type(b""), None);
        assert!(is_upload_id("a1_-"));
        assert!(!is_upload_id("a/b"));
        assert!(!is_upload_id(&"a".repeat(MAX_ID_LEN + 1)));
    }
}
