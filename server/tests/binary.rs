//! The server binary as the README runs it, and the server in-process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[test]
fn the_server_binary_starts_on_loopback_and_answers_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_linli-server");
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn linli-server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("a log line").expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("structured log line");
        if v["msg"] == "listening" {
            break v["addr"].as_str().expect("addr").to_string();
        }
    };
    let (status, body) = get(&addr, "/health");
    child.kill().expect("stop");
    let _ = child.wait();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["spaces"], 0);
    assert!(dir.path().join("data").join(linli_server::STORE_FILE).exists(), "the store lives in the data directory");
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_linli-server")).args(["--listen", "not-an-address"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket address"));
}
