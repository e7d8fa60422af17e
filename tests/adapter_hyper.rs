//! The conformance suite against the hyper adapter: `service` with a header scope function,
//! served by hyper's HTTP/1 connection builder on 127.0.0.1; and the scope checks
//! (`adapter_support`): `service` with an async scope function that refuses with 401, the
//! functions with `session_scope` and the connection's peer address, conflicts.

mod adapter_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use adapter_support::Checks;
use bytes::Bytes;
use chunked_upload::Uploads;
use chunked_upload::adapter::hyper::{HyperResponse, UploadService};
use chunked_upload::adapter::{self, Scope, Sessions};
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::tus::Tus;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;

/// The routes of one server, shared by its connections.
#[derive(Clone)]
struct Routes {
    conformance: UploadService,
    authed: UploadService,
    shared: UploadService,
    private: UploadService,
    uploads: Uploads,
    sessions: Sessions,
}

/// A service whose scope is the `x-scope` header.
fn header_scoped(uploads: Uploads) -> UploadService {
    adapter::hyper::service(uploads, |parts: &Parts| {
        let header = parts.headers.get("x-scope").map(|v| v.as_bytes());
        std::future::ready(Ok(Scope::new(adapter_support::scope_of(header))))
    })
}

/// 401 with the extractor's own body.
fn unauthorized() -> HyperResponse {
    let body = Full::new(Bytes::from_static(adapter_support::REFUSAL.as_bytes()));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

/// A signed-in user (found by an async function), or 401.
async fn user(parts: &Parts) -> Result<Scope, HyperResponse> {
    let header = parts.headers.get("authorization").map(|v| v.as_bytes());
    let user = adapter_support::user_of(header);
    tokio::task::yield_now().await; // as a lookup in a session store would
    user.map(Scope::new).ok_or_else(unauthorized)
}

async fn route(
    routes: Routes,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<HyperResponse, Infallible> {
    let path = request.uri().path().to_owned();
    let uploads = &routes.uploads;
    if let Some(rest) = path.strip_prefix("/authed/progress") {
        let (parts, _) = request.into_parts();
        return Ok(match user(&parts).await {
            Ok(scope) => adapter::hyper::progress(uploads, &scope, rest.strip_prefix('/')),
            Err(refusal) => refusal,
        });
    }
    if path.starts_with("/authed/") {
        return routes.authed.call(request).await;
    }
    if path.starts_with("/shared/") {
        return routes.shared.call(request).await;
    }
    if path.starts_with("/private/") {
        return routes.private.call(request).await;
    }
    if let Some(rest) = path.strip_prefix("/session/") {
        let scope = match adapter::hyper::session_scope(
            &routes.sessions,
            request.headers(),
            Some(peer.ip()),
        ) {
            Ok(scope) => scope,
            Err(e) => return Ok(adapter::hyper::error_response(&e)),
        };
        return Ok(match (request.method(), rest) {
            (&Method::POST, "upload/done") => {
                adapter::hyper::finalize(uploads, scope, request).await
            }
            (_, "upload") => adapter::hyper::handle(uploads, scope, request).await,
            (_, progress) => {
                let identifier = progress.strip_prefix("progress/");
                adapter::hyper::progress(uploads, &scope, identifier)
            }
        });
    }
    routes.conformance.call(request).await
}

fn server() -> &'static (Target, Checks, TusTarget) {
    static SERVER: OnceLock<(Target, Checks, TusTarget)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let setup = adapter_support::setup("hyper");
        let routes = Routes {
            conformance: header_scoped(setup.uploads.clone())
                .with_tus("/tus", Tus::new(setup.uploads.clone())),
            authed: adapter::hyper::service(setup.uploads.clone(), |parts: &Parts| {
                let parts = parts.clone();
                async move { user(&parts).await }
            }),
            shared: header_scoped(setup.shared),
            private: header_scoped(setup.private),
            uploads: setup.uploads,
            sessions: setup.sessions,
        };
        let listener = setup.listener;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, peer)) = listener.accept().await else {
                        continue;
                    };
                    let routes = routes.clone();
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |request| route(routes.clone(), peer, request));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        (setup.target, setup.checks, setup.tus)
    })
}

chunked_upload::conformance_tests!(&server().0);
chunked_upload::tus_conformance_tests!(&server().2);
scope_checks!(&server().1);
