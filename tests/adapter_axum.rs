//! The conformance suite against the axum adapter: `router` nested at `/upload`, served by
//! `axum::serve` on 127.0.0.1.

mod adapter_support;

use std::sync::OnceLock;

use axum::Router;
use axum::http::request::Parts;
use chunked_upload::adapter;
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::tus::Tus;

fn targets() -> &'static (Target, TusTarget) {
    static TARGETS: OnceLock<(Target, TusTarget)> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let setup = adapter_support::setup("axum");
        let scope = |parts: &Parts| {
            adapter_support::scope_of(parts.headers.get("x-scope").map(|v| v.as_bytes()))
        };
        let app = Router::new()
            .nest(
                "/upload",
                adapter::axum::router(setup.uploads.clone(), scope),
            )
            .merge(adapter::axum::tus_router(
                Tus::new(setup.uploads),
                "/tus",
                scope,
            ));
        let listener = setup.listener;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        (setup.target, setup.tus)
    })
}

chunked_upload::conformance_tests!(&targets().0);
chunked_upload::tus_conformance_tests!(&targets().1);
