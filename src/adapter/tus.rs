//! What the adapters share for tus, and nothing framework-specific: a request's body pumped
//! into its [`TusAppend`] (the same body pump, body slots and slow-body rule as the widgets'),
//! watched for another request taking the upload over, and the log line of each answer.

use std::time::Instant;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::body::{Cut, Sink, blocking, pump_keeping, watched};
use crate::tus::{
    Protocol, RELEASE_POLL, ReleaseWatch, Tus, TusAppend, TusBegun, TusReply, TusRequest,
};
use crate::{Error, Result};

impl Sink for TusAppend {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(bytes)
    }
}

/// Handles a tus request: [`Tus::begin`] on a blocking thread, then (for an append) its body
/// pumped into the store, then finished, or interrupted keeping what arrived when the body
/// breaks off, goes past the upload's end, or another request asks for the upload.
pub(crate) async fn serve<S>(tus: &Tus, request: TusRequest, body: S) -> TusReply
where
    S: Stream<Item = Result<Bytes>> + 'static,
{
    let started = Instant::now();
    let method = request.method().to_owned();
    let handler = tus.clone();
    let begun = blocking(move || Ok(handler.begin(&request))).await;
    let reply = match begun {
        Err(e) => failed(e),
        Ok(TusBegun::Done(reply)) => reply,
        Ok(TusBegun::Receiving(append)) => {
            let append = *append;
            let watch = append.release_watch();
            let identifier = append.id().to_owned();
            let idle = tus.uploads().config().request_limits().idle_timeout;
            let body = watched(until_released(body, watch, identifier), idle);
            match pump_keeping(tus.uploads(), append, body).await {
                Ok(append) => blocking(move || Ok(append.finish()))
                    .await
                    .unwrap_or_else(failed),
                Err(Cut {
                    error,
                    sink: Some(append),
                }) => blocking(move || Ok(append.interrupted(error)))
                    .await
                    .unwrap_or_else(failed),
                // The task writing the body failed (it panicked): the lock went with it.
                Err(Cut { error, sink: None }) => failed(error),
            }
        }
    };
    log(&reply, &method, started);
    reply
}

/// The reply when a blocking task failed (500).
fn failed(error: Error) -> TusReply {
    TusReply::failed(Protocol::Tus, error)
}

/// `body`, ending with [`Error::TakenOver`] as soon as `watch` says another request asked for
/// the upload (looked at every [`RELEASE_POLL`], on a blocking thread: the store may be
/// remote), whether or not bytes are arriving.
fn until_released<S>(
    body: S,
    watch: ReleaseWatch,
    identifier: String,
) -> impl Stream<Item = Result<Bytes>>
where
    S: Stream<Item = Result<Bytes>> + 'static,
{
    let mut ticker = tokio::time::interval(RELEASE_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Some((Box::pin(body), ticker, watch, identifier));
    stream::unfold(state, |state| async move {
        let (mut body, mut ticker, watch, identifier) = state?;
        loop {
            tokio::select! {
                piece = body.next() => {
                    let piece = piece?;
                    return Some((piece, Some((body, ticker, watch, identifier))));
                }
                _ = ticker.tick() => {
                    let check = watch.clone();
                    let asked = tokio::task::spawn_blocking(move || check.asked())
                        .await
                        .unwrap_or(false);
                    if asked {
                        let taken = Error::TakenOver { identifier, kept: 0 };
                        return Some((Err(taken), None));
                    }
                }
            }
        }
    })
}

/// Logs the end of a tus request: `info` for a published file, `warn` for a refused request,
/// `error` for a server-side failure, `debug` otherwise.
fn log(reply: &TusReply, method: &str, started: Instant) {
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let status = reply.status();
    if let Some(file) = reply.assembled() {
        tracing::info!(
            file = %file.location,
            size = file.size,
            identifier = %file.upload.identifier,
            upload_ms = file.duration_ms(),
            elapsed_ms,
            "file assembled (tus)"
        );
    }
    match reply.error() {
        Some(e) if status >= 500 => {
            tracing::error!(method, status, reason = %e, elapsed_ms, "tus request failed");
        }
        Some(e) => tracing::warn!(method, status, reason = %e, elapsed_ms, "tus request rejected"),
        None => tracing::debug!(
            method,
            status,
            offset = reply.header("Upload-Offset"),
            elapsed_ms,
            "tus request handled"
        ),
    }
}
