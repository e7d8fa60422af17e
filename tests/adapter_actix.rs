//! The conformance suite against the actix-web adapter: `UploadState::configure` inside
//! `web::scope("/upload")`, served by `HttpServer` on 127.0.0.1.

mod adapter_support;

use std::sync::OnceLock;

use actix_web::{App, HttpRequest, HttpServer, web};
use chunked_upload::adapter::actix::UploadState;
use chunked_upload::conformance::Target;

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let setup = adapter_support::setup("actix");
        let state = UploadState::new(setup.uploads, |req: &HttpRequest| {
            adapter_support::scope_of(req.headers().get("x-scope").map(|v| v.as_bytes()))
        });
        let listener = setup.listener;
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    let state = state.clone();
                    App::new().service(web::scope("/upload").configure(|cfg| state.configure(cfg)))
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
        setup.target
    })
}

chunked_upload::conformance_tests!(target());
