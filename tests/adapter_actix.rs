//! The conformance suite against the actix-web adapter: `UploadState::configure` inside
//! `web::scope("/upload")`, served by `HttpServer` on 127.0.0.1.

mod adapter_support;

use std::sync::OnceLock;

use actix_web::{App, HttpRequest, HttpServer, web};
use chunked_upload::adapter::actix::{TusState, UploadState};
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::tus::Tus;

fn targets() -> &'static (Target, TusTarget) {
    static TARGETS: OnceLock<(Target, TusTarget)> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let setup = adapter_support::setup("actix");
        let scope = |req: &HttpRequest| {
            adapter_support::scope_of(req.headers().get("x-scope").map(|v| v.as_bytes()))
        };
        let tus = TusState::new(Tus::new(setup.uploads.clone()), scope);
        let state = UploadState::new(setup.uploads, scope);
        let listener = setup.listener;
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    let (state, tus) = (state.clone(), tus.clone());
                    App::new()
                        .service(web::scope("/upload").configure(|cfg| state.configure(cfg)))
                        .service(web::scope("/tus").configure(|cfg| tus.configure(cfg)))
                })
                .workers(2)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("serve");
            });
        });
        (setup.target, setup.tus)
    })
}

chunked_upload::conformance_tests!(&targets().0);
chunked_upload::tus_conformance_tests!(&targets().1);
