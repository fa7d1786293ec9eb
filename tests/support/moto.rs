//! The local AWS emulator for tests: moto server, pinned, installed into a
//! virtualenv by `scripts/moto.sh` and started on 127.0.0.1 on a free port,
//! once per test binary. It stops by itself when the test process exits.
//!
//! `moto_server.py` beside this file fills nine gaps where moto 5.2.5
//! differs from AWS (see its docstring); AWS's managed IAM policies are loaded.
//!
//! Without python3 and the package registry this fails loudly, saying how to
//! get moto; a test that needs the emulator never passes by skipping.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[allow(dead_code)]
pub struct Moto {
    pub endpoint: String,
    pub venv: PathBuf,
}

impl Moto {
    #[allow(dead_code)]
    /// fastcart's AWS clients pointed at this emulator (eu-central-1, dummy
    /// credentials), configured as the CLI configures them otherwise.
    pub async fn clients(&self) -> std::sync::Arc<fastcart_drivers::Clients> {
        self.clients_in("eu-central-1").await
    }

    /// The same, in `region`.
    pub async fn clients_in(&self, region: &str) -> std::sync::Arc<fastcart_drivers::Clients> {
        std::sync::Arc::new(fastcart_drivers::Clients::from_config(
            &self.config_in(region).await,
        ))
    }

    #[allow(dead_code)]
    /// A bucket `name` in eu-central-1, as a user would have made it for
    /// the S3 state backend, and an S3 client (path-style) to look inside.
    pub async fn bucket(&self, name: &str) -> (aws_config::SdkConfig, aws_sdk_s3::Client) {
        let config = self.config_in("eu-central-1").await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuCentral1)
                    .build(),
            )
            .send()
            .await
            .expect("a bucket on the emulator");
        (config, s3)
    }

    #[allow(dead_code)]
    /// The SDK configuration those clients are made from.
    pub async fn config_in(&self, region: &str) -> aws_config::SdkConfig {
        fastcart_drivers::Clients::loader(region)
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await
    }
}

fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("scripts/moto.sh").exists() {
        assert!(
            dir.pop(),
            "cannot find scripts/moto.sh above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// The virtualenv holding moto server and cfn-lint, installed if needed.
pub fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = workspace_root().join("scripts/moto.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "could not install moto server: `bash {}` failed ({}). It needs python3 with venv \
             and access to the Python package index; install by hand with \
             `python3 -m venv V && V/bin/pip install 'moto[server]==5.2.5' cfn-lint==1.58.0` \
             and set FASTCART_MOTO_VENV=V",
            script.display(),
            out.status
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// The shared emulator of this test binary, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn start() -> Moto {
    let venv = venv();
    let python = venv.join("bin/python");
    let port = free_port();
    let log = std::env::temp_dir().join(format!("fastcart-moto-{port}.log"));
    // A watchdog shell owns the server and ends it when this test process
    // (its parent) is gone, so no emulator outlives the tests.
    let script = format!(
        "MOTO_IAM_LOAD_MANAGED_POLICIES=true '{py}' '{server}' -H 127.0.0.1 -p {port} >'{log}' 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
        py = python.display(),
        server = workspace_root().join("tests/support/moto_server.py").display(),
        log = log.display(),
        parent = std::process::id(),
    );
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto server");
    // Reap the watchdog when it ends, so it never lingers as a zombie.
    std::thread::spawn(move || watchdog.wait());
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                venv,
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "moto server did not start on 127.0.0.1:{port} within 90 s; its log:\n{}",
        read(&log)
    );
}

fn read(path: &Path) -> String {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    s
}
