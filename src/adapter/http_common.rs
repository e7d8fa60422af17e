//! The `http` crate's types, shared by the adapters built on them (axum and hyper): reading a
//! request head, deciding its session, writing a [`Reply`] as a response.

use std::net::IpAddr;

use http::header::{
    ACCEPT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE, USER_AGENT,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::body::Head;
use super::{Scope, SessionRequest, Sessions};
use crate::{Reply, Result};

/// What the collector needs from a request head.
pub(crate) fn head(parts: &Parts) -> Head<'_> {
    Head {
        method: parts.method.as_str(),
        query: parts.uri.query().unwrap_or(""),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        content_length: parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
    }
}

/// The response for a reply: its status, its JSON body (with `Content-Type`) if any, and
/// `Retry-After` when set.
pub(crate) fn response<B: From<String>>(reply: Reply) -> Response<B> {
    let content_type = reply.content_type();
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(B::from(reply.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(seconds) = reply.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The session scope of a request to an upload route ([`Sessions::scope`]), from its headers and
/// the client's address.
pub(crate) fn session_scope(
    sessions: &Sessions,
    headers: &HeaderMap,
    address: Option<IpAddr>,
) -> Result<Scope> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let all = |name: HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    let request = SessionRequest {
        cookies: all(COOKIE),
        address,
        user_agent: text(USER_AGENT),
        accept_language: text(ACCEPT_LANGUAGE),
        forwarded_for: all(HeaderName::from_static("x-forwarded-for")),
    };
    sessions.scope(&request)
}

/// The tus request of a request head: its method, the mount and id from the full path and the
/// path within the mount, every header (the core keeps those tus reads), the scope.
pub(crate) fn tus_request(
    parts: &Parts,
    full_path: &str,
    within_mount: &str,
    scope: &Scope,
) -> crate::tus::TusRequest {
    let mut request =
        crate::tus::TusRequest::from_paths(parts.method.as_str(), full_path, within_mount)
            .with_scope(scope.value());
    for (name, value) in &parts.headers {
        request.header(name.as_str(), value.as_bytes());
    }
    request
}

/// The response for a tus reply: its status, every header, its body, and the scope's session
/// cookie, if new.
pub(crate) fn tus_response<B: From<String>>(
    reply: crate::tus::TusReply,
    scope: Option<&Scope>,
) -> Response<B> {
    let (status, headers, body) = reply.into_parts();
    let mut response = Response::new(B::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    set_cookie(response, scope)
}

/// Adds the scope's `Set-Cookie`, if it has one, to a response.
pub(crate) fn set_cookie<B>(mut response: Response<B>, scope: Option<&Scope>) -> Response<B> {
    if let Some(cookie) = scope.and_then(Scope::set_cookie)
        && let Ok(value) = HeaderValue::from_str(cookie)
    {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}
