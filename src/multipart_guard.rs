//! [`MultipartGuard`]: bounds what a `multipart/form-data` parser may buffer while it looks
//! for the end of a part's headers.
//!
//! Multipart parsers (multer, which the bundled adapters use, and actix-multipart alike) keep
//! a part's header block in memory until they find the blank line that ends it, and the bytes
//! before the first boundary until they find that boundary, with no bound of their own: a
//! client that sends a header line of megabytes and no blank line makes the server hold all of
//! it. multer's `Constraints` limit field contents and the whole stream, not headers. The guard
//! watches the raw body on its way to the parser and fails as soon as a preamble or a header
//! block is longer than allowed, so the parser never holds more.

use memchr::memmem::Finder;

use crate::error::{Error, Limit, Result};

/// Longest multipart boundary accepted, in bytes (RFC 2046 allows 70; clients use about 40).
pub const MAX_BOUNDARY_LEN: usize = 200;

/// Where the guard is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first `--boundary`.
    Preamble,
    /// Just after a `--boundary`: `--` closes the form, anything else starts a part.
    AfterDelimiter,
    /// The rest of the delimiter line (transport padding), up to its CRLF.
    DelimiterLine,
    /// A part's header lines, up to the blank line.
    Headers,
    /// A part's content, up to the next `CRLF--boundary`.
    Content,
    /// After the closing delimiter: not looked at.
    Epilogue,
}

/// Watches a `multipart/form-data` body, fed to it in order in pieces of any size, and
/// refuses it once the bytes before its first boundary, or one part's header block (from the
/// end of its boundary to the blank line after its headers), are longer than a limit. A part's
/// content is not limited here (the adapters limit text fields and the file part themselves)
/// and costs one substring search per piece.
///
/// It finds the framing where multer does (the first `--boundary`, then `CRLF--boundary`
/// delimiters; after one, `--` closes the form, otherwise its line ends at the first CRLF and
/// the headers at the next blank line), so a parser behind it never buffers a header block
/// longer than the limit plus one piece.
///
/// ```
/// use chunked_upload::{Error, Limit, MultipartGuard};
///
/// let mut guard = MultipartGuard::new("xyz", 64).unwrap();
/// guard.feed(b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n").unwrap();
/// let endless = [b'x'; 100];
/// let refused = guard.feed(b"--xyz\r\nX-Pad: ").and_then(|()| guard.feed(&endless));
/// assert!(matches!(refused, Err(Error::TooLarge { limit_kind: Limit::PartHeaders, .. })));
/// ```
#[derive(Debug)]
pub struct MultipartGuard {
    /// `--boundary`: the first boundary, which needs no CRLF before it.
    dash_boundary: Finder<'static>,
    /// `CRLF--boundary`: every later one.
    delimiter: Finder<'static>,
    crlf: Finder<'static>,
    blank_line: Finder<'static>,
    limit: u64,
    state: State,
    /// The last bytes of the current state that may begin a match the next piece completes.
    tail: Vec<u8>,
    /// Room to look across a piece boundary.
    scratch: Vec<u8>,
    /// Bytes of the preamble, or of the current part's header block, so far.
    count: u64,
}

impl MultipartGuard {
    /// A guard for a body with this boundary (the `boundary` parameter of its `Content-Type`,
    /// without the leading `--`), allowing `max_header_bytes` for the preamble and for each
    /// part's header block.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for `Content-Type` when the boundary is empty or longer than
    /// [`MAX_BOUNDARY_LEN`].
    pub fn new(boundary: &str, max_header_bytes: usize) -> Result<MultipartGuard> {
        if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_LEN {
            return Err(Error::bad(
                "Content-Type",
                format!(
                    "the multipart boundary has {} bytes, outside 1..={MAX_BOUNDARY_LEN}",
                    boundary.len()
                ),
            ));
        }
        let finder = |bytes: Vec<u8>| Finder::new(&bytes).into_owned();
        Ok(MultipartGuard {
            dash_boundary: finder(format!("--{boundary}").into_bytes()),
            delimiter: finder(format!("\r\n--{boundary}").into_bytes()),
            crlf: finder(b"\r\n".to_vec()),
            blank_line: finder(b"\r\n\r\n".to_vec()),
            limit: max_header_bytes as u64,
            state: State::Preamble,
            tail: Vec::new(),
            scratch: Vec::new(),
            count: 0,
        })
    }

