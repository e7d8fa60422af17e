//! The conformance suite against the axum adapter: `router` nested at `/upload` with a header
//! scope extractor, served by `axum::serve` on 127.0.0.1 (with the client's address); and the
//! scope checks: a 401 extractor, the signed-session scope, conflicts (`adapter_support`).

mod adapter_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use adapter_support::Checks;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chunked_upload::adapter::axum::{SessionScope, progress_router, router, tus_router};
use chunked_upload::adapter::{Scope, Sessions};
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::tus::Tus;

/// The scope of the `x-scope` header.
struct HeaderScope(Scope);

impl<S: Send + Sync> FromRequestParts<S> for HeaderScope {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let header = parts.headers.get("x-scope").map(|v| v.as_bytes());
        Ok(HeaderScope(Scope::new(adapter_support::scope_of(header))))
    }
}

impl From<HeaderScope> for Scope {
    fn from(scope: HeaderScope) -> Scope {
        scope.0
    }
}

/// A signed-in user, or 401 with the extractor's own body.
struct User(Scope);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get("authorization").map(|v| v.as_bytes());
        adapter_support::user_of(header)
            .map(|user| User(Scope::new(user)))
            .ok_or((StatusCode::UNAUTHORIZED, adapter_support::REFUSAL))
    }
}

impl From<User> for Scope {
    fn from(user: User) -> Scope {
        user.0
    }
}

fn server() -> &'static (Target, Checks, TusTarget) {
    static SERVER: OnceLock<(Target, Checks, TusTarget)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let setup = adapter_support::setup("axum");
        let uploads = setup.uploads;
        let app: Router<Sessions> = Router::new()
            .nest("/upload", router::<HeaderScope, _>(uploads.clone()))
            .merge(tus_router::<HeaderScope, _>(
                Tus::new(uploads.clone()),
                "/tus",
            ))
            .nest("/authed/upload", router::<User, _>(uploads.clone()))
            .nest(
                "/authed/progress",
                progress_router::<User, _>(uploads.clone()),
            )
            .nest(
                "/session/upload",
                router::<SessionScope, _>(uploads.clone()),
            )
            .nest(
                "/session/progress",
                progress_router::<SessionScope, _>(uploads),
            )
            .nest("/shared/upload", router::<HeaderScope, _>(setup.shared))
            .nest("/private/upload", router::<HeaderScope, _>(setup.private));
        let app = app.with_state(setup.sessions);
        let listener = setup.listener;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, app).await.expect("serve");
            });
        });
        (setup.target, setup.checks, setup.tus)
    })
}

chunked_upload::conformance_tests!(&server().0);
chunked_upload::tus_conformance_tests!(&server().2);
scope_checks!(&server().1);

/// Served without the client's address (no `into_make_service_with_connect_info`), a request
/// without a valid session cookie cannot be scoped safely: it is refused with 400 and a message
/// that says what to do, never answered "stored"; a request with a valid cookie needs no address.
#[test]
fn without_the_client_address_a_cookieless_request_is_refused() {
    let setup = adapter_support::setup("axum-no-address");
    let sessions = setup.sessions.clone();
    let app: Router = Router::new()
        .nest("/upload", router::<SessionScope, _>(setup.uploads))
        .with_state(sessions.clone());
    let listener = setup.listener;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let client = reqwest::blocking::Client::new();
    let query = "flowChunkNumber=1&flowChunkSize=16384&flowCurrentChunkSize=3&flowTotalSize=3\
                 &flowIdentifier=3-na&flowFilename=na.bin&flowRelativePath=na.bin&flowTotalChunks=1";
    let url = format!("{}?{query}", setup.target.base_url);
    let refused = client.post(&url).body("abc").send().expect("POST");
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().get("set-cookie").is_none());
    let body: serde_json::Value =
        serde_json::from_str(&refused.text().expect("a body")).expect("JSON");
    assert_eq!(body["preventRetry"], true, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("load this site's page first"), "{message}");
    assert!(!setup.target.files_dir.join("na.bin").exists());

    // A session the server issued (say, with its page) works without the address.
    let page = sessions.page_scope(&chunked_upload::adapter::SessionRequest::default());
    let cookie = page
        .set_cookie()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let stored = client
        .post(&url)
        .header("cookie", cookie)
        .body("abc")
        .send()
        .expect("POST");
    assert_eq!(stored.status(), 200);
    assert!(stored.headers().get("set-cookie").is_none());
    assert_eq!(
        std::fs::read(setup.target.files_dir.join("na.bin")).unwrap(),
        b"abc"
    );
}
