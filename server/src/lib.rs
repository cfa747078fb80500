//! `linli-server`: the always-on peer of a community's phones.
//!
//! It keeps each space it hosts in a SQLite file of its own under the data
//! directory ([`spaces`]), using the same [`linli_core::store::Store`] (and
//! so the same checks before merge) as a phone. This crate is a thin edge: it parses
//! configuration, owns the HTTP listener, and delegates to the core.
//!
//! Routes:
//! * `POST /v1/sync` — the sync protocol (`linli_core::sync`), body in wire
//!   format v1, authenticated by the `linli-auth` header;
//! * `POST /v1/join` — an invite's bearer fetches the register to redeem it,
//!   then hands in its redemption;
//! * `GET /v1/peer` — this server's identity, which requests are signed for;
//! * `GET /health` — liveness and the number of spaces held;
//! * `GET /metrics` — Prometheus counters.
//!
//! Errors are JSON `{"error": kind, "message": text}` with a 4xx/5xx status.
//! Logs are JSON lines on stderr and never carry names, answers or ballots.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use linli_core::identity::DeviceId;
use linli_core::store::now_ms;
use linli_core::sync::{self, Creators, ServeError};
use serde_json::json;

pub mod spaces;
pub use spaces::{Route, STORE_FILE, Spaces};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_DATA_DIR: &str = "./linli-data";

/// Where to listen, where to keep data, and who may create spaces here.
/// Flags beat environment variables, which beat the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The operator's decision on who may create a space on this server:
    /// nobody unless keys are listed or the server is opened to anyone.
    pub creators: Creators,
    /// How long one request's merge may run before it is stopped, writing
    /// nothing (503).
    pub request_limit: Duration,
}

/// The default [`Config::request_limit`]: the largest request allowed
/// (50,000 changes) merges in a few seconds.
pub const DEFAULT_REQUEST_LIMIT: Duration = Duration::from_secs(20);

impl Config {
    /// A server on `listen` keeping its data in `data_dir`, where nobody may
    /// create a space.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Config {
        Config { listen, data_dir: data_dir.into(), creators: Creators::Nobody, request_limit: DEFAULT_REQUEST_LIMIT }
    }
}

pub const USAGE: &str = "usage: linli-server [--listen ADDR] [--data-dir DIR] [--creator DEVICE]... [--open-spaces]
  --listen ADDR      address to listen on (env LINLI_LISTEN, default 127.0.0.1:8787)
  --data-dir DIR     directory for the SQLite store (env LINLI_DATA_DIR, default ./linli-data)
  --creator DEVICE   a device id (64 hex) that may create spaces here; repeat for more
                     (env LINLI_CREATORS, comma-separated). Without one, nobody may.
  --open-spaces      let any device create spaces (env LINLI_OPEN_SPACES=1): for a test
                     or a private network, not for a server on the internet
  --request-limit-ms N
                     stop a request's merge after N ms, writing nothing (503)
                     (env LINLI_REQUEST_LIMIT_MS, default 20000)";

#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    Help,
    Bad(String),
}

impl Config {
    /// Read the configuration from command-line arguments (without the program
    /// name) and an environment lookup.
    pub fn from_args(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut listen = env("LINLI_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
        let mut data_dir = env("LINLI_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let mut creators: Vec<String> = env("LINLI_CREATORS")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let mut open = env("LINLI_OPEN_SPACES").is_some_and(|v| v == "1" || v == "true");
        let mut limit = env("LINLI_REQUEST_LIMIT_MS");
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| ConfigError::Bad(format!("{flag} needs a value")))
            };
            match flag {
                "--listen" => listen = value()?,
                "--data-dir" => data_dir = value()?,
                "--creator" => creators.push(value()?),
                "--open-spaces" => open = true,
                "--request-limit-ms" => limit = Some(value()?),
                "-h" | "--help" => return Err(ConfigError::Help),
                other => return Err(ConfigError::Bad(format!("unknown argument {other}"))),
            }
        }
        let listen =
            listen.parse().map_err(|_| ConfigError::Bad(format!("--listen: not a socket address: {listen}")))?;
        let creators = if open {
            Creators::Anyone
        } else if creators.is_empty() {
            Creators::Nobody
        } else {
            let keys = creators
                .iter()
                .map(|c| {
                    DeviceId::from_hex(c).map_err(|_| ConfigError::Bad(format!("--creator: not a device id: {c}")))
                })
                .collect::<Result<_, _>>()?;
            Creators::Devices(keys)
        };
        let request_limit = match limit {
            None => DEFAULT_REQUEST_LIMIT,
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError::Bad(format!("--request-limit-ms: not a positive number: {ms}")))?,
        };
        Ok(Config { listen, data_dir: PathBuf::from(data_dir), creators, request_limit })
    }
}