    /// Takes the next bytes of the body.
    ///
    /// # Errors
    /// [`Error::TooLarge`] with [`Limit::Preamble`] or [`Limit::PartHeaders`] (and the bytes
    /// seen so far) once the preamble or a header block is over the limit; read no further.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let used = self.step(bytes)?;
            bytes = &bytes[used..];
        }
        Ok(())
    }

    /// Whether the closing delimiter (`--boundary--`) has been seen.
    pub fn is_closed(&self) -> bool {
        self.state == State::Epilogue
    }

    /// Consumes a prefix of `bytes` (at least one byte) in the current state.
    fn step(&mut self, bytes: &[u8]) -> Result<usize> {
        match self.state {
            State::Preamble => {
                let found = find(
                    &self.dash_boundary,
                    &mut self.tail,
                    &mut self.scratch,
                    bytes,
                );
                let used = found.unwrap_or(bytes.len());
                self.count += used as u64;
                // Bytes that are certainly preamble: not the boundary, not a possible start of it.
                let pending = match found {
                    Some(_) => self.dash_boundary.needle().len(),
                    None => self.tail.len(),
                };
                let preamble = self.count - pending as u64;
                if preamble > self.limit {
                    return Err(too_large(Limit::Preamble, preamble, self.limit));
                }
                if found.is_some() {
                    self.enter(State::AfterDelimiter);
                }
                Ok(used)
            }
            State::AfterDelimiter => {
                self.tail.push(bytes[0]);
                if self.tail.len() == 2 {
                    let two = [self.tail[0], self.tail[1]];
                    if &two == b"--" {
                        self.enter(State::Epilogue);
                    } else {
                        // These two bytes are the start of the delimiter line.
                        self.enter(State::DelimiterLine);
                        self.feed(&two)?;
                    }
                }
                Ok(1)
            }
            State::DelimiterLine | State::Headers => {
                let finder = if self.state == State::DelimiterLine {
                    &self.crlf
                } else {
                    &self.blank_line
                };
                let found = find(finder, &mut self.tail, &mut self.scratch, bytes);
                let used = found.unwrap_or(bytes.len());
                self.count += used as u64;
                if self.count > self.limit {
                    return Err(too_large(Limit::PartHeaders, self.count, self.limit));
                }
                if found.is_some() {
                    // The header block counts from the boundary to the blank line.
                    let count = self.count;
                    let next = if self.state == State::DelimiterLine {
                        State::Headers
                    } else {
                        State::Content
                    };
                    self.enter(next);
                    self.count = if next == State::Headers { count } else { 0 };
                }
                Ok(used)
            }
            State::Content => {
                match find(&self.delimiter, &mut self.tail, &mut self.scratch, bytes) {
                    Some(used) => {
                        self.enter(State::AfterDelimiter);
                        Ok(used)
                    }
                    None => Ok(bytes.len()),
                }
            }
            State::Epilogue => Ok(bytes.len()),
        }
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.tail.clear();
        self.count = 0;
    }
}

fn too_large(limit_kind: Limit, value: u64, limit: u64) -> Error {
    Error::TooLarge {
        limit_kind,
        value,
        limit,
    }
}

