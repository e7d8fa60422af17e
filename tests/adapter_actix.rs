//! The conformance suite against the actix-web adapter: `UploadState::configure` with a header
//! scope extractor inside `web::scope("/upload")`, served by `HttpServer` on 127.0.0.1; and the
//! scope checks: a 401 extractor, the signed-session scope, conflicts (`adapter_support`).

mod adapter_support;

use std::future::{Ready, ready};
use std::sync::OnceLock;

use actix_web::dev::Payload;
use actix_web::error::ErrorUnauthorized;
use actix_web::{App, FromRequest, HttpRequest, HttpServer, web};
use adapter_support::Checks;
use chunked_upload::adapter::Scope;
use chunked_upload::adapter::actix::{SessionScope, TusState, UploadState};
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::tus::Tus;

/// The scope of the `x-scope` header.
struct HeaderScope(Scope);

impl FromRequest for HeaderScope {
    type Error = actix_web::Error;
    type Future = Ready<Result<HeaderScope, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = req.headers().get("x-scope").map(|v| v.as_bytes());
        ready(Ok(HeaderScope(Scope::new(adapter_support::scope_of(
            header,
        )))))
    }
}

impl From<HeaderScope> for Scope {
    fn from(scope: HeaderScope) -> Scope {
        scope.0
    }
}

/// A signed-in user, or 401 with the extractor's own body.
struct User(Scope);

impl FromRequest for User {
    type Error = actix_web::Error;
    type Future = Ready<Result<User, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = req.headers().get("authorization").map(|v| v.as_bytes());
        ready(
            adapter_support::user_of(header)
                .map(|user| User(Scope::new(user)))
                .ok_or_else(|| ErrorUnauthorized(adapter_support::REFUSAL)),
        )
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
        let setup = adapter_support::setup("actix");
        let tus = TusState::new(Tus::new(setup.uploads.clone()));
        let state = UploadState::new(setup.uploads);
        let shared = UploadState::new(setup.shared);
        let private = UploadState::new(setup.private);
        let sessions = web::Data::new(setup.sessions);
        let listener = setup.listener;
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    let (state, shared, private) = (state.clone(), shared.clone(), private.clone());
                    let tus = tus.clone();
                    let (authed, authed_progress) = (state.clone(), state.clone());
                    let (session, session_progress) = (state.clone(), state.clone());
                    App::new()
                        .app_data(sessions.clone())
                        .service(
                            web::scope("/upload")
                                .configure(|cfg| state.configure::<HeaderScope>(cfg)),
                        )
                        .service(
                            web::scope("/tus").configure(|cfg| tus.configure::<HeaderScope>(cfg)),
                        )
                        .service(
                            web::scope("/authed/upload")
                                .configure(|cfg| authed.configure::<User>(cfg)),
                        )
                        .service(
                            web::scope("/authed/progress")
                                .configure(|cfg| authed_progress.configure_progress::<User>(cfg)),
                        )
                        .service(
                            web::scope("/session/upload")
                                .configure(|cfg| session.configure::<SessionScope>(cfg)),
                        )
                        .service(web::scope("/session/progress").configure(|cfg| {
                            session_progress.configure_progress::<SessionScope>(cfg)
                        }))
                        .service(
                            web::scope("/shared/upload")
                                .configure(|cfg| shared.configure::<HeaderScope>(cfg)),
                        )
                        .service(
                            web::scope("/private/upload")
                                .configure(|cfg| private.configure::<HeaderScope>(cfg)),
                        )
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
        (setup.target, setup.checks, setup.tus)
    })
}

chunked_upload::conformance_tests!(&server().0);
chunked_upload::tus_conformance_tests!(&server().2);
scope_checks!(&server().1);
