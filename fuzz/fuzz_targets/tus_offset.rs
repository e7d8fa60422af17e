//! `Upload-Offset`, `Upload-Length`, `Content-Length`: `tus::headers::parse_offset`: any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match headers::parse_offset("Upload-Offset", data) {
        Ok(n) => {
            // Only digits (around optional whitespace) parse, and they give their value back.
            let text = std::str::from_utf8(data).expect("accepted input is ASCII");
            assert_eq!(text.trim_matches([' ', '\t']).parse::<u64>().ok(), Some(n));
        }
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
});
