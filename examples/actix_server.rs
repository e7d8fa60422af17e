//! The upload route on actix-web: `GET|POST /upload` and `POST /upload/done`.
//!
//! ```text
//! cargo run --example actix_server --features actix-web
//! ```
//!
//! Chunks go to `./uploads/.chunks`, assembled files to `./uploads`. There is no scope here
//! (every client shares one namespace); see the `server` example for a session cookie.

use actix_web::{App, HttpRequest, HttpServer, web};
use chunked_upload::adapter::actix::UploadState;
use chunked_upload::{Config, Uploads};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    let config = Config::builder("./uploads/.chunks", "./uploads").build();
    let uploads = Uploads::new(config).map_err(std::io::Error::other)?;
    let limits = *uploads.config().request_limits();
    let state = UploadState::new(uploads, |_: &HttpRequest| String::new());
    println!("listening on http://127.0.0.1:8080/upload");
    HttpServer::new(move || {
        let state = state.clone();
        App::new().service(web::scope("/upload").configure(|cfg| state.configure(cfg)))
    })
    // The connection limits are the server's: a deadline on the request head (from the
    // connection's start), on idle keep-alive connections, and their number. The adapter
    // applies the rest of the request limits to every request.
    .client_request_timeout(limits.head_timeout)
    .keep_alive(limits.head_timeout)
    .max_connections(limits.max_connections)
    .bind(("127.0.0.1", 8080))?
    .run()
    .await
}
