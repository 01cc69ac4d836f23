//! Answering chunk requests from the artifact store.
//!
//! A device asks for `[offset, offset + len)` of an image by digest (first `window × chunk_size`,
//! then half a window at a time, and again from its last good byte after a timeout). The answer is
//! that range in pieces of the image's chunk size, each a [`Chunk`] on the device's `chunk`
//! topic. The chunk size is the one in the signed manifest: a device abandons a download on a
//! chunk larger than its manifest says, so when several manifests name one image the smallest
//! of their chunk sizes is used. Sizes are learned from every delivery the bus sends and, after a
//! restart, from the signed manifests in the database; an image no signed manifest names is not
//! served.
//!
//! Work is bounded: requests wait in a queue of [`QUEUE`] and are answered by [`WORKERS`] lanes,
//! each device's requests by one lane in the order they came, so its chunks leave in order; a
//! request that finds its lane full is dropped (the device asks again on its tick).
//! One request is answered with at most [`MAX_REQUEST`] bytes. Images up to [`CACHE_BYTES`] in
//! total are kept in memory, checked against their digest when loaded; a larger one is read from
//! its file for each request.

use super::stats::Stats;
use crate::artifacts::ArtifactStore;
use airlock_proto::limits::MAX_CHUNK;
use airlock_proto::topics::{self, Kind};
use airlock_proto::{Action, Chunk, ChunkRequest, Delivery, Digest, Manifest};
use rumqttc::{AsyncClient, QoS};
use sha2::{Digest as _, Sha256};
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Chunk requests waiting for a worker.
pub const QUEUE: usize = 8192;
/// Chunk requests answered at once.
pub const WORKERS: usize = 32;
/// Most bytes sent for one request: 256 chunks of the largest size. A device whose window asks
/// for more gets this much and re-requests the rest after its chunk timeout.
pub const MAX_REQUEST: u32 = 256 * MAX_CHUNK as u32;
/// Memory for cached images, in bytes.
pub const CACHE_BYTES: usize = 256 * 1024 * 1024;
/// How long an image no signed manifest names stays unknown before the database is asked again.
const UNKNOWN_FOR: Duration = Duration::from_secs(10);

/// Why a request was not answered (the counter is `chunk_dropped_<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The request does not decode.
    Malformed,
    /// No signed manifest names the image.
    UnknownImage,
    /// A manifest names it but it was never uploaded.
    NoArtifact,
    /// The stored file does not hash to its name.
    Corrupt,
    /// Nothing of the image lies in the range asked for.
    OutOfRange,
    /// The queue was full.
    Overloaded,
    /// The database or the file failed.
    Internal,
    /// The MQTT client is gone (shutting down).
    Publish,
}

impl Dropped {
    /// The counter name.
    pub const fn counter(self) -> &'static str {
        match self {
            Dropped::Malformed => "chunk_dropped_malformed",
            Dropped::UnknownImage => "chunk_dropped_unknown_image",
            Dropped::NoArtifact => "chunk_dropped_no_artifact",
            Dropped::Corrupt => "chunk_dropped_corrupt",
            Dropped::OutOfRange => "chunk_dropped_out_of_range",
            Dropped::Overloaded => "chunk_dropped_overloaded",
            Dropped::Internal => "chunk_dropped_internal",
            Dropped::Publish => "chunk_dropped_publish",
        }
    }
}

/// What serves chunks.
#[derive(Debug)]
pub struct Chunks {
    client: AsyncClient,
    artifacts: ArtifactStore,
    pool: AnyPool,
    stats: Arc<Stats>,
    sizes: Mutex<HashMap<Digest, u32>>,
    unknown: Mutex<HashMap<Digest, Instant>>,
    cache: Mutex<Cache>,
    loading: tokio::sync::Mutex<()>,
}

/// An image to serve from.
enum Image {
    /// Whole, in memory, digest checked.
    Memory(Arc<[u8]>),
    /// Too large for the cache: read per request.
    File(u64),
}

#[derive(Debug, Default)]
struct Cache {
    images: HashMap<Digest, Arc<[u8]>>,
    order: VecDeque<Digest>,
    bytes: usize,
}