/// One structured log line (JSON) on stderr. Never pass personal data.
pub fn log(level: &str, msg: &str, fields: serde_json::Value) {
    let mut line = json!({ "ts_ms": linli_core::store::now_ms(), "level": level, "msg": msg });
    if let (Some(obj), serde_json::Value::Object(extra)) = (line.as_object_mut(), fields) {
        obj.extend(extra);
    }
    eprintln!("{line}");
}

/// Counters exported at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sync_ok: AtomicU64,
    pub join_ok: AtomicU64,
    pub rejected_4xx: AtomicU64,
    pub failed_5xx: AtomicU64,
    pub changes_accepted: AtomicU64,
    pub changes_refused: AtomicU64,
    pub changes_sent: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Metrics {
    fn render(&self) -> String {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, labels: &str, v: u64| {
            out.push_str(&format!("{name}{labels} {v}\n"));
        };
        counter("linli_requests_total", r#"{route="sync",outcome="ok"}"#, c(&self.sync_ok));
        counter("linli_requests_total", r#"{route="join",outcome="ok"}"#, c(&self.join_ok));
        counter("linli_requests_total", r#"{outcome="client_error"}"#, c(&self.rejected_4xx));
        counter("linli_requests_total", r#"{outcome="server_error"}"#, c(&self.failed_5xx));
        counter("linli_changes_accepted_total", "", c(&self.changes_accepted));
        counter("linli_changes_refused_total", "", c(&self.changes_refused));
        counter("linli_changes_sent_total", "", c(&self.changes_sent));
        counter("linli_bytes_received_total", "", c(&self.bytes_in));
        counter("linli_bytes_sent_total", "", c(&self.bytes_out));
        out
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub spaces: Arc<Spaces>,
    pub metrics: Arc<Metrics>,
    pub creators: Arc<Creators>,
    pub request_limit: Duration,
}

impl AppState {
    pub fn new(spaces: Arc<Spaces>, creators: Creators) -> Self {
        AppState {
            spaces,
            metrics: Arc::new(Metrics::default()),
            creators: Arc::new(creators),
            request_limit: DEFAULT_REQUEST_LIMIT,
        }
    }

    /// The state `config` asks for, over `spaces`.
    pub fn from_config(spaces: Arc<Spaces>, config: &Config) -> Self {
        AppState { request_limit: config.request_limit, ..AppState::new(spaces, config.creators.clone()) }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(sync::SYNC_PATH, post(sync_route))
        .route(sync::JOIN_PATH, post(join_route))
        .route(sync::PEER_PATH, get(peer_route))
        .layer(DefaultBodyLimit::max(sync::MAX_BODY))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Who this server is: the device id requests must be signed for.
async fn peer_route(State(state): State<AppState>) -> String {
    state.spaces.device_id().to_hex()
}

async fn sync_route(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(state, headers, body, Route::Sync).await
}

async fn join_route(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(state, headers, body, Route::Join).await
}

/// Run a core handler off the async threads and turn its outcome into HTTP.
async fn handle(state: AppState, headers: HeaderMap, body: Bytes, which: Route) -> Response {
    let auth = headers.get(sync::auth::HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let spaces = state.spaces.clone();
    let creators = state.creators.clone();
    let len = body.len() as u64;
    let route = if which == Route::Sync { "sync" } else { "join" };
    let limit = state.request_limit;
    let outcome = tokio::task::spawn_blocking(move || {
        linli_core::store::within(limit, || spaces.serve(which, &creators, auth.as_deref(), &body, now_ms()))
    })
    .await;
    let m = &state.metrics;
    m.bytes_in.fetch_add(len, Ordering::Relaxed);
    let result = outcome.unwrap_or_else(|_| Err(ServeError::Internal("handler panicked".into())));
    match result {
        Ok(served) => {
            let counter = if route == "sync" { &m.sync_ok } else { &m.join_ok };
            counter.fetch_add(1, Ordering::Relaxed);
            m.changes_accepted.fetch_add(served.accepted, Ordering::Relaxed);
            m.changes_refused.fetch_add(served.refused, Ordering::Relaxed);
            m.changes_sent.fetch_add(served.sent as u64, Ordering::Relaxed);
            m.bytes_out.fetch_add(served.body.len() as u64, Ordering::Relaxed);
            ([(header::CONTENT_TYPE, "application/octet-stream")], served.body).into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                m.failed_5xx.fetch_add(1, Ordering::Relaxed);
                if let ServeError::Internal(detail) = &e {
                    log("error", "request failed", json!({ "route": route, "detail": detail }));
                }
            } else {
                m.rejected_4xx.fetch_add(1, Ordering::Relaxed);
                log("info", "request refused", json!({ "route": route, "status": e.status(), "kind": e.kind() }));
            }
            (status, [(header::CONTENT_TYPE, "application/json")], e.json()).into_response()
        }
    }
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let spaces = state.spaces.clone();
    let check = tokio::task::spawn_blocking(move || spaces.count()).await;
    match check {
        Ok(Ok(spaces)) => {
            (StatusCode::OK, Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "spaces": spaces })))
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" }))),
    }
}

/// Open the spaces under the data directory. The server acknowledges other
/// devices' changes, so every commit reaches the disk before it replies
/// (`synchronous=FULL`).
pub fn open_spaces(config: &Config) -> Result<Spaces, String> {
    Spaces::open(&config.data_dir)
}

/// Bind, log the bound address, and serve until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let spaces = Arc::new(open_spaces(&config)?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let creators = match &config.creators {
        Creators::Nobody => "nobody".to_string(),
        Creators::Anyone => "anyone".to_string(),
        Creators::Devices(d) => format!("{} devices", d.len()),
    };
    log("info", "listening", json!({ "addr": addr.to_string(), "space_creators": creators }));
    axum::serve(listener, router(AppState::from_config(spaces, &config)))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())?;
    log("info", "stopped", json!({}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_beat_environment_which_beats_defaults() {
        let none = |_: &str| None;
        let c = Config::from_args(&[], none).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let env = |k: &str| match k {
            "LINLI_LISTEN" => Some("127.0.0.1:9000".to_string()),
            "LINLI_DATA_DIR" => Some("/srv/linli".to_string()),
            _ => None,
        };
        let c = Config::from_args(&[], env).expect("env");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.data_dir, PathBuf::from("/srv/linli"));
        let c = Config::from_args(&args(&["--listen", "127.0.0.1:1", "--data-dir=/d"]), env).expect("flags");
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.creators, Creators::Nobody, "nobody creates spaces unless the operator says so");
        let key = "ab".repeat(32);
        let c = Config::from_args(&args(&["--creator", &key]), none).expect("creator");
        assert!(matches!(&c.creators, Creators::Devices(d) if d.len() == 1));
        let c = Config::from_args(&args(&["--open-spaces"]), none).expect("open");
        assert_eq!(c.creators, Creators::Anyone);
        let c =
            Config::from_args(&[], |k: &str| (k == "LINLI_CREATORS").then(|| format!("{key}, {key}"))).expect("env");
        assert!(matches!(&c.creators, Creators::Devices(d) if d.len() == 1));
        assert_eq!(Config::from_args(&[], none).expect("default").request_limit, DEFAULT_REQUEST_LIMIT);
        let c = Config::from_args(&args(&["--request-limit-ms", "250"]), none).expect("limit");
        assert_eq!(c.request_limit, Duration::from_millis(250));
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let none = |_: &str| None;
        assert_eq!(Config::from_args(&args(&["--help"]), none), Err(ConfigError::Help));
        assert!(
            matches!(Config::from_args(&args(&["--listen"]), none), Err(ConfigError::Bad(m)) if m.contains("needs a value"))
        );
        assert!(
            matches!(Config::from_args(&args(&["--listen", "nowhere"]), none), Err(ConfigError::Bad(m)) if m.contains("socket address"))
        );
        assert!(
            matches!(Config::from_args(&args(&["--frobnicate"]), none), Err(ConfigError::Bad(m)) if m.contains("unknown"))
        );
        assert!(
            matches!(Config::from_args(&args(&["--request-limit-ms", "0"]), none), Err(ConfigError::Bad(m)) if m.contains("positive"))
        );
        assert!(
            matches!(Config::from_args(&args(&["--creator", "zz"]), none), Err(ConfigError::Bad(m)) if m.contains("device id"))
        );
    }
}
