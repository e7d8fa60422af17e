//! The conformance suite against the hyper adapter: `service` served by hyper's HTTP/1
//! connection builder on 127.0.0.1.

mod adapter_support;

use std::sync::OnceLock;

use chunked_upload::adapter;
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::tus::Tus;
use http::request::Parts;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;

fn targets() -> &'static (Target, TusTarget) {
    static TARGETS: OnceLock<(Target, TusTarget)> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let setup = adapter_support::setup("hyper");
        let tus = Tus::new(setup.uploads.clone());
        let service = adapter::hyper::service(setup.uploads, |parts: &Parts| {
            adapter_support::scope_of(parts.headers.get("x-scope").map(|v| v.as_bytes()))
        })
        .with_tus("/tus", tus);
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
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let service = service.clone();
                    tokio::spawn(async move {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        (setup.target, setup.tus)
    })
}

chunked_upload::conformance_tests!(&targets().0);
chunked_upload::tus_conformance_tests!(&targets().1);