/// Looks for the finder's needle in a stream whose bytes so far (in this state) end with
/// `tail` and continue with `piece`. Returns the offset in `piece` just past the first match;
/// otherwise keeps in `tail` the last bytes that may begin one.
fn find(
    finder: &Finder<'_>,
    tail: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    piece: &[u8],
) -> Option<usize> {
    let m = finder.needle().len();
    if !tail.is_empty() {
        // A match that begins in the tail (shorter than the needle) ends in the first m - 1
        // bytes of the piece; one that begins in the piece is found below.
        scratch.clear();
        scratch.extend_from_slice(tail);
        scratch.extend_from_slice(&piece[..piece.len().min(m - 1)]);
        if let Some(i) = finder.find(scratch) {
            let end = i + m - tail.len();
            tail.clear();
            return Some(end);
        }
    }
    if let Some(i) = finder.find(piece) {
        tail.clear();
        return Some(i + m);
    }
    let keep = m - 1;
    if piece.len() >= keep {
        tail.clear();
        tail.extend_from_slice(&piece[piece.len() - keep..]);
    } else {
        tail.extend_from_slice(piece);
        let excess = tail.len().saturating_sub(keep);
        tail.drain(..excess);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "----b0undary";

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = b"preamble\r\n".to_vec();
        for (headers, content) in parts {
            body.extend_from_slice(format!("--{B}\r\n{headers}\r\n\r\n").as_bytes());
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{B}--\r\nepilogue").as_bytes());
        body
    }

    /// Feeds `body` in pieces of `size` bytes; the result, and whether the guard saw the end.
    fn feed(body: &[u8], size: usize, limit: usize) -> (Result<()>, bool) {
        let mut guard = MultipartGuard::new(B, limit).unwrap();
        let result = body.chunks(size).try_for_each(|piece| guard.feed(piece));
        (result, guard.is_closed())
    }

    fn kind(result: &Result<()>) -> Option<Limit> {
        match result {
            Ok(()) => None,
            Err(Error::TooLarge { limit_kind, .. }) => Some(*limit_kind),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn a_normal_form_passes_whatever_the_split() {
        let content: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let body = body(&[
            (
                "Content-Disposition: form-data; name=\"flowChunkNumber\"",
                b"1",
            ),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\
                 Content-Type: application/octet-stream",
                &content,
            ),
        ]);
        for size in [1, 2, 3, 5, 7, 13, 64, 1000, body.len()] {
            let (result, closed) = feed(&body, size, 200);
            assert!(result.is_ok(), "pieces of {size}: {result:?}");
            assert!(closed, "pieces of {size}");
        }
    }

    #[test]
    fn content_that_looks_like_framing_is_content() {
        // CRLF CRLF, a boundary without CRLF before it, a near-boundary: all inside content.
        let tricky = format!("a\r\n\r\nb--{B}c\r\n--{}x\r\n-", &B[..B.len() - 1]);
        let body = body(&[(
            "Content-Disposition: form-data; name=\"a\"",
            tricky.as_bytes(),
        )]);
        for size in 1..20 {
            let (result, closed) = feed(&body, size, 60);
            assert!(result.is_ok(), "pieces of {size}: {result:?}");
            assert!(closed);
        }
    }

    #[test]
    fn an_endless_header_is_refused_at_the_limit() {
        let mut endless =
            format!("--{B}\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ").into_bytes();
        endless.extend(std::iter::repeat_n(b'x', 10_000));
        for size in [1, 7, 4096, endless.len()] {
            let (result, _) = feed(&endless, size, 1024);
            assert_eq!(kind(&result), Some(Limit::PartHeaders), "pieces of {size}");
            if size == 1 {
                assert!(matches!(result, Err(Error::TooLarge { value: 1025, .. })));
            }
        }
        // The same headers within the limit pass.
        let ok = body(&[("Content-Disposition: form-data; name=\"a\"", b"1")]);
        assert!(feed(&ok, 1, 1024).0.is_ok());
    }

    #[test]
    fn header_block_counts_from_the_boundary_to_the_blank_line() {
        // "\r\n" + headers + "\r\n\r\n": exactly the limit passes, one more byte does not.
        let headers = "Content-Disposition: form-data; name=\"a\"";
        let block = 2 + headers.len() + 4;
        let body = body(&[(headers, b"v")]);
        for size in [1, 3, body.len()] {
            assert!(feed(&body, size, block).0.is_ok());
            assert_eq!(
                kind(&feed(&body, size, block - 1).0),
                Some(Limit::PartHeaders)
            );
        }
    }

    #[test]
    fn a_long_preamble_or_padding_is_refused() {
        let mut long = vec![b'p'; 3000];
        long.extend_from_slice(format!("--{B}--").as_bytes());
        for size in [1, 100, long.len()] {
            assert_eq!(
                kind(&feed(&long, size, 1024).0),
                Some(Limit::Preamble),
                "{size}"
            );
        }
        assert!(feed(&long, 1, 4096).0.is_ok());
        let mut padded = format!("--{B}").into_bytes();
        padded.extend(std::iter::repeat_n(b' ', 3000));
        assert_eq!(kind(&feed(&padded, 64, 1024).0), Some(Limit::PartHeaders));
    }

    #[test]
    fn boundaries_are_bounded() {
        assert!(MultipartGuard::new("", 10).is_err());
        assert!(MultipartGuard::new(&"b".repeat(MAX_BOUNDARY_LEN), 10).is_ok());
        assert!(matches!(
            MultipartGuard::new(&"b".repeat(MAX_BOUNDARY_LEN + 1), 10),
            Err(Error::BadRequest { field, .. }) if field == "Content-Type"
        ));
    }

    #[test]
    fn find_across_pieces_matches_a_whole_search() {
        let finder = Finder::new(b"abab").into_owned();
        let hay = b"xxabaababxxabab";
        let whole = finder.find(hay).map(|i| i + 4);
        for size in 1..hay.len() {
            let (mut tail, mut scratch) = (Vec::new(), Vec::new());
            let mut offset = 0;
            let mut found = None;
            for piece in hay.chunks(size) {
                if let Some(end) = find(&finder, &mut tail, &mut scratch, piece) {
                    found = Some(offset + end);
                    break;
                }
                offset += piece.len();
            }
            assert_eq!(found, whole, "pieces of {size}");
        }
    }
}
