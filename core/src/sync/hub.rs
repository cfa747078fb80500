//! A meeting hub: the same protocol served from a phone, so a coordinator's
//! phone can stand in for the server where the room has no internet. It
//! decides nothing itself: every request goes to
//! [`serve_sync`](super::serve_sync) / [`serve_join`](super::serve_join),
//! exactly as `linli-server` does.
//!
//! Everyone on the room's Wi-Fi can reach the hub, so it owes a stranger
//! nothing (design decision 8):
//!
//! * **TLS 1.3 with a key made at start.** [`Hub::start`] makes a fresh
//!   self-signed certificate (ECDSA P-256, rcgen with ring) and serves TLS
//!   1.3 only (rustls, ring provider). [`Hub::link`] / [`Hub::link_for`] give
//!   the [`HubLink`] that carries the certificate's SHA-256; a phone that
//!   scans it connects to that certificate and no other (see
//!   [`HttpTransport`](super::http::HttpTransport)). Plain HTTP gets no
//!   answer it can read.
//! * **HTTP/1.1 by hyper**, on a current-thread tokio runtime owned by the
//!   hub; the store's work runs on at most [`BLOCKING_THREADS`] blocking
//!   threads.
//! * **Bounded work before anyone is known.** At most
//!   [`Limits::max_connections`] connections are open. When a new one arrives
//!   and all are taken, the oldest connection that is not being served (in
//!   its TLS handshake, reading a head or a body, or idle between requests)
//!   is closed to make room; when every connection is being served the
//!   newcomer is closed at once. So connections that send nothing cannot
//!   lock out an honest phone. A head is at most [`MAX_HEAD`] bytes and
//!   [`MAX_HEADERS`] headers (431 beyond), and must arrive within
//!   [`Limits::head_timeout`]; the TLS handshake within
//!   [`Limits::handshake_timeout`]; the whole request, body included, within
//!   [`Limits::request_timeout`] (408). A declared `Content-Length` above
//!   [`MAX_BODY`] gets 413 before any body is read; a chunked body is read
//!   with a running cap (413 as soon as it passes it). Nothing is allocated
//!   before it has arrived, and bodies being read hold at most
//!   [`BODY_BUDGET`] bytes together (a request that cannot get its share
//!   within its time gets 408). A connection lives at most
//!   [`Limits::connection_lifetime`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::link::HubLink;
use super::{Creators, JOIN_PATH, MAX_BODY, SYNC_PATH, ServeError, Served, auth};
use crate::error::{Error, Result};
use crate::store::{Store, now_ms};

/// The largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 32;
/// Bytes of request bodies held at once, all connections together.
pub const BODY_BUDGET: usize = 3 * MAX_BODY;
/// Threads that run the store's work (`serve_sync` / `serve_join`).
pub const BLOCKING_THREADS: usize = 2;
/// hyper's read buffer per connection.
const READ_BUFFER: usize = 64 * 1024;

/// The hub's bounds; [`Limits::default`] is what [`Hub::start`] uses.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub head_timeout: Duration,
    pub request_timeout: Duration,
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            handshake_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            connection_lifetime: Duration::from_secs(600),
        }
    }
}

/// A running hub. Dropping it (or [`Hub::stop`]) stops it.
#[derive(Debug)]
pub struct Hub {
    addr: SocketAddr,
    fingerprint: [u8; 32],
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Listen on `listen` (e.g. `0.0.0.0:8788`, or `127.0.0.1:0` for any port).
    pub fn start(store: Arc<Store>, listen: &str) -> Result<Hub> {
        Hub::start_with(store, listen, Limits::default())
    }

