//! `Upload-Checksum`: `tus::headers::parse_checksum`: any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match headers::parse_checksum(data) {
        Ok(checksum) => assert_eq!(checksum.digest.len(), checksum.algorithm.digest_len()),
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
});
