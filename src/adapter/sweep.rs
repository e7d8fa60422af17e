//! The sweep in the background: [`spawn_sweep`], which every adapter re-exports.

use std::time::{Duration, Instant};

use crate::Uploads;

/// Runs [`Uploads::sweep`] now and then every `interval`, in the background, until the returned
/// task is aborted or the runtime stops. No adapter sweeps by itself: without this call (or
/// your own schedule), idle uploads and the leftovers of crashed requests are never removed.
///
/// The sweep is blocking file I/O (it lists the temp dir and may delete many files), so each
/// run goes to a blocking thread and never holds up request handling; one run finishes before
/// the next starts. Each run that removed something is logged with [`tracing`] at `info`
/// (expired uploads, orphaned staging files, bytes freed, time taken); a failed run at `warn`.
///
/// ```no_run
/// # async fn run(uploads: chunked_upload::Uploads) {
/// use std::time::Duration;
/// # use chunked_upload::adapter::axum as adapter;
/// let sweeper = adapter::spawn_sweep(uploads, Duration::from_secs(600));
/// // ... serve ...
/// sweeper.abort();
/// # }
/// ```
///
/// # Panics
/// When called outside a Tokio runtime (actix-web's runtime is one).
pub fn spawn_sweep(uploads: Uploads, interval: Duration) -> tokio::task::JoinHandle<()> {
    let interval = interval.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let uploads = uploads.clone();
            let started = Instant::now();
            match tokio::task::spawn_blocking(move || uploads.sweep()).await {
                Ok(Ok(report)) if report.uploads_expired + report.orphans_removed > 0 => {
                    tracing::info!(
                        expired = report.uploads_expired,
                        orphans = report.orphans_removed,
                        busy_skipped = report.busy_skipped,
                        bytes_freed = report.bytes_freed,
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "sweep removed expired uploads and leftovers"
                    );
                }
                Ok(Ok(report)) => tracing::debug!(?report, "sweep found nothing to remove"),
                Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed"),
                Err(e) => tracing::warn!(error = %e, "sweep task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_background_sweep_removes_expired_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config::builder(dir.path().join("t"), dir.path().join("f"))
            .expire_after(Duration::ZERO)
            .build();
        let uploads = Uploads::new(config).unwrap();
        let params = crate::Params::from_urlencoded(
            b"flowChunkNumber=1&flowChunkSize=4&flowCurrentChunkSize=4&flowTotalSize=8\
              &flowIdentifier=8-x&flowFilename=x&flowRelativePath=x&flowTotalChunks=2",
        )
        .unwrap();
        let mut request = crate::RawRequest::new(crate::RequestKind::Upload, params)
            .with_body(crate::ChunkBody::bytes(b"abcd".to_vec()));
        uploads.save(&mut request).unwrap();
        let entries = || std::fs::read_dir(dir.path().join("t")).unwrap().count();
        assert!(entries() > 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let task = spawn_sweep(uploads.clone(), Duration::from_secs(3600));
            for _ in 0..500 {
                if entries() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            task.abort();
        });
        assert_eq!(entries(), 0, "the first sweep runs at once and removes the idle upload");
    }
}
