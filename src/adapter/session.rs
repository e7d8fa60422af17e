//! Signed sessions: a scope for browsers that have no account, which only the server can issue,
//! which every server holding the same key accepts, and which the first requests of an upload
//! agree on even when they arrive in parallel without a cookie.
//!
//! A session is 128 bits, written as 32 lower-case hex digits; its cookie is
//! `cu_session=<session>.<tag>`, where the tag is HMAC-SHA256 of the session under the
//! [`SessionKey`] (64 lower-case hex digits). A cookie is accepted only in exactly that form and
//! only with the right tag (checked in constant time): no client can choose, guess or plant a
//! session the server did not issue, and the upper-case spelling of a real cookie is not
//! another session: it is not a session at all. Nothing is kept in memory, so a session survives
//! a restart and is accepted by every server given the same key.
//!
//! A request that carries no valid session cookie gets one, set on its answer:
//!
//! - on an upload route ([`Sessions::scope`]), a session *derived* from what all the parallel
//!   first requests of one browser share: HMAC-SHA256 under the key of the client's address,
//!   its `User-Agent`, its `Accept-Language` and whatever invalid `cu_session` cookies it sent.
//!   A widget on a page the server did not serve sends its first chunks, test requests and
//!   finalize requests at once, before any answer could set a cookie; they all get the same
//!   session, so they land in one scope, and the later ones carry its cookie. The same browser
//!   gets the same session again after a restart (with the same key) and from every server.
//! - on a page ([`Sessions::page_scope`]), a random session: the page's scripts run after its
//!   answer set the cookie, so nothing can race it.
//!
//! # Security
//!
//! What derivation cannot tell apart: two browsers that send no valid cookie from **the same
//! address with the same `User-Agent` and `Accept-Language`** (one browser version behind one
//! NAT or proxy, several profiles of one browser) get the same session. They share a scope:
//! they see each other's progress, and uploads with the same identifier meet (flow.js names an
//! upload `size-filename`, so two such browsers uploading different files of the same name and
//! size at the same moment mix chunks, and the file fails to assemble or one of them gets the
//! other's bytes). They keep sharing it, since both keep the cookie. Pages the server serves
//! itself avoid this ([`Sessions::page_scope`] gives each page load its own random session);
//! an application with accounts avoids it altogether by scoping by user.
//!
//! Behind a reverse proxy every client has the proxy's address: name the proxy with
//! [`Sessions::trusted_proxies`] and the client's address is read from the `X-Forwarded-For`
//! header the proxy appends to (nginx: `proxy_set_header X-Forwarded-For
//! $proxy_add_x_forwarded_for;`), right to left, skipping the proxies named; the header is read
//! only when the connection comes from one of them, so no other client can choose the address.
//! Without it only `User-Agent` and `Accept-Language` tell cookieless browsers behind the proxy
//! apart. A browser whose address changes between its
//! first parallel requests (a dual-stack browser racing IPv4 and IPv6 connections, a mobile
//! network handover) gets two sessions for them, like the issue this design fixes; once one
//! answer has set the cookie, the address no longer matters.
//!
//! The cookie is `HttpOnly` and `SameSite=Lax` (and `Secure` with [`Sessions::secure`]); a
//! session does not expire on the server (the cookie's `Max-Age` is 30 days unless
//! [`Sessions::max_age`] says otherwise), and changing the key ends every session.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use cookie::{Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Scope;
use crate::{Error, Result};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "cu_session";

/// The shortest signing key accepted, in bytes.
pub const MIN_SIGNING_KEY_LEN: usize = 32;

/// Bytes in a session (128 bits).
const SESSION_BYTES: usize = 16;
/// Hex digits of a session, and of a cookie value (session, `.`, tag).
const SESSION_HEX: usize = 2 * SESSION_BYTES;
const COOKIE_VALUE_LEN: usize = SESSION_HEX + 1 + 64;
/// Domain separation: a tag over a session is never a derivation, nor the other way round.
const SIGN_CONTEXT: &[u8] = b"chunked-upload session signature v1";
const DERIVE_CONTEXT: &[u8] = b"chunked-upload derived session v1";
/// The default `Max-Age` of the cookie.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

type HmacSha256 = Hmac<Sha256>;

