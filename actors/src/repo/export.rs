//! Streaming export: the engine writes NDJSON into a bounded channel from a blocking thread,
//! and the HTTP body reads from it, so memory stays bounded whatever the graph's size.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use omnigraph::db::Omnigraph;
use tokio::sync::mpsc;

use super::branches;
use crate::RepoError;
use crate::cache::RepoCache;

const CHUNK_BYTES: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 4;

/// NDJSON chunks of an export. An error after the first chunk ends the stream with `Err`,
/// so the HTTP body is aborted rather than silently truncated.
pub struct ExportStream {
    first: Option<Bytes>,
    chunks: mpsc::Receiver<Result<Bytes, RepoError>>,
    /// Whatever keeps the repo in use until the stream ends (the request's guard).
    _in_use: Box<dyn Send + Sync>,
}

impl Stream for ExportStream {
    type Item = Result<Bytes, RepoError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        self.chunks.poll_recv(cx)
    }
}

pub(crate) async fn start(
    engine: Arc<Omnigraph>,
    cache: Arc<RepoCache>,
    branch: String,
    type_names: Vec<String>,
    table_keys: Vec<String>,
    in_use: Box<dyn Send + Sync>,
) -> Result<ExportStream, RepoError> {
    let (sender, mut chunks) = mpsc::channel(CHANNEL_CHUNKS);
    let runtime = tokio::runtime::Handle::current();
    let producer_engine = Arc::clone(&engine);
    let producer_branch = branch.clone();
    let stale = crate::cache::stale::carried();
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            sender: sender.clone(),
        };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(
                stale.run(cache.scope(producer_engine.export_jsonl_to_writer(
                    &producer_branch,
                    &type_names,
                    &table_keys,
                    &mut writer,
                ))),
            )
        }));
        let outcome = match run {
            Ok(Ok(())) => writer.flush().map_err(RepoError::from),
            Ok(Err(err)) => Err(RepoError::Engine(err)),
            Err(_) => Err(RepoError::Internal {
                message: "export panicked".into(),
            }),
        };
        if let Err(err) = outcome {
            let _ = sender.blocking_send(Err(err));
        }
    });
    // Wait for the first chunk so that a bad request fails with a proper error response.
    let first = match chunks.recv().await {
        None => None,
        Some(Ok(chunk)) => Some(chunk),
        Some(Err(RepoError::Engine(err))) => {
            return Err(branches::explain_error(&engine, &branch, err).await);
        }
        Some(Err(err)) => return Err(err),
    };
    Ok(ExportStream {
        first,
        chunks,
        _in_use: in_use,
    })
}

/// A `std::io::Write` that hands 64 KiB chunks to the channel, blocking while it is full.
/// It runs on a blocking thread, where waiting is allowed.
struct ChannelWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<Result<Bytes, RepoError>>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        futures::executor::block_on(self.sender.send(Ok(chunk))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "export reader went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffer()
    }
}