    /// [`Hub::start`] with other bounds (tests use short timeouts).
    pub fn start_with(store: Arc<Store>, listen: &str, limits: Limits) -> Result<Hub> {
        // The hub acknowledges other phones' changes: durable before it replies.
        store.set_durable()?;
        let (tls, fingerprint) = tls_config()?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::Invalid(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        listener.set_nonblocking(true).map_err(|e| Error::Internal(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("linli-hub-work")
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("linli-hub".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let shared = Shared::new(store, tls, limits);
                            tokio::select! {
                                _ = accept_loop(listener, shared) => {}
                                _ = stopped => {}
                            }
                        }
                        Err(_) => {
                            let _ = stopped.await;
                        }
                    }
                });
                // Connections are dropped (closed); work already handed to the
                // store finishes on its own.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Hub { addr, fingerprint, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 of the certificate's DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The link to show as a QR code, with the listen address as host. When
    /// listening on `0.0.0.0` or `::`, use [`Hub::link_for`] with the address
    /// phones reach this one at.
    pub fn link(&self) -> String {
        HubLink { host: self.addr.ip().to_string(), port: self.addr.port(), fingerprint: self.fingerprint }.to_string()
    }

    /// The link with `host` (an IP address or host name) in place of the listen address.
    pub fn link_for(&self, host: &str) -> Result<String> {
        Ok(HubLink::new(host, self.addr.port(), self.fingerprint)?.to_string())
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A fresh certificate and key, and the TLS 1.3 server configuration that uses them.
fn tls_config() -> Result<(Arc<rustls::ServerConfig>, [u8; 32])> {
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("hub certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(|e| internal(&e))?;
    let params = rcgen::CertificateParams::new(vec!["linli-hub".to_string()]).map_err(|e| internal(&e))?;
    let cert = params.self_signed(&key).map_err(|e| internal(&e))?;
    let der = cert.der().clone();
    let fingerprint: [u8; 32] = Sha256::digest(der.as_ref()).into();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| internal(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)
        .map_err(|e| internal(&e))?;
    Ok((Arc::new(config), fingerprint))
}

/// What every connection shares.
struct Shared {
    store: Arc<Store>,
    tls: TlsAcceptor,
    limits: Limits,
    slots: Mutex<Slots>,
    body_budget: Arc<Semaphore>,
}

impl Shared {
    fn new(store: Arc<Store>, tls: Arc<rustls::ServerConfig>, limits: Limits) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            tls: TlsAcceptor::from(tls),
            limits,
            slots: Mutex::new(Slots::default()),
            body_budget: Arc::new(Semaphore::new(BODY_BUDGET)),
        })
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Slots {
    next: u64,
    open: BTreeMap<u64, Slot>,
}

struct Slot {
    /// Requests of this connection being served (body read, answer not yet sent).
    serving: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

impl Slots {
    /// Make room for a new connection, closing the oldest one not being
    /// served if all are taken; `None` when every connection is being served.
    fn admit(&mut self, max: usize) -> Option<(u64, Arc<AtomicUsize>, Arc<Notify>)> {
        if self.open.len() >= max {
            let victim = self.open.iter().find(|(_, s)| s.serving.load(Ordering::SeqCst) == 0).map(|(id, _)| *id)?;
            if let Some(slot) = self.open.remove(&victim) {
                slot.evict.notify_one();
            }
        }
        let id = self.next;
        self.next += 1;
        let slot = Slot { serving: Arc::new(AtomicUsize::new(0)), evict: Arc::new(Notify::new()) };
        let handles = (id, slot.serving.clone(), slot.evict.clone());
        self.open.insert(id, slot);
        Some(handles)
    }
}

/// Frees a connection's slot when its task ends, however it ends.
struct SlotGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.shared.slots.lock() {
            slots.open.remove(&self.id);
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            // Out of descriptors or a connection reset before accept: let it pass.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let admitted = match shared.slots.lock() {
            Ok(mut slots) => slots.admit(shared.limits.max_connections),
            Err(_) => None,
        };
        // Every connection is being served: close this one at once.
        let Some((id, serving, evict)) = admitted else { continue };
        let guard = SlotGuard { shared: shared.clone(), id };
        tokio::spawn(async move {
            let shared = guard.shared.clone();
            let lifetime = shared.limits.connection_lifetime;
            tokio::select! {
                _ = tokio::time::timeout(lifetime, connection(tcp, &shared, serving)) => {}
                _ = evict.notified() => {}
            }
            drop(guard);
        });
    }
}

async fn connection(tcp: tokio::net::TcpStream, shared: &Arc<Shared>, serving: Arc<AtomicUsize>) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(shared.limits.handshake_timeout, shared.tls.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let (shared, serving) = (shared.clone(), serving.clone());
            async move { Ok::<_, Infallible>(handle(req, &shared, serving).await) }
        })
    };
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.head_timeout)
        .max_buf_size(READ_BUFFER)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// A response body that marks its connection as served until it has been