/// The secret that signs sessions (HMAC-SHA256). Servers given the same key accept each
/// other's sessions; a new key ends every session issued under the old one.
///
/// Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SessionKey {
    mac: HmacSha256,
}

impl SessionKey {
    /// A key from a secret of at least [`MIN_SIGNING_KEY_LEN`] bytes (say, 64 hex digits from
    /// `openssl rand -hex 32`; the bytes are used as they are).
    ///
    /// # Errors
    /// [`Error::InvalidSigningKey`] for a shorter secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<SessionKey> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SIGNING_KEY_LEN {
            return Err(Error::InvalidSigningKey {
                length: secret.len(),
                minimum: MIN_SIGNING_KEY_LEN,
            });
        }
        let mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        Ok(SessionKey { mac })
    }

    /// A random key from the operating system's generator. Sessions signed with it end when the
    /// process does: give every server the same configured key for sessions that survive a
    /// restart and work across servers.
    ///
    /// # Panics
    /// If the operating system has no random number generator.
    pub fn generate() -> SessionKey {
        SessionKey::new(random::<MIN_SIGNING_KEY_LEN>()).expect("a key of the minimum length")
    }

    /// HMAC-SHA256 of `context` and each of `fields`, every one length-prefixed so that no two
    /// lists of fields share an input.
    fn tag(&self, context: &[u8], fields: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        for field in std::iter::once(&context).chain(fields) {
            mac.update(&(field.len() as u64).to_le_bytes());
            mac.update(field);
        }
        mac
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// What a request shows that its session is decided from; an adapter fills it in from its
/// framework's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRequest<'a> {
    /// The values of the request's `Cookie` headers.
    pub cookies: Vec<&'a str>,
    /// The client's address as the server sees it (the peer of the connection), if known.
    pub address: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The `Accept-Language` header.
    pub accept_language: Option<&'a str>,
    /// The values of the request's `X-Forwarded-For` headers, in order; read only when
    /// `address` is one of the [trusted proxies](Sessions::trusted_proxies).
    pub forwarded_for: Vec<&'a str>,
}

impl SessionRequest<'_> {
    /// The client's address: the connection's peer, or, when the peer is one of `trusted`, the
    /// rightmost `X-Forwarded-For` entry that is not one of `trusted` (proxies in a chain each
    /// append the address they received the request from). An entry that is not an address
    /// ends the walk at the proxy that appended it: what is left of it was written by the
    /// client and proves nothing.
    pub fn client_address(&self, trusted: &[IpAddr]) -> Option<IpAddr> {
        let mut address = self.address?.to_canonical();
        if !trusted.contains(&address) {
            return Some(address);
        }
        // Right to left: the last header first, each header's list from its end.
        let entries = self
            .forwarded_for
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(','))
            .map(str::trim);
        for entry in entries {
            match entry.parse::<IpAddr>() {
                Ok(hop) => {
                    address = hop.to_canonical();
                    if !trusted.contains(&address) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(address)
    }
}

/// Issues and checks signed session cookies, and turns a request into its [`Scope`]. Cheap to
/// clone. The [module docs](self) describe the cookie and what derivation cannot tell apart.
///
/// ```
/// use chunked_upload::adapter::{SessionKey, SessionRequest, Sessions};
///
/// # fn main() -> chunked_upload::Result<()> {
/// let sessions = Sessions::new(SessionKey::new("a secret of at least thirty-two bytes")?);
/// // Three parallel first requests of one browser, without a cookie: one session.
/// let browser = SessionRequest {
///     address: Some("192.0.2.7".parse().unwrap()),
///     user_agent: Some("Mozilla/5.0"),
///     ..SessionRequest::default()
/// };
/// let scopes: Vec<_> = (0..3).map(|_| sessions.scope(&browser)).collect::<Result<_, _>>()?;
/// assert!(scopes.iter().all(|s| s == &scopes[0]));
/// let cookie = scopes[0].set_cookie().expect("a new session sets its cookie");
/// assert!(cookie.starts_with("cu_session=") && cookie.contains("HttpOnly"));
///
/// // The next request carries the cookie: same scope, nothing to set.
/// let value = cookie.split(';').next().unwrap();
/// let later = sessions.scope(&SessionRequest { cookies: vec![value], ..browser.clone() })?;
/// assert_eq!((later.value(), later.set_cookie()), (scopes[0].value(), None));
///
/// // A session the server did not issue is not one.
/// let forged = format!("cu_session={}", "0".repeat(32));
/// let fresh = sessions.scope(&SessionRequest { cookies: vec![&forged], ..browser })?;
/// assert_ne!(fresh.value(), "0".repeat(32));
/// assert!(fresh.set_cookie().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Sessions {
    key: SessionKey,
    secure: bool,
    max_age: Duration,
    trusted_proxies: Vec<IpAddr>,
}

