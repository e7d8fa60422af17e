//! `Sessions::scope` and `SessionRequest::client_address` on any `Cookie` and
//! `X-Forwarded-For` values: never a panic; the address is the peer's unless the peer is a
//! trusted proxy, and then one of the addresses the request shows; a cookieless request always
//! gets a signed session, the same one each time; `verify` accepts only what the key signed.
#![no_main]

use std::net::IpAddr;

use chunked_upload::adapter::{SessionKey, SessionRequest, Sessions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // First line: the cookie header; the rest: X-Forwarded-For values, one per line.
    let mut lines = text.split('\n');
    let cookie = lines.next().unwrap_or_default();
    let forwarded_for: Vec<&str> = lines.collect();
    let proxy: IpAddr = "127.0.0.1".parse().unwrap();
    let request = SessionRequest {
        cookies: vec![cookie],
        address: Some(proxy),
        user_agent: Some("fuzz"),
        accept_language: None,
        forwarded_for: forwarded_for.clone(),
    };
    assert_eq!(request.client_address(&[]), Some(proxy));
    let client = request.client_address(&[proxy]).expect("an address");
    if client != proxy {
        let shown = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .any(|entry| entry.to_canonical() == client);
        assert!(shown, "{client} is not in {forwarded_for:?}");
    }

    let sessions = Sessions::new(SessionKey::new([7u8; 32]).unwrap()).trusted_proxies([proxy]);
    let scope = sessions.scope(&request).expect("a client address is known");
    let again = sessions.scope(&request).expect("the same request");
    assert_eq!(scope.value(), again.value(), "derivation is deterministic");
    match scope.set_cookie() {
        // A new session: its cookie verifies to it.
        Some(set) => {
            let pair = set.split(';').next().unwrap();
            let value = pair.strip_prefix("cu_session=").expect("the session cookie");
            assert_eq!(sessions.verify(value).as_deref(), Some(scope.value()));
        }
        // The request carried a valid session: only possible with a signed cookie.
        None => assert!(cookie.contains(scope.value())),
    }
    let _ = sessions.verify(cookie);
});