/// The lane that answers `device` (FNV-1a of its id).
fn lane_of(device: &str) -> usize {
    let hash = device.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % WORKERS as u64) as usize
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Chunks {
    /// Serves from `artifacts`, publishing with `client`.
    pub fn new(client: AsyncClient, artifacts: ArtifactStore, pool: AnyPool, stats: Arc<Stats>) -> Chunks {
        Chunks {
            client,
            artifacts,
            pool,
            stats,
            sizes: Mutex::default(),
            unknown: Mutex::default(),
            cache: Mutex::default(),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Records the chunk size of `image` (the smallest seen wins).
    pub fn note(&self, image: Digest, chunk_size: u32) {
        let chunk = chunk_size.clamp(1, MAX_CHUNK as u32);
        let mut sizes = lock(&self.sizes);
        let e = sizes.entry(image).or_insert(chunk);
        *e = (*e).min(chunk);
        lock(&self.unknown).remove(&image);
    }

    /// Records the chunk size of a delivery's firmware image, if it has one.
    pub fn note_delivery(&self, delivery: &[u8]) -> Result<(), airlock_proto::Refusal> {
        let d: Delivery<'_> = airlock_proto::decode(delivery)?;
        let m: Manifest<'_> = airlock_proto::decode(d.manifest.body)?;
        if let Action::Firmware(f) = m.action {
            self.note(f.image_digest, f.chunk_size);
        }
        Ok(())
    }

    /// Runs the queue until it closes. Requests are answered by [`WORKERS`] lanes, each in
    /// order; a device's requests always go to the same lane, so its chunks are published in
    /// the order it asked for them (a device drops a chunk that arrives ahead of a missing one
    /// and waits for its chunk timeout, so reordering would stall every download).
    pub async fn run(self: Arc<Self>, mut queue: tokio::sync::mpsc::Receiver<(String, Vec<u8>)>) {
        let mut lanes = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(QUEUE / WORKERS);
            let me = self.clone();
            tokio::spawn(async move {
                while let Some((device, payload)) = rx.recv().await {
                    match me.serve(&device, &payload).await {
                        Ok(n) => me.stats.add("chunk_sent", n),
                        Err(why) => {
                            me.stats.bump(why.counter());
                            tracing::debug!(%device, reason = why.counter(), "chunk request not answered");
                        }
                    }
                }
            });
            lanes.push(tx);
        }
        while let Some((device, payload)) = queue.recv().await {
            let lane = &lanes[lane_of(&device)];
            if lane.try_send((device, payload)).is_err() {
                self.stats.bump(Dropped::Overloaded.counter());
            }
        }
    }

    /// Answers one request; returns the number of chunks published.
    pub async fn serve(&self, device: &str, payload: &[u8]) -> Result<u64, Dropped> {
        let req: ChunkRequest = airlock_proto::decode(payload).map_err(|_| Dropped::Malformed)?;
        let topic = topics::topic(device, Kind::Chunk).ok_or(Dropped::Malformed)?;
        let chunk = u64::from(self.chunk_size(&req.image).await?.ok_or(Dropped::UnknownImage)?);
        let image = self.image(&req.image).await?.ok_or(Dropped::NoArtifact)?;
        let size = match &image {
            Image::Memory(b) => b.len() as u64,
            Image::File(size) => *size,
        };
        let start = u64::from(req.offset);
        let end = (start + u64::from(req.len.min(MAX_REQUEST))).min(size);
        if start >= end {
            return Err(Dropped::OutOfRange);
        }
        let range: Arc<[u8]>;
        let (bytes, base) = match &image {
            Image::Memory(b) => (b, 0),
            Image::File(_) => {
                let read = self.artifacts.read_range(&req.image, start, (end - start) as usize).await;
                range = read.map_err(|_| Dropped::Internal)?.ok_or(Dropped::NoArtifact)?.into();
                (&range, start)
            }
        };
        let mut sent = 0;
        let mut at = start;
        while at < end {
            let stop = (at + chunk).min(end);
            let data = bytes.get((at - base) as usize..(stop - base) as usize).ok_or(Dropped::OutOfRange)?;
            let msg = airlock_proto::codec::encode(&Chunk { image: req.image, offset: at as u32, data });
            self.client.publish(topic.as_str(), QoS::AtLeastOnce, false, msg).await.map_err(|_| Dropped::Publish)?;
            sent += 1;
            at = stop;
        }
        Ok(sent)
    }

    /// The chunk size for `image`: learned from deliveries, else from the signed manifests.
    async fn chunk_size(&self, image: &Digest) -> Result<Option<u32>, Dropped> {
        if let Some(c) = lock(&self.sizes).get(image) {
            return Ok(Some(*c));
        }
        if lock(&self.unknown).get(image).is_some_and(|at| at.elapsed() < UNKNOWN_FOR) {
            return Ok(None);
        }
        let rows = sqlx::query("SELECT manifest FROM revisions WHERE release_sig IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading signed manifests for a chunk size failed");
                Dropped::Internal
            })?;
        for row in rows {
            let Ok(body) = row.try_get::<Vec<u8>, _>("manifest") else { continue };
            if let Ok(m) = airlock_proto::decode::<Manifest<'_>>(&body) {
                if let Action::Firmware(f) = m.action {
                    self.note(f.image_digest, f.chunk_size);
                }
            }
        }
        let found = lock(&self.sizes).get(image).copied();
        if found.is_none() {
            lock(&self.unknown).insert(*image, Instant::now());
        }
        Ok(found)
    }

    /// The image, cached when it fits.
    async fn image(&self, digest: &Digest) -> Result<Option<Image>, Dropped> {
        if let Some(b) = lock(&self.cache).images.get(digest) {
            return Ok(Some(Image::Memory(b.clone())));
        }
        // One load at a time: a wave's first requests all ask for the same image.
        let _loading = self.loading.lock().await;
        if let Some(b) = lock(&self.cache).images.get(digest) {
            return Ok(Some(Image::Memory(b.clone())));
        }
        let Some(size) = self.artifacts.size(digest).await.map_err(|_| Dropped::Internal)? else {
            return Ok(None);
        };
        if size > CACHE_BYTES as u64 {
            return Ok(Some(Image::File(size)));
        }
        let Some(bytes) = self.artifacts.read(digest).await.map_err(|_| Dropped::Internal)? else {
            return Ok(None);
        };
        let bytes: Arc<[u8]> = bytes.into();
        let check = bytes.clone();
        let actual = tokio::task::spawn_blocking(move || <[u8; 32]>::from(Sha256::digest(&check)))
            .await
            .map_err(|_| Dropped::Internal)?;
        if actual != digest.0 {
            tracing::error!(artifact = %digest, "stored artifact does not match its digest: not served");
            return Err(Dropped::Corrupt);
        }
        let mut cache = lock(&self.cache);
        while cache.bytes + bytes.len() > CACHE_BYTES {
            let Some(old) = cache.order.pop_front() else { break };
            if let Some(b) = cache.images.remove(&old) {
                cache.bytes -= b.len();
            }
        }
        cache.bytes += bytes.len();
        cache.order.push_back(*digest);
        cache.images.insert(*digest, bytes.clone());
        Ok(Some(Image::Memory(bytes)))
    }
}
