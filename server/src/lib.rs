//! `linli-server`: the always-on peer of a community's phones.
//!
//! It keeps every document of the spaces it hosts in one SQLite file under
//! the data directory, using the same [`linli_core::store::Store`] (and so the
//! same checks before merge) as a phone. This crate is a thin edge: it parses
//! configuration, owns the HTTP listener, and delegates to the core.
//!
//! Routes so far: `GET /health`. Sync (`POST /v1/sync`) arrives with the sync
//! protocol.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use linli_core::store::Store;
use serde_json::json;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_DATA_DIR: &str = "./linli-data";
pub const STORE_FILE: &str = "linli-server.db";

/// Where to listen and where to keep data. Flags beat environment variables,
/// which beat the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

pub const USAGE: &str = "usage: linli-server [--listen ADDR] [--data-dir DIR]
  --listen ADDR    address to listen on (env LINLI_LISTEN, default 127.0.0.1:8787)
  --data-dir DIR   directory for the SQLite store (env LINLI_DATA_DIR, default ./linli-data)";

#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    Help,
    Bad(String),
}

impl Config {
    /// Read the configuration from command-line arguments (without the program
    /// name) and an environment lookup.
    pub fn from_args(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut listen = env("LINLI_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
        let mut data_dir = env("LINLI_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.into());
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
                "-h" | "--help" => return Err(ConfigError::Help),
                other => return Err(ConfigError::Bad(format!("unknown argument {other}"))),
            }
        }
        let listen = listen
            .parse()
            .map_err(|_| ConfigError::Bad(format!("--listen: not a socket address: {listen}")))?;
        Ok(Config {
            listen,
            data_dir: PathBuf::from(data_dir),
        })
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

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<Store>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store = state.store.clone();
    let check = tokio::task::spawn_blocking(move || store.spaces().map(|s| s.len())).await;
    match check {
        Ok(Ok(spaces)) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "spaces": spaces })),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable" })),
        ),
    }
}

/// Open the store under the data directory.
pub fn open_store(config: &Config) -> Result<Store, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create the data directory: {e}"))?;
    Store::open(config.data_dir.join(STORE_FILE)).map_err(|e| format!("cannot open the store: {e}"))
}

/// Bind, log the bound address, and serve until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let store = Arc::new(open_store(&config)?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    log("info", "listening", json!({ "addr": addr.to_string() }));
    axum::serve(listener, router(AppState { store }))
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
        let c = Config::from_args(&args(&["--listen", "127.0.0.1:1", "--data-dir=/d"]), env)
            .expect("flags");
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.data_dir, PathBuf::from("/d"));
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let none = |_: &str| None;
        assert_eq!(
            Config::from_args(&args(&["--help"]), none),
            Err(ConfigError::Help)
        );
        assert!(
            matches!(Config::from_args(&args(&["--listen"]), none), Err(ConfigError::Bad(m)) if m.contains("needs a value"))
        );
        assert!(
            matches!(Config::from_args(&args(&["--listen", "nowhere"]), none), Err(ConfigError::Bad(m)) if m.contains("socket address"))
        );
        assert!(
            matches!(Config::from_args(&args(&["--frobnicate"]), none), Err(ConfigError::Bad(m)) if m.contains("unknown"))
        );
    }
}
