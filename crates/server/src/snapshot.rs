//! Maintenance.Snapshot and Maintenance.Hash (etcd's `v3rpc/maintenance.go`).
//!
//! A snapshot is the MVCC store's image (`retcd_mvcc::SnapshotImage`, format RETCDSNAP1 in
//! `docs/backend.md`) taken from one redb read transaction on a blocking thread, so writers
//! go on meanwhile. As etcd, it is sent in 32 KiB blobs, each with the bytes still to come
//! in `remaining_bytes`, and a last message whose blob is the SHA-256 of everything before
//! it (`retcdctl snapshot restore` checks it). The image is padded with zeros to a multiple
//! of 512 bytes first: etcdctl 3.4 takes a stream whose size is not a multiple of 512 plus
//! the 32-byte digest as having no checksum ("sha256 checksum not found"), since a bbolt
//! file always is one. The blobs go through a small bounded queue:
//! a slow client holds at most [`QUEUE_CHUNKS`] blobs in memory and only its own thread
//! waits; a client that goes away ends the thread and releases the read transaction.

use std::io::{self, Write};

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::SnapshotResponse;
use retcd_auth::AuthError;
use retcd_mvcc::Store;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::Status;

/// etcd's `snapshotSendBufferSize`.
pub const CHUNK_BYTES: usize = 32 * 1024;
/// The image is padded with zeros to a multiple of this.
pub const PAD_TO: u64 = 512;
/// Blobs queued per stream ahead of the client (1 MiB at most).
pub const QUEUE_CHUNKS: usize = 32;

/// What etcd's `authMaintenanceServer` answers when the caller may not take snapshots,
/// hashes or defragment, or its token is not valid: the auth package's own errors, code
/// Unknown (only root may, once auth is on).
pub fn admin_error(e: EtcdError) -> Status {
    let msg = match e {
        EtcdError::UserEmpty => AuthError::UserEmpty.to_string(),
        EtcdError::UserNotFound => AuthError::UserNotFound.to_string(),
        EtcdError::InvalidAuthToken => AuthError::InvalidAuthToken.to_string(),
        _ => return EtcdError::MaintenanceAuthDenied.into(),
    };
    Status::unknown(msg)
}

/// The stream of snapshot messages for one client.
pub fn stream(store: Store) -> mpsc::Receiver<Result<SnapshotResponse, Status>> {
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match send_image(&store, &tx) {
            Ok(size) => tracing::info!(
                size,
                took = ?started.elapsed(),
                "sent database snapshot to client"
            ),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::info!("snapshot client went away; snapshot stopped")
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to send database snapshot");
                let _ = tx.blocking_send(Err(EtcdError::Internal(e.to_string()).into()));
            }
        }
    });
    rx
}

/// Writes the image into 32 KiB blobs on `tx`, then the SHA-256 message; returns the size.
fn send_image(store: &Store, tx: &mpsc::Sender<Result<SnapshotResponse, Status>>) -> io::Result<u64> {
    let image = store.snapshot_image().map_err(io::Error::other)?;
    let size = image.size().map_err(io::Error::other)?;
    let total = size.div_ceil(PAD_TO) * PAD_TO;
    let mut w = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK_BYTES),
        total,
        sent: 0,
        sha: Sha256::new(),
    };
    // an I/O error of the writer (the client left) comes back wrapped in the store's error
    if let Err(e) = image.write_to(&mut w) {
        if tx.is_closed() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        return Err(io::Error::other(e));
    }
    drop(image);
    let mut padding = total - size;
    while padding > 0 {
        let n = padding.min(CHUNK_BYTES as u64) as usize;
        w.write_all(&vec![0; n])?;
        padding -= n as u64;
    }
    w.send_chunk()?;
    if w.sent != total {
        return Err(io::Error::other(format!(
            "snapshot image was {} bytes, expected {total}",
            w.sent
        )));
    }
    let digest = w.sha.finalize().to_vec();
    let last = SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: digest,
        // etcd 3.4 sends no version (3.5 sends its storage version)
        version: String::new(),
    };
    tx.blocking_send(Ok(last))
        .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
    Ok(total)
}

struct ChunkWriter<'a> {
    tx: &'a mpsc::Sender<Result<SnapshotResponse, Status>>,
    buf: Vec<u8>,
    total: u64,
    sent: u64,
    sha: Sha256,
}

impl ChunkWriter<'_> {
    /// Sends the buffered bytes (if any) as one blob; waits while the queue is full.
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.sha.update(&blob);
        self.sent += blob.len() as u64;
        let msg = SnapshotResponse {
            header: None,
            remaining_bytes: self.total.saturating_sub(self.sent),
            blob,
            version: String::new(),
        };
        self.tx
            .blocking_send(Ok(msg))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_remaining_bytes_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), Default::default()).unwrap();
        let mut b = store.begin_batch().unwrap();
        for i in 0..200u32 {
            let mut t = b.txn();
            t.put(format!("key{i}").as_bytes(), &[i as u8; 1000], 0).unwrap();
            t.end();
        }
        b.commit(true).unwrap();
        let mut want = Vec::new();
        store.write_snapshot(&mut want).unwrap();
        assert!(want.len() % 512 != 0);
        want.resize(want.len().div_ceil(512) * 512, 0);

        let mut rx = stream(store.clone());
        let mut got = Vec::new();
        let mut msgs = Vec::new();
        while let Some(m) = rx.recv().await {
            msgs.push(m.unwrap());
        }
        let (last, data) = msgs.split_last().unwrap();
        for m in data {
            got.extend_from_slice(&m.blob);
            assert_eq!(m.remaining_bytes as usize, want.len() - got.len());
        }
        assert!(data[..data.len() - 1].iter().all(|m| m.blob.len() == CHUNK_BYTES));
        assert_eq!(got, want);
        assert_eq!(last.remaining_bytes, 0);
        assert_eq!(last.blob, Sha256::digest(&want).to_vec());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_leaves_stops_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), Default::default()).unwrap();
        let mut b = store.begin_batch().unwrap();
        for i in 0..3000u32 {
            let mut t = b.txn();
            t.put(format!("key{i}").as_bytes(), &[1; 1000], 0).unwrap();
            t.end();
        }
        b.commit(true).unwrap();
        let mut rx = stream(store.clone());
        assert!(rx.recv().await.unwrap().is_ok());
        drop(rx);
        // the producer notices and ends; the store stays writable
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        t.put(b"after", b"x", 0).unwrap();
        t.end();
        b.commit(true).unwrap();
    }
}
