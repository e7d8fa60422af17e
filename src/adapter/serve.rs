//! The serving loop of the axum and hyper adapters: HTTP/1.1 connections with the
//! connection-level [`RequestLimits`] applied, which `axum::serve` and a bare hyper accept loop
//! lack (no deadline on a request head, so a connection that never finishes its head, or sends
//! nothing at all, stays open for ever).
//!
//! - [`RequestLimits::head_timeout`]: hyper's `header_read_timeout`, which runs from a
//!   connection's start and from each answer on, so it closes silent connections, half-sent
//!   heads and idle keep-alive connections alike;
//! - [`RequestLimits::max_head_bytes`]: hyper's `max_header_size` (431 past it);
//! - [`RequestLimits::max_connections`]: connections beyond it wait in the listen backlog.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::RequestLimits;

/// Most bytes hyper reads ahead of the application (its default is about 400 KiB): twice the
/// adapters' 64 KiB write batch. A request head may take up to `max_head_bytes` of it.
const READ_BUFFER: usize = 128 * 1024;

/// Far enough to mean "never", near enough that adding it to an instant cannot overflow.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The address of the client a request came from, put in every request's extensions by the
/// adapters' serving loops (`adapter::axum::serve`, `adapter::hyper::serve`): signed sessions
/// of requests without a cookie are derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// Serves the service `make` builds for each connection `listener` accepts (given the
/// client's address) until `shutdown` resolves, then waits for the connections in progress to
/// finish their requests.
pub(crate) async fn serve<M, S, B>(
    listener: TcpListener,
    make: M,
    limits: &RequestLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout.min(NEVER))
        .max_header_size(limits.max_head_bytes)
        .max_buf_size(limits.max_head_bytes.max(READ_BUFFER));
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => {
                permit.expect("the connection slots are never closed")
            }
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: the error is the listener's, not a
                    // connection's; wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), make(client));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
