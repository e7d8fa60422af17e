//! `MultipartGuard`: any body, fed in any pieces, gets the same verdict as when fed whole (a
//! limit's kind does not depend on where the network split the bytes); and whatever multer
//! parses from the bytes the guard let through has header blocks within the guard's limit (the
//! guard finds the framing where multer does, so multer never buffers a longer header block).
//!
//! Input: one byte for the limit (64..=1087 bytes), one for the piece size (1..=256), then the
//! body, with the boundary `xyz` (short, so that framing occurs often).
#![no_main]

use bytes::Bytes;
use chunked_upload::{Error, Limit, MultipartGuard};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "xyz";

fn verdict(result: &Result<(), Error>) -> Option<Limit> {
    match result {
        Ok(()) => None,
        Err(Error::TooLarge { limit_kind, .. }) => Some(*limit_kind),
        Err(other) => panic!("the guard failed with {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit, piece, body @ ..] = data else { return };
    let limit = 64 + usize::from(*limit) * 4;
    let piece = usize::from(*piece) + 1;

    let mut whole = MultipartGuard::new(BOUNDARY, limit).unwrap();
    let at_once = whole.feed(body);
    let mut split = MultipartGuard::new(BOUNDARY, limit).unwrap();
    let in_pieces = body.chunks(piece).try_for_each(|p| split.feed(p));
    assert_eq!(verdict(&at_once), verdict(&in_pieces), "split into pieces of {piece}");
    if at_once.is_ok() {
        assert_eq!(whole.is_closed(), split.is_closed());
    }

    // What multer makes of the bytes the guard lets through, in the same pieces.
    let mut guard = MultipartGuard::new(BOUNDARY, limit).unwrap();
    let pieces: Vec<Result<Bytes, Error>> = body
        .chunks(piece)
        .map(|p| guard.feed(p).map(|()| Bytes::copy_from_slice(p)))
        .scan(false, |failed, item| {
            if *failed {
                return None;
            }
            *failed = item.is_err();
            Some(item)
        })
        .collect();
    let mut form = multer::Multipart::new(futures::stream::iter(pieces), BOUNDARY);
    futures::executor::block_on(async {
        while let Ok(Some(mut field)) = form.next_field().await {
            // "Name: value\r\n" has at least the name, the value and three bytes more; the
            // block also has the delimiter line's CRLF and the blank line.
            let block: usize = field
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.as_bytes().len() + 3)
                .sum::<usize>()
                + 4;
            assert!(block <= limit, "a header block of at least {block} bytes passed a limit of {limit}");
            while let Some(Ok(_)) = field.next().await {}
        }
    });
});
