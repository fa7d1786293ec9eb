//! A flaky network for tests: `fault_proxy.py` beside this file, started in
//! front of the emulator on 127.0.0.1, losing a seeded fraction of AWS's
//! answers (half before the request reaches the emulator, half after it took
//! effect). It stops by itself when the test process exits.

// Shared by test binaries that each use a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct FaultProxy {
    pub endpoint: String,
    pub log: std::path::PathBuf,
    child: Child,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` with the moto virtualenv's
    /// python (the proxy needs only the standard library).
    pub fn start(venv: &Path, upstream: &str, loss: f64, seed: u64) -> FaultProxy {
        Self::start_losing(venv, upstream, loss, seed, "both")
    }

    /// As [`FaultProxy::start`], losing answers only `when` ("before" the
    /// request reaches the emulator, "after" it took effect, or "both").
    pub fn start_losing(
        venv: &Path,
        upstream: &str,
        loss: f64,
        seed: u64,
        when: &str,
    ) -> FaultProxy {
        let mut root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        while !root.join("tests/support/fault_proxy.py").exists() {
            assert!(root.pop(), "cannot find tests/support/fault_proxy.py");
        }
        let script = root.join("tests/support/fault_proxy.py");
        let log = std::env::temp_dir().join(format!(
            "fastcart-fault-proxy-{}-{seed}-{when}.log",
            std::process::id()
        ));
        let mut child = Command::new(venv.join("bin/python"))
            .arg(&script)
            .args(["--upstream", upstream, "--port", "0"])
            .args(["--loss", &loss.to_string(), "--seed", &seed.to_string()])
            .args(["--when", when])
            .arg("--log")
            .arg(&log)
            .args(["--parent-pid", &std::process::id().to_string()])
            .args(["--max-seconds", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut first)
            .expect("the proxy prints where it listens");
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the fault proxy did not start: {first:?}"))
            .to_string();
        FaultProxy {
            endpoint: format!("http://{addr}"),
            log,
            child,
        }
    }

    fn call(&self, method: &str, path: &str, body: &str) -> String {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect to the fault proxy");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// Changes the fraction of answers lost from now on.
    pub fn set_loss(&self, loss: f64) {
        self.call("POST", "/fault-proxy/loss", &loss.to_string());
    }

    /// The proxy's counts: requests, lost_before, lost_after, forwarded, ...
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.call("GET", "/fault-proxy/stats", ""))
            .expect("the fault proxy answers its stats as JSON")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