impl Sessions {
    /// Sessions signed with `key`; cookies `HttpOnly; SameSite=Lax; Path=/` with a `Max-Age` of
    /// 30 days.
    pub fn new(key: SessionKey) -> Sessions {
        Sessions {
            key,
            secure: false,
            max_age: DEFAULT_MAX_AGE,
            trusted_proxies: Vec::new(),
        }
    }

    /// The reverse proxies in front of the server (default: none). For a request whose
    /// connection comes from one of them, the client's address that derived sessions are made
    /// from is taken from `X-Forwarded-For` ([`SessionRequest::client_address`]); from any
    /// other peer the header is ignored, so a client cannot choose its address by sending one.
    /// Without this, every cookieless browser behind the proxy has the proxy's address.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Sessions {
        self.trusted_proxies = proxies.into_iter().map(|p| p.to_canonical()).collect();
        self
    }

    /// Whether the cookie is marked `Secure` (sent over HTTPS only; default `false`). Set it
    /// when the site is served over HTTPS.
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Sessions {
        self.secure = secure;
        self
    }

    /// The cookie's `Max-Age` (default 30 days): how long a browser keeps its session, and so
    /// can resume its uploads.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Sessions {
        self.max_age = age;
        self
    }

    /// The scope of a request to an upload route (chunks, test requests, finalize, progress):
    /// the session of its cookie when the server issued it, else the session derived from the
    /// client (its address, `User-Agent`, `Accept-Language` and any invalid session cookies),
    /// with that session's `Set-Cookie`. The address is the connection's peer, or the one a
    /// [trusted proxy](Self::trusted_proxies) forwarded.
    ///
    /// # Errors
    /// [`Error::NoSession`] when the request has no valid session cookie and no client address:
    /// without the address every such browser would share one scope.
    pub fn scope(&self, request: &SessionRequest<'_>) -> Result<Scope> {
        if let Some(session) = self.valid_session(request) {
            return Ok(Scope::new(session));
        }
        let Some(address) = request.client_address(&self.trusted_proxies) else {
            tracing::warn!(
                "a request without a session cookie came without the client's address: it is \
                 refused, since without the address every such browser would share one scope \
                 (serve with the client's address: axum's into_make_service_with_connect_info, \
                 or the peer address passed to the hyper adapter)"
            );
            return Err(Error::NoSession {
                cookie: SESSION_COOKIE,
            });
        };
        let address = match address {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let mut fields: Vec<&[u8]> = vec![
            &address,
            request.user_agent.unwrap_or_default().as_bytes(),
            request.accept_language.unwrap_or_default().as_bytes(),
        ];
        let invalid = session_cookies(request);
        fields.extend(invalid.iter().map(|value| value.as_bytes()));
        let derived = self.key.tag(DERIVE_CONTEXT, &fields).finalize().into_bytes();
        Ok(self.issue(hex::encode(&derived[..SESSION_BYTES])))
    }

    /// The scope of a page load: the session of its cookie when the server issued it, else a
    /// new random session with its `Set-Cookie`. Use it for the page that hosts the upload
    /// widget, never for upload requests (parallel requests would each get a session of their
    /// own).
    ///
    /// # Panics
    /// If the operating system has no random number generator.
    pub fn page_scope(&self, request: &SessionRequest<'_>) -> Scope {
        match self.valid_session(request) {
            Some(session) => Scope::new(session),
            None => self.issue(hex::encode(random::<SESSION_BYTES>())),
        }
    }

    /// The session a cookie value (what follows `cu_session=`) names, if this key signed it and
    /// it is in the canonical form: 32 lower-case hex digits, `.`, 64 lower-case hex digits.
    pub fn verify(&self, cookie_value: &str) -> Option<String> {
        let bytes = cookie_value.as_bytes();
        let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        if bytes.len() != COOKIE_VALUE_LEN
            || bytes[SESSION_HEX] != b'.'
            || !bytes[..SESSION_HEX].iter().all(lower_hex)
            || !bytes[SESSION_HEX + 1..].iter().all(lower_hex)
        {
            return None;
        }
        let (session, tag) = (&cookie_value[..SESSION_HEX], &cookie_value[SESSION_HEX + 1..]);
        let tag = hex::decode(tag).ok()?;
        self.key
            .tag(SIGN_CONTEXT, &[session.as_bytes()])
            .verify_slice(&tag)
            .ok()
            .map(|()| session.to_owned())
    }

    /// The first session cookie of the request that verifies.
    fn valid_session(&self, request: &SessionRequest<'_>) -> Option<String> {
        session_cookies(request)
            .into_iter()
            .find_map(|value| self.verify(value))
    }

    /// The scope of `session`, with the `Set-Cookie` that gives it to the browser.
    fn issue(&self, session: String) -> Scope {
        let tag = self
            .key
            .tag(SIGN_CONTEXT, &[session.as_bytes()])
            .finalize()
            .into_bytes();
        let value = format!("{session}.{}", hex::encode(tag));
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let cookie = Cookie::build((SESSION_COOKIE, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build();
        Scope::new(session).with_set_cookie(cookie.to_string())
    }
}

/// The values of the request's `cu_session` cookies, in order.
fn session_cookies<'a>(request: &SessionRequest<'a>) -> Vec<&'a str> {
    request
        .cookies
        .iter()
        .flat_map(|header| Cookie::split_parse(*header))
        .filter_map(|cookie| cookie.ok())
        .filter(|cookie| cookie.name() == SESSION_COOKIE)
        .filter_map(|cookie| cookie.value_raw())
        .collect()
}

