//! A meeting hub: the same protocol served from a phone, so a coordinator's
//! phone can stand in for the server where the room has no internet. A small
//! blocking HTTP/1.1 listener (one thread per connection, bodies by
//! `Content-Length`, `Connection: close`); it decides nothing itself and
//! hands every request to [`serve_sync`](super::serve_sync) /
//! [`serve_join`](super::serve_join), exactly as `linli-server` does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{JOIN_PATH, MAX_BODY, SYNC_PATH, ServeError, auth};
use crate::error::{Error, Result};
use crate::store::{Store, now_ms};

const MAX_HEAD: usize = 16 * 1024;

/// A running hub. Dropping it (or [`Hub::stop`]) stops it.
#[derive(Debug)]
pub struct Hub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Listen on `listen` (e.g. `0.0.0.0:8788`, or `127.0.0.1:0` for any port).
    pub fn start(store: Arc<Store>, listen: &str) -> Result<Hub> {
        // The hub acknowledges other phones' changes: durable before it replies.
        store.set_durable()?;
        let listener =
            TcpListener::bind(listen).map_err(|e| Error::Invalid(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("linli-hub".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let store = store.clone();
                    let _ = std::thread::Builder::new().name("linli-hub-conn".into()).spawn(move || {
                        let _ = handle(stream, &store);
                    });
                }
            })
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Hub { addr, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
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

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        _ => "Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn handle(mut stream: TcpStream, store: &Store) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = Vec::new();
    let mut line = String::new();
    let (mut method, mut path, mut length, mut auth_header) = (String::new(), String::new(), 0usize, None);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        head.extend_from_slice(line.as_bytes());
        if head.len() > MAX_HEAD {
            let e = ServeError::BadRequest("headers too large".into());
            return respond(&mut stream, e.status(), "application/json", e.json().as_bytes());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if method.is_empty() {
            let mut parts = l.split_whitespace();
            method = parts.next().unwrap_or_default().to_string();
            path = parts.next().unwrap_or_default().to_string();
        } else if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(usize::MAX),
                h if h == auth::HEADER => auth_header = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    if length > MAX_BODY {
        let e = ServeError::TooLarge;
        return respond(&mut stream, e.status(), "application/json", e.json().as_bytes());
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let result = match (method.as_str(), path.as_str()) {
        ("POST", SYNC_PATH) => {
            super::serve_sync(store, &super::Creators::Nobody, auth_header.as_deref(), &body, now_ms())
        }
        ("POST", JOIN_PATH) => super::serve_join(store, auth_header.as_deref(), &body, now_ms()),
        ("GET", "/health") => return respond(&mut stream, 200, "application/json", br#"{"status":"ok","role":"hub"}"#),
        _ => Err(ServeError::NotFound("route".into())),
    };
    match result {
        Ok(served) => respond(&mut stream, 200, "application/octet-stream", &served.body),
        Err(e) => respond(&mut stream, e.status(), "application/json", e.json().as_bytes()),
    }
}
