//! `Upload-Defer-Length`: `tus::headers::parse_defer_length`: any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match headers::parse_defer_length(data) {
        Ok(()) => assert_eq!(data.trim_ascii(), b"1"),
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
});
