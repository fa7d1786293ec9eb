//! The CLI: its help, its exit codes, and its commands run in-process over a
//! provider backed by the engine's fake cloud. End-to-end tests against the
//! AWS emulator are in e2e.rs.

use std::process::Command;

use clap::Parser;
use fastcart::cli::Cli;
use fastcart::demo::Demo;
use fastcart::run::{run, CHANGES, FAILED, OK};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastcart"))
}

#[test]
fn every_command_has_real_help() {
    for (cmd, expect) in [
        (vec![], "drift-check"),
        (vec!["plan"], "--detailed-exitcode"),
        (vec!["apply"], "--auto-approve"),
        (vec!["destroy"], "--auto-approve"),
        (vec!["drift-check"], "--report"),
        (vec!["outputs"], "--json"),
        (vec!["graph"], "mermaid"),
        (vec!["state"], "show"),
        (vec!["state", "show"], "LOGICAL_ID"),
        (vec!["schema"], "--json"),
    ] {
        let out = bin().args(&cmd).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd:?} --help failed");
        assert!(
            text.contains(expect),
            "{cmd:?} --help lacks {expect}: {text}"
        );
    }
}

#[test]
fn errors_exit_1_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["plan", "--stack", "nope", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no stack named nope"), "{err}");
    assert!(err.contains("known stacks: fastcart"), "{err}");

    // No AWS to reach: the message says what to check.
    let out = bin()
        .args(["plan", "--state-dir"])
        .arg(dir.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot look up the account"), "{err}");
    assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");

    let out = bin()
        .args(["drift-check", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no state for fastcart-dev"), "{err}");
    assert!(err.contains("run `fastcart apply` first"), "{err}");
}

async fn fastcart(p: &Demo, dir: &std::path::Path, args: &[&str]) -> miette::Result<u8> {
    let mut argv = vec!["fastcart", "--stack", "shop", "--env", "t1"];
    argv.extend_from_slice(args);
    let d = dir.to_str().unwrap().to_string();
    let out = format!("{d}/outputs");
    argv.extend_from_slice(&["--state-dir", &d, "--outputs-dir", &out]);
    run(Cli::try_parse_from(argv).unwrap(), p, false).await
}

/// `drift-check --report`: its exit code and the Markdown report.
async fn drift_report(p: &Demo, d: &std::path::Path) -> (u8, String) {
    let report = d.join("drift.md");
    let code = fastcart(p, d, &["drift-check", "--report", report.to_str().unwrap()])
        .await
        .unwrap();
    (code, std::fs::read_to_string(&report).unwrap())
}

#[tokio::test]
async fn plan_apply_drift_and_destroy_through_the_cli() {
    let p = Demo::new(0.0);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        fastcart(&p, d, &["plan", "--detailed-exitcode"])
            .await
            .unwrap(),
        CHANGES
    );

    // No terminal, no --auto-approve: refused, nothing changed.
    let err = fastcart(&p, d, &["apply"]).await.unwrap_err().to_string();
    assert!(err.contains("refusing to perform these actions"), "{err}");
    assert!(p.cloud.is_empty());

    assert_eq!(
        fastcart(&p, d, &["apply", "--auto-approve"]).await.unwrap(),
        OK
    );
    assert_eq!(p.cloud.len(), 6);
    assert_eq!(
        fastcart(&p, d, &["plan", "--detailed-exitcode"])
            .await
            .unwrap(),
        OK
    );
    let flat: serde_json::Value = serde_json::from_str(
        // A stack other than the order stack writes a file of its own.
        &std::fs::read_to_string(d.join("outputs/shop-flat-outputs.json")).unwrap(),
    )
    .unwrap();
    assert!(flat["network_id"].as_str().unwrap().starts_with("network-"));
    assert!(flat["stream_arn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:queue:"));
    assert_eq!(fastcart(&p, d, &["outputs", "--json"]).await.unwrap(), OK);
    assert_eq!(fastcart(&p, d, &["state", "list"]).await.unwrap(), OK);
    assert_eq!(
        fastcart(&p, d, &["state", "show", "Orders"]).await.unwrap(),
        OK
    );
    assert!(fastcart(&p, d, &["state", "show", "Nope"]).await.is_err());
    assert_eq!(
        fastcart(&p, d, &["graph", "--format", "mermaid"])
            .await
            .unwrap(),
        OK
    );

    // Drift: exit 2 with a Markdown report; apply repairs it; exit 0.
    assert_eq!(fastcart(&p, d, &["drift-check"]).await.unwrap(), OK);
    let stream = p
        .cloud
        .resources()
        .into_iter()
        .find(|r| r.logical_id() == Some("Orders"))
        .unwrap();
    p.cloud
        .set_property(&stream.physical_id, "RetentionHours", serde_json::json!(72));
    let (code, md) = drift_report(&p, d).await;
    assert_eq!(code, CHANGES);
    assert!(md.contains("| Orders | Fake::Queue::Stream |"), "{md}");
    assert_eq!(
        fastcart(&p, d, &["apply", "--auto-approve"]).await.unwrap(),
        OK
    );
    assert_eq!(
        fastcart(&p, d, &["drift-check", "--json"]).await.unwrap(),
        OK
    );

    // A saved plan applies once; a second time it is stale.
    let plan = d.join("edit.plan");
    p.set_edition(1);
    let args = [
        "plan",
        "--out",
        plan.to_str().unwrap(),
        "--detailed-exitcode",
    ];
    assert_eq!(fastcart(&p, d, &args).await.unwrap(), CHANGES);
    let args = ["apply", plan.to_str().unwrap(), "--auto-approve"];
    assert_eq!(fastcart(&p, d, &args).await.unwrap(), OK);
    let err = fastcart(&p, d, &args).await.unwrap_err();
    assert!(format!("{err:?}").contains("plan is stale"), "{err:?}");

    // A held lock is named; --force-unlock clears one left by a dead run.
    let store = fastcart_engine::StateStore::new(d, "shop", "t1");
    std::mem::forget(store.lock("apply").unwrap());
    let err = fastcart(&p, d, &["apply", "--auto-approve"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is locked by"), "{err}");
    // Not without asking: the lock may be a live run's.
    let err = fastcart(&p, d, &["apply", "--force-unlock"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refusing to remove the lock"), "{err}");
    assert!(store.lock_path().exists(), "the lock is still there");
    let code = fastcart(&p, d, &["destroy", "--auto-approve", "--force-unlock"])
        .await
        .unwrap();
    assert_eq!(code, OK);
    assert!(p.cloud.is_empty());

    // A failed step makes apply exit 1.
    p.cloud.fail(
        "Subnet0",
        fastcart_engine::fake::FakeOp::Create,
        "InvalidSubnet.Conflict",
    );
    assert_eq!(
        fastcart(&p, d, &["apply", "--auto-approve"]).await.unwrap(),
        FAILED
    );
}

#[test]
fn schema_lists_each_types_wait_deadlines() {
    let out = bin().arg("schema").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let section = |t: &str| {
        let start = text
            .find(&format!("{t}\n"))
            .unwrap_or_else(|| panic!("no {t}"));
        let rest = &text[start..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    assert!(
        section("AWS::EC2::NatGateway")
            .contains("waits: until ready at most 10 min, until gone at most 10 min"),
        "{text}"
    );
    assert!(
        section("AWS::Logs::LogGroup").contains("waits: none"),
        "{text}"
    );
    let out = bin().args(["schema", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rds = doc["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "AWS::RDS::DBInstance")
        .unwrap();
    assert_eq!(rds["deadlines"]["ready_seconds"], 3600, "{rds}");
    assert_eq!(rds["deadlines"]["gone_seconds"], 3600, "{rds}");
}

/// `apply FILE` works where the plan was made: its stack, environment and
/// region, with no flags; a flag that says otherwise is refused, and names
/// what the plan was made for.
#[tokio::test]
async fn a_saved_plan_applies_where_it_was_made() {
    let p = Demo::new(0.0);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let file = format!("{d}/ux1.plan");
    let cli = |args: &[&str]| {
        let mut argv = vec!["fastcart", "--state-dir", &d];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    };
    let made = run(
        cli(&["--stack", "shop", "--env", "ux1", "plan", "--out", &file]),
        &p,
        false,
    )
    .await
    .unwrap();
    assert_eq!(made, OK);

    let err = run(
        cli(&["apply", &file, "--auto-approve", "--env", "ux2"]),
        &p,
        false,
    )
    .await
    .unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("--env (or ENVIRONMENT_SUFFIX) is ux2, the plan was made for ux1"),
        "{text}"
    );
    assert!(p.cloud.is_empty(), "nothing was applied");

    // No flags: the plan's own stack and environment.
    let applied = run(cli(&["apply", &file, "--auto-approve"]), &p, false)
        .await
        .unwrap();
    assert_eq!(applied, OK);
    assert_eq!(p.cloud.len(), 6);
    assert!(dir.path().join("shop-ux1/state.json").exists());
}

/// A plan that replaces a resource holding data is refused before the
/// question and before anything is sent, naming what to pass; with
/// `--allow-replace` it applies.
#[tokio::test]
async fn replacing_a_database_needs_allow_replace() {
    let p = Demo::new(0.0);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        fastcart(&p, d, &["apply", "--auto-approve"]).await.unwrap(),
        OK
    );
    p.set_edition(2);
    p.cloud.clear_events();
    let err = fastcart(&p, d, &["apply", "--auto-approve"])
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("the plan replaces Database"), "{text}");
    assert!(text.contains("--allow-replace Database"), "{text}");
    assert!(p.cloud.events().is_empty(), "nothing was sent");
    let args = ["apply", "--auto-approve", "--allow-replace", "Database"];
    assert_eq!(fastcart(&p, d, &args).await.unwrap(), OK);
    let db = p
        .cloud
        .resources()
        .into_iter()
        .find(|r| r.logical_id() == Some("Database"))
        .unwrap();
    assert_eq!(db.properties["Engine"], "mysql");
}

/// Drift that weakens security is marked in every rendering and makes
/// drift-check exit 3; other drift stays 2.
#[tokio::test]
async fn security_drift_is_flagged_and_exits_3() {
    use fastcart::run::SECURITY;
    let p = Demo::new(0.0);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        fastcart(&p, d, &["apply", "--auto-approve"]).await.unwrap(),
        OK
    );
    let role = p
        .cloud
        .resources()
        .into_iter()
        .find(|r| r.type_name == "Fake::Iam::Role")
        .unwrap();
    let stream = p
        .cloud
        .resources()
        .into_iter()
        .find(|r| r.type_name == "Fake::Queue::Stream")
        .unwrap();

    // A harmless change first: drift, not a finding.
    p.cloud
        .set_property(&stream.physical_id, "RetentionHours", serde_json::json!(48));
    assert_eq!(fastcart(&p, d, &["drift-check"]).await.unwrap(), CHANGES);

    p.cloud.set_property(
        &role.physical_id,
        "PolicyDocument",
        serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}
        ]}),
    );
    let (code, md) = drift_report(&p, d).await;
    assert_eq!(code, SECURITY);
    assert!(md.contains("## Security findings"), "{md}");
    assert!(
        md.contains("policy widened to * actions and resources"),
        "{md}"
    );
    assert_eq!(
        fastcart(&p, d, &["drift-check", "--json"]).await.unwrap(),
        SECURITY
    );
}

#[test]
fn completions_and_the_manual_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        for cmd in ["plan", "apply", "drift-check", "schema"] {
            assert!(text.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    // The bash script is valid bash.
    let out = bin().args(["completions", "bash"]).output().unwrap();
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    assert!(check.wait().unwrap().success(), "bash -n refused it");

    let out = bin().arg("man").output().unwrap();
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH fastcart 1"),
        "{man}"
    );
    assert!(man.contains("drift\\-check"), "{man}");
}