/// sent (or dropped).
struct Answer {
    inner: Full<Bytes>,
    _serving: Option<Serving>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct Serving(Arc<AtomicUsize>);

impl Serving {
    fn start(counter: Arc<AtomicUsize>) -> Serving {
        counter.fetch_add(1, Ordering::SeqCst);
        Serving(counter)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn answer(status: u16, content_type: &str, body: Vec<u8>, serving: Option<Serving>) -> Response<Answer> {
    let mut resp = Response::new(Answer { inner: Full::new(Bytes::from(body)), _serving: serving });
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn refusal(e: &ServeError) -> Response<Answer> {
    answer(e.status(), "application/json", e.json().into_bytes(), None)
}

/// A refusal of the hub's own (a timeout, no room), in the same JSON shape as [`ServeError::json`].
fn hub_refusal(status: u16, kind: &str, message: &str) -> Response<Answer> {
    let body = serde_json::json!({ "error": kind, "message": message }).to_string();
    answer(status, "application/json", body.into_bytes(), None)
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Broken,
    Busy,
}

/// Read a body with a running cap, taking its bytes from the shared budget
/// as they arrive.
async fn read_body(
    body: &mut Incoming,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), BodyError> {
    let mut buf = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        let n = u32::try_from(data.len()).map_err(|_| BodyError::TooLarge)?;
        let permit = budget.clone().acquire_many_owned(n).await.map_err(|_| BodyError::Busy)?;
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf, held))
}

/// `serve_sync` or `serve_join`.
type Route = fn(&Store, Option<&str>, &[u8], i64) -> std::result::Result<Served, ServeError>;

async fn handle(req: Request<Incoming>, shared: &Arc<Shared>, serving: Arc<AtomicUsize>) -> Response<Answer> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let route: Route = match (&method, path.as_str()) {
        // A hub hosts its coordinator's spaces only: it creates none.
        (&Method::POST, SYNC_PATH) => {
            |store, header, body, now| super::serve_sync(store, &Creators::Nobody, header, body, now)
        }
        (&Method::POST, JOIN_PATH) => super::serve_join,
        (&Method::GET, super::PEER_PATH) => {
            return answer(200, "text/plain", shared.store.device_id().to_hex().into_bytes(), None);
        }
        (&Method::GET, "/health") => {
            return answer(200, "application/json", br#"{"status":"ok","role":"hub"}"#.to_vec(), None);
        }
        _ => return refusal(&ServeError::NotFound("route".into())),
    };
    // Before a byte of the body: a declared length above the bound.
    if req.body().size_hint().lower() > MAX_BODY as u64 {
        return refusal(&ServeError::TooLarge);
    }
    let header = req.headers().get(auth::HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = req.into_body();
    let read = tokio::time::timeout(shared.limits.request_timeout, read_body(&mut body, &shared.body_budget)).await;
    let (bytes, permit) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(BodyError::TooLarge)) => return refusal(&ServeError::TooLarge),
        Ok(Err(BodyError::Broken)) => return refusal(&ServeError::BadRequest("the body did not arrive whole".into())),
        Ok(Err(BodyError::Busy)) | Err(_) => {
            return hub_refusal(408, "timeout", "the request did not arrive in time");
        }
    };
    let mark = Serving::start(serving);
    let store = shared.store.clone();
    let limit = shared.limits.request_timeout;
    let served = tokio::task::spawn_blocking(move || {
        // The same time limit for the merge as for the body: past it, the
        // merge stops and writes nothing (503).
        let r = crate::store::within(limit, || route(&store, header.as_deref(), &bytes, now_ms()));
        drop(permit);
        r
    })
    .await;
    match served {
        Ok(Ok(served)) => answer(200, "application/octet-stream", served.body, Some(mark)),
        Ok(Err(e)) => refusal(&e),
        // A panic inside a request: the store's transaction rolled back.
        Err(_) => refusal(&ServeError::Internal("request panicked".into())),
    }
}
