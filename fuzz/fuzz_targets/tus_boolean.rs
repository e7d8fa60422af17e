//! `Upload-Complete` (the IETF draft's structured boolean): `tus::headers::parse_boolean`: any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match headers::parse_boolean("Upload-Complete", data) {
        Ok(value) => assert_eq!(data.trim_ascii(), if value { b"?1" } else { b"?0" }),
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
});
