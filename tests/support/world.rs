//! A test's world for the `fastcart` binary: a working directory of its
//! own, an environment suffix of its own, the emulator's address, and the
//! stack and region the binary works on. Shared by the end-to-end tests of
//! both stacks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Arc;

use fastcart_drivers::Clients;
use fastcart_engine::{Ownership, Registry, StackSpec};
use fastcart_stacks::StackOptions;
use serde_json::Value;

use crate::moto;

pub const REGION: &str = "eu-central-1";

/// A working directory and the emulator's address.
pub struct World {
    pub dir: tempfile::TempDir,
    pub env: String,
    pub endpoint: String,
    /// The stack the binary works on (`--stack`).
    pub stack: &'static str,
    /// The region it is given through `AWS_REGION`; `None` leaves it to the
    /// stack's home region.
    pub region: Option<&'static str>,
    /// A shared state backend, given through `FASTCART_BACKEND`.
    pub backend: Option<String>,
}

impl World {
    /// A world for the order stack in eu-central-1.
    pub fn new(env: &str) -> World {
        World {
            dir: tempfile::tempdir().expect("temp dir"),
            env: env.into(),
            endpoint: moto::moto().endpoint.clone(),
            stack: "fastcart",
            region: Some(REGION),
            backend: None,
        }
    }

    /// A world for `stack` in its home region.
    pub fn of(stack: &'static str, env: &str) -> World {
        World {
            stack,
            region: None,
            ..World::new(env)
        }
    }

    /// The region the stack is applied in.
    pub fn region(&self) -> &str {
        self.region
            .unwrap_or_else(|| fastcart_stacks::home_region(self.stack))
    }

    /// A world whose fastcart talks to AWS through `endpoint` (a fault
    /// proxy in front of the emulator); checks still go straight to it.
    pub fn behind(env: &str, endpoint: &str) -> World {
        World {
            endpoint: endpoint.into(),
            ..World::new(env)
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fastcart"));
        c.args(args)
            .args(["--env", &self.env])
            .current_dir(self.dir.path())
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_REGION")
            .env_remove("AWS_PROFILE")
            .env_remove("ENVIRONMENT_SUFFIX")
            .env_remove("FASTCART_BACKEND")
            .stdin(Stdio::null());
        if let Some(b) = &self.backend {
            c.env("FASTCART_BACKEND", b);
        }
        if self.stack != "fastcart" {
            c.args(["--stack", self.stack]);
        }
        if let Some(r) = self.region {
            c.env("AWS_REGION", r);
        }
        c
    }

    /// Starts the binary (standard error dropped) and reads its standard
    /// output until a line `until` accepts (it may count lines). Returns the
    /// running child, the rest of its output, and whether such a line came.
    pub fn spawn_until(
        &self,
        args: &[&str],
        mut until: impl FnMut(&str) -> bool,
    ) -> (Child, Lines<BufReader<ChildStdout>>, bool) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fastcart");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let seen = lines.by_ref().map_while(Result::ok).any(|l| until(&l));
        (child, lines, seen)
    }

    /// Runs the binary; returns its exit code and what it printed.
    pub fn fastcart(&self, args: &[&str]) -> (i32, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().expect("run fastcart");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        (status.code().unwrap_or(-1), text)
    }

    /// Runs the binary and insists on an exit code.
    pub fn expect(&self, code: i32, args: &[&str]) -> String {
        let (got, text) = self.fastcart(args);
        assert_eq!(
            got,
            code,
            "`fastcart {}` exited {got}:\n{text}",
            args.join(" ")
        );
        text
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub async fn clients(&self) -> Arc<Clients> {
        moto::moto().clients_in(self.region()).await
    }

    /// The stack of this world's environment.
    pub fn stack(&self) -> StackSpec {
        fastcart_stacks::stack(
            self.stack,
            &StackOptions {
                env: self.env.clone(),
                region: self.region().to_string(),
                ..Default::default()
            },
        )
        .expect("the stack exists")
    }

    /// Every resource carrying this stack's ownership tags, per type and
    /// logical id, as the drivers find them through AWS.
    pub async fn owned(&self, c: &Arc<Clients>) -> BTreeMap<(String, String), Vec<String>> {
        let registry: Registry = fastcart_drivers::registry(c);
        let owner = Ownership {
            stack: self.stack.into(),
            env: self.env.clone(),
        };
        // Each driver's own search (not the batch one fastcart uses), then
        // a read to drop what is being deleted (a KMS key waiting out its
        // window keeps its tags), as fastcart itself decides.
        let mut tagged = Vec::new();
        for t in registry.type_names() {
            for f in registry.get(t).unwrap().find_by_tags(&owner).await.unwrap() {
                tagged.push((t.to_string(), f));
            }
        }
        let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (t, f) in fastcart_engine::refresh::still_there(&registry, tagged)
            .await
            .unwrap()
        {
            found
                .entry((t, f.logical_id))
                .or_default()
                .push(f.physical_id);
        }
        found
    }

    /// Logical ids the stack's ownership tags mark on more than one object.
    pub async fn twins(&self, c: &Arc<Clients>) -> BTreeMap<(String, String), Vec<String>> {
        let mut found = self.owned(c).await;
        found.retain(|_, ids| ids.len() > 1);
        found
    }

    /// A world for the order stack whose state is in `bucket` (made here,
    /// as the team would have made it) under `states/`, and an S3 client to
    /// look inside.
    pub async fn in_s3(env: &str, bucket: &str) -> (World, aws_sdk_s3::Client) {
        let (_, s3) = moto::moto().bucket(bucket).await;
        let w = World {
            backend: Some(format!("s3://{bucket}/states")),
            ..World::new(env)
        };
        (w, s3)
    }

    pub fn state(&self) -> Value {
        let p = self.path(&format!(".fastcart/{}-{}/state.json", self.stack, self.env));
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }
}

/// A diagnostic as one line of words, without the line breaks and gutters
/// miette lays it out with (Unicode on a terminal, ASCII in CI).
pub fn flat(printed: &str) -> String {
    printed
        .split_whitespace()
        .filter(|w| *w != "│" && *w != "|")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Destroys the stack (up to three tries, as a person would) and checks
/// that nothing carrying its ownership tags is left.
pub async fn destroy_leaves_nothing(w: &World) {
    let c = w.clients().await;
    let mut last = String::new();
    for _ in 0..3 {
        let (code, text) = w.fastcart(&["destroy", "--auto-approve"]);
        if code == 0 {
            let left = w.owned(&c).await;
            assert!(left.is_empty(), "left after destroy: {left:#?}");
            return;
        }
        last = text;
    }
    panic!("destroy did not succeed in three tries:\n{last}");
}