/// `N` bytes from the operating system's random number generator.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test-key";

    fn sessions() -> Sessions {
        Sessions::new(SessionKey::new(SECRET).unwrap())
    }

    fn browser(address: &str, user_agent: &str) -> SessionRequest<'static> {
        SessionRequest {
            address: Some(address.parse().unwrap()),
            user_agent: Some(Box::leak(user_agent.to_owned().into_boxed_str())),
            accept_language: Some("en-GB,en;q=0.9"),
            cookies: Vec::new(),
            forwarded_for: Vec::new(),
        }
    }

    fn via_proxy(forwarded_for: &'static str) -> SessionRequest<'static> {
        SessionRequest {
            forwarded_for: vec![forwarded_for],
            ..browser("10.0.0.1", "Mozilla/5.0")
        }
    }

    #[test]
    fn the_forwarded_address_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = [proxy, "10.0.0.2".parse().unwrap()];
        let address = |request: &SessionRequest<'_>, trusted: &[IpAddr]| {
            request.client_address(trusted).map(|a| a.to_string())
        };
        // Not trusted: the header is the client's word and is ignored.
        assert_eq!(address(&via_proxy("192.0.2.7"), &[]).unwrap(), "10.0.0.1");
        // Trusted: the entry the proxy appended.
        assert_eq!(address(&via_proxy("192.0.2.7"), &trusted).unwrap(), "192.0.2.7");
        // A client-written prefix is skipped; a chain of trusted proxies is walked through.
        assert_eq!(
            address(&via_proxy("6.6.6.6, 192.0.2.7, 10.0.0.2"), &trusted).unwrap(),
            "192.0.2.7"
        );
        // Several headers are one list; IPv4-mapped IPv6 is the IPv4 address.
        let split = SessionRequest {
            forwarded_for: vec!["6.6.6.6", " ::ffff:192.0.2.9 "],
            ..via_proxy("")
        };
        assert_eq!(address(&split, &trusted).unwrap(), "192.0.2.9");
        // Garbage ends the walk at the proxy that appended it.
        assert_eq!(
            address(&via_proxy("192.0.2.7, not-an-address"), &trusted).unwrap(),
            "10.0.0.1"
        );
        // No header: the proxy's own address, as without the option.
        assert_eq!(address(&browser("10.0.0.1", "x"), &trusted).unwrap(), "10.0.0.1");
        // All entries trusted: the leftmost of them.
        assert_eq!(address(&via_proxy("10.0.0.2"), &trusted).unwrap(), "10.0.0.2");
    }

    #[test]
    fn browsers_behind_a_trusted_proxy_get_sessions_of_their_own() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let plain = sessions();
        let behind = sessions().trusted_proxies([proxy]);
        let (a, b) = (via_proxy("192.0.2.7"), via_proxy("198.51.100.4"));
        // Without the option both browsers are the proxy: one session.
        assert_eq!(plain.scope(&a).unwrap().value(), plain.scope(&b).unwrap().value());
        // With it, two; and the parallel first requests of one browser still agree.
        let first = behind.scope(&a).unwrap();
        assert_ne!(first.value(), behind.scope(&b).unwrap().value());
        assert_eq!(first.value(), behind.scope(&a).unwrap().value());
        // The header of a client that is not the proxy changes nothing.
        let direct = SessionRequest {
            forwarded_for: vec!["198.51.100.4"],
            ..browser("192.0.2.50", "Mozilla/5.0")
        };
        let direct_plain = SessionRequest {
            forwarded_for: Vec::new(),
            ..direct.clone()
        };
        assert_eq!(
            behind.scope(&direct).unwrap().value(),
            behind.scope(&direct_plain).unwrap().value()
        );
    }

    /// The `name=value` pair of a scope's `Set-Cookie`.
    fn cookie_pair(scope: &Scope) -> String {
        let set = scope.set_cookie().expect("a Set-Cookie");
        set.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            SessionKey::new("too short"),
            Err(Error::InvalidSigningKey {
                length: 9,
                minimum: MIN_SIGNING_KEY_LEN
            })
        ));
        assert!(SessionKey::new([7u8; MIN_SIGNING_KEY_LEN]).is_ok());
        assert_eq!(format!("{:?}", SessionKey::generate()), "SessionKey(..)");
    }

    #[test]
    fn a_browser_without_a_cookie_always_gets_the_same_session() {
        let sessions = sessions();
        let first = sessions.scope(&browser("192.0.2.1", "Firefox")).unwrap();
        assert_eq!(first.value().len(), SESSION_HEX);
        for _ in 0..10 {
            assert_eq!(
                sessions.scope(&browser("192.0.2.1", "Firefox")).unwrap(),
                first
            );
        }
        // Another server, or this one after a restart, with the same key.
        let again = Sessions::new(SessionKey::new(SECRET).unwrap());
        assert_eq!(again.scope(&browser("192.0.2.1", "Firefox")).unwrap(), first);
        // An IPv4-mapped IPv6 address is the same client.
        assert_eq!(
            sessions
                .scope(&browser("::ffff:192.0.2.1", "Firefox"))
                .unwrap(),
            first
        );
    }

    #[test]
    fn browsers_the_server_can_tell_apart_get_different_sessions() {
        let sessions = sessions();
        let base = sessions.scope(&browser("192.0.2.1", "Firefox")).unwrap();
        let other_address = sessions.scope(&browser("192.0.2.2", "Firefox")).unwrap();
        let other_agent = sessions.scope(&browser("192.0.2.1", "Chrome")).unwrap();
        let mut other_language = browser("192.0.2.1", "Firefox");
        other_language.accept_language = Some("de");
        let other_language = sessions.scope(&other_language).unwrap();
        let mut stale = browser("192.0.2.1", "Firefox");
        stale.cookies = vec!["cu_session=stale-cookie-of-an-old-key"];
        let stale = sessions.scope(&stale).unwrap();
        let values = [&base, &other_address, &other_agent, &other_language, &stale]
            .map(|scope| scope.value().to_owned());
        let distinct: std::collections::BTreeSet<_> = values.iter().collect();
        assert_eq!(distinct.len(), values.len(), "{values:?}");
        // Another key derives other sessions.
        let other_key = Sessions::new(SessionKey::new([1u8; 32]).unwrap());
        assert_ne!(
            other_key.scope(&browser("192.0.2.1", "Firefox")).unwrap(),
            base
        );
    }

    #[test]
    fn issued_cookies_are_accepted_and_nothing_else_is() {
        let sessions = sessions();
        let issued = sessions.scope(&browser("192.0.2.1", "Firefox")).unwrap();
        let pair = cookie_pair(&issued);
        let value = pair.strip_prefix("cu_session=").unwrap();
        assert_eq!(sessions.verify(value).as_deref(), Some(issued.value()));
        assert_eq!(value.len(), COOKIE_VALUE_LEN);

        let (session, tag) = value.split_once('.').unwrap();
        let other_session = format!("{}{}", &session[..31], if session.ends_with('0') { '1' } else { '0' });
        let forged = [
            String::new(),
            session.to_owned(),                           // unsigned (the old format)
            "0".repeat(32),                               // any 32 hex digits
            value.to_ascii_uppercase(),                   // upper case
            format!("{}.{tag}", session.to_ascii_uppercase()),
            format!("{session}.{}", tag.to_ascii_uppercase()),
            value[..value.len() - 1].to_owned(),          // truncated
            value[..SESSION_HEX + 1 + 32].to_owned(),     // a short tag
            format!("{value}0"),                          // longer
            format!("{other_session}.{tag}"),             // another session, this tag
            format!("{session}.{}", "0".repeat(64)),      // a made-up tag
            format!(" {value}"),
        ];
        for forged in &forged {
            assert_eq!(sessions.verify(forged), None, "{forged:?}");
        }
        let other_key = Sessions::new(SessionKey::new([1u8; 32]).unwrap());
        assert_eq!(other_key.verify(value), None);
    }

    #[test]
    fn a_forged_cookie_gets_a_fresh_signed_session() {
        let sessions = sessions();
        let real = sessions.scope(&browser("192.0.2.1", "Firefox")).unwrap();
        let real_pair = cookie_pair(&real);
        let upper = real_pair.replacen(
            real.value(),
            &real.value().to_ascii_uppercase(),
            1,
        );
        for forged in [format!("cu_session={}", real.value()), upper] {
            let mut request = browser("192.0.2.9", "Firefox");
            request.cookies = vec![&forged];
            let scope = sessions.scope(&request).unwrap();
            assert_ne!(scope.value(), real.value(), "{forged}");
            let fresh = cookie_pair(&scope);
            assert_eq!(
                sessions.verify(fresh.strip_prefix("cu_session=").unwrap()).as_deref(),
                Some(scope.value())
            );
        }
    }

    #[test]
    fn the_first_valid_cookie_wins_among_several() {
        let sessions = sessions();
        let real = sessions.scope(&browser("192.0.2.1", "Firefox")).unwrap();
        let pair = cookie_pair(&real);
        let header = format!("theme=dark; cu_session=junk; {pair}");
        let mut request = browser("192.0.2.200", "Other");
        request.cookies = vec!["other=1", &header];
        let scope = sessions.scope(&request).unwrap();
        assert_eq!((scope.value(), scope.set_cookie()), (real.value(), None));
    }

    #[test]
    fn without_a_cookie_or_an_address_there_is_no_session() {
        let sessions = sessions();
        let request = SessionRequest {
            user_agent: Some("Firefox"),
            ..SessionRequest::default()
        };
        assert!(matches!(
            sessions.scope(&request),
            Err(Error::NoSession { cookie: SESSION_COOKIE })
        ));
        // A page load gets a random session instead, a different one each time.
        let a = sessions.page_scope(&request);
        let b = sessions.page_scope(&request);
        assert_ne!(a.value(), b.value());
        // And a request with that cookie is in it, address or not.
        let pair = cookie_pair(&a);
        let with_cookie = SessionRequest {
            cookies: vec![&pair],
            ..SessionRequest::default()
        };
        assert_eq!(sessions.scope(&with_cookie).unwrap().value(), a.value());
        assert_eq!(sessions.page_scope(&with_cookie).set_cookie(), None);
    }

    #[test]
    fn the_cookie_has_its_attributes() {
        let sessions = sessions().secure(true).max_age(Duration::from_secs(60));
        let scope = sessions.page_scope(&SessionRequest::default());
        let cookie = scope.set_cookie().unwrap();
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure", "Max-Age=60"] {
            assert!(cookie.contains(attribute), "{attribute}: {cookie}");
        }
        let plain = self::sessions().page_scope(&SessionRequest::default());
        assert!(!plain.set_cookie().unwrap().contains("Secure"));
        assert!(plain.set_cookie().unwrap().contains("Max-Age=2592000"));
    }
}
