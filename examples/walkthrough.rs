//! The whole job end to end, against the engine's in-memory fake cloud:
//! plan, apply, plan again (no changes), drift made behind fastcart's back,
//! drift-check, repair, an edit that updates and replaces, and destroy.
//!
//! Run: `cargo run --example walkthrough` (add `-- --fast` to skip the
//! simulated latencies). It writes only under a temporary directory.

use clap::Parser;
use fastcart::cli::Cli;
use fastcart::demo::Demo;
use fastcart::run::run;

async fn fastcart(demo: &Demo, dir: &str, args: &[&str]) -> u8 {
    let mut argv = vec!["fastcart", "--stack", "shop", "--env", "demo"];
    argv.extend_from_slice(args);
    let outputs = format!("{dir}/cfn-outputs");
    argv.extend_from_slice(&["--state-dir", dir, "--outputs-dir", &outputs]);
    println!("\n$ {}\n", argv.join(" "));
    match run(
        Cli::try_parse_from(&argv).expect("valid arguments"),
        demo,
        false,
    )
    .await
    {
        Ok(code) => {
            println!("(exit {code})");
            code
        }
        Err(report) => {
            println!("{report:?}(exit 1)");
            1
        }
    }
}

#[tokio::main]
async fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    let demo = Demo::new(if fast { 0.0 } else { 1.0 });
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_str().expect("utf-8 path").to_string();
    let d = dir.as_str();

    assert_eq!(
        fastcart(&demo, d, &["plan", "--detailed-exitcode"]).await,
        2
    );
    assert_eq!(fastcart(&demo, d, &["apply", "--auto-approve"]).await, 0);
    assert_eq!(
        fastcart(&demo, d, &["plan", "--detailed-exitcode"]).await,
        0
    );

    // Someone changes the stream's retention in the console.
    let orders = demo
        .cloud
        .resources()
        .into_iter()
        .find(|r| r.logical_id() == Some("Orders"))
        .expect("the stream exists");
    demo.cloud.set_property(
        &orders.physical_id,
        "RetentionHours",
        serde_json::json!(168),
    );
    assert_eq!(fastcart(&demo, d, &["drift-check"]).await, 2);
    assert_eq!(fastcart(&demo, d, &["apply", "--auto-approve"]).await, 0);
    assert_eq!(fastcart(&demo, d, &["drift-check"]).await, 0);

    // An edit: an update, a replacement and a policy change.
    demo.set_edition(1);
    assert_eq!(fastcart(&demo, d, &["apply", "--auto-approve"]).await, 0);
    assert_eq!(fastcart(&demo, d, &["outputs"]).await, 0);
    assert_eq!(fastcart(&demo, d, &["destroy", "--auto-approve"]).await, 0);
    assert!(demo.cloud.is_empty(), "destroy leaves nothing behind");
    println!("\nWalkthrough finished: every step behaved as expected.");
}
