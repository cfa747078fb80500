//! Shared harness of the end-to-end tests in `tests/`: a real `linli-server`
//! on loopback (its own router and store, in-process, restartable on the same
//! data directory), phones with real stores in temporary directories, and a
//! transport that loses, repeats and garbles messages on purpose.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use linli_core::store::Store;
use linli_core::sync::http::HttpTransport;
use linli_core::sync::{self, SyncOptions, SyncReport, Transport};

/// A phone: a store in its own temporary directory.
#[derive(Debug)]
pub struct Phone {
    pub store: Arc<Store>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Phone {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

pub fn phone() -> Phone {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path().join("linli.db")).expect("open store"));
    Phone { store, _dir: dir }
}

/// `linli-server`'s router and store on 127.0.0.1, in a thread of its own.
#[derive(Debug)]
pub struct TestServer {
    pub base: String,
    pub spaces: Arc<linli_server::Spaces>,
    data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(data_dir: &Path) -> TestServer {
        let config = linli_server::Config {
            creators: linli_core::sync::Creators::Anyone,
            ..linli_server::Config::new(([127, 0, 0, 1], 0).into(), data_dir)
        };
        let spaces = Arc::new(linli_server::open_spaces(&config).expect("server store"));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = linli_server::router(linli_server::AppState::new(spaces.clone(), config.creators.clone()));
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = addr_rx.recv().expect("server address");
        TestServer {
            base: format!("http://{addr}"),
            spaces,
            data_dir: data_dir.to_path_buf(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The server's store of `space` (each space has a file of its own).
    pub fn store(&self, space: &str) -> Arc<Store> {
        self.spaces.get(space).expect("the server's spaces").expect("the server holds this space")
    }

    /// Who the server is: the device id requests are signed for.
    pub fn device_id(&self) -> linli_core::identity::DeviceId {
        self.spaces.device_id()
    }

    /// Stop and start again on the same data directory (a new port).
    pub fn restart(&mut self) {
        self.shutdown();
        *self = TestServer::start(&self.data_dir.clone());
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

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Quick retries for tests.
pub fn opts() -> SyncOptions {
    SyncOptions { max_rounds: 64, retries: 12, backoff: std::time::Duration::from_millis(2) }
}

pub fn http(base: &str) -> HttpTransport {
    HttpTransport::new(base).expect("transport")
}

/// Sync `phone` with the peer at `base` until both are current.
pub fn sync_with(phone: &Store, space: &str, peer: &str, transport: &dyn Transport) -> SyncReport {
    sync::sync(phone, space, peer, transport, &opts(), &mut |_| {}).expect("sync")
}

/// A transport that follows a base URL that may move (a restarted server).
#[derive(Debug)]
pub struct Movable(pub Mutex<HttpTransport>);

impl Transport for Movable {
    fn post(&self, path: &str, auth: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let t = self.0.lock().map_err(|_| "lock".to_string())?.clone();
        t.post(path, auth, body)
    }

    fn peer(&self) -> Result<linli_core::identity::DeviceId, String> {
        self.0.lock().map_err(|_| "lock".to_string())?.peer()
    }
}

/// A transport that, driven by a seed, loses requests, loses answers after the
/// peer acted on them, garbles answers, and sends requests twice or again
/// later (the repeats must be refused as replays and harm nothing).
/// A request kept back (path, auth, body), and whether its first copy reached the peer.
pub type Held = (String, String, Vec<u8>, bool);

#[allow(missing_debug_implementations)]
pub struct Faulty<'a> {
    pub inner: &'a (dyn Transport + Sync),
    pub rng: Mutex<u64>,
    pub held: Mutex<Option<Held>>,
    pub faults: Mutex<[u32; 6]>,
}

impl<'a> Faulty<'a> {
    pub fn new(inner: &'a (dyn Transport + Sync), seed: u64) -> Self {
        Faulty { inner, rng: Mutex::new(seed | 1), held: Mutex::new(None), faults: Mutex::new([0; 6]) }
    }

    fn roll(&self) -> u64 {
        let mut r = self.rng.lock().expect("rng");
        *r ^= *r << 13;
        *r ^= *r >> 7;
        *r ^= *r << 17;
        *r % 100
    }

    fn count(&self, i: usize) {
        self.faults.lock().expect("faults")[i] += 1;
    }
}

impl Transport for Faulty<'_> {
    fn peer(&self) -> Result<linli_core::identity::DeviceId, String> {
        self.inner.peer()
    }

    fn is_hub(&self) -> bool {
        self.inner.is_hub()
    }

    fn post(&self, path: &str, auth: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        // A request held back earlier arrives now, out of order: a replay.
        if self.roll() < 10 {
            let held = self.held.lock().expect("held").take();
            if let Some((p, a, b, delivered)) = held {
                self.count(5);
                let (status, _) = self.inner.post(&p, &a, &b)?;
                if delivered {
                    assert_eq!(status, 409, "a request delivered twice is refused as a replay");
                } else {
                    // Its first copy never arrived: this late copy is served, harmlessly.
                    assert!(status == 200 || status == 409, "a late request is served or refused cleanly: {status}");
                }
            }
        }
        match self.roll() {
            0..=7 => {
                self.count(0);
                Err("request lost".into())
            }
            8..=15 => {
                self.count(1);
                let _ = self.inner.post(path, auth, body)?;
                Err("answer lost".into())
            }
            16..=21 => {
                self.count(2);
                let (status, mut bytes) = self.inner.post(path, auth, body)?;
                let keep = bytes.len() / 2;
                bytes.truncate(keep);
                Ok((status, bytes))
            }
            22..=27 => {
                self.count(3);
                let first = self.inner.post(path, auth, body)?;
                let (status, _) = self.inner.post(path, auth, body)?;
                assert_eq!(status, 409, "a duplicated request is refused as a replay");
                Ok(first)
            }
            28..=33 => {
                self.count(4);
                let result = self.inner.post(path, auth, body);
                let delivered = matches!(result, Ok((200, _)));
                *self.held.lock().expect("held") = Some((path.to_string(), auth.to_string(), body.to_vec(), delivered));
                result
            }
            _ => self.inner.post(path, auth, body),
        }
    }
}
