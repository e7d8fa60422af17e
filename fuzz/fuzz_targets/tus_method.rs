//! `X-HTTP-Method-Override` and `Content-Type`: `tus::headers::parse_method`, `media_type`: any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match headers::parse_method(data) {
        Ok(method) => {
            assert!(!method.is_empty() && method.len() <= 16);
            assert_eq!(method, method.to_ascii_uppercase());
        }
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
    if let Some(media) = headers::media_type(data) {
        assert!(!media.is_empty() && !media.contains(';'));
        assert_eq!(media, media.to_ascii_lowercase());
    }
});
