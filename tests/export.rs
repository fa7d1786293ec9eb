//! `fastcart export --format cloudformation` for both stacks, judged by
//! AWS's own linter: cfn-lint (the pinned version the tests install beside
//! moto) finds no error in either template. Warnings are printed, not
//! failed on: they are advice about the stack as declared (cfn-lint 1.58
//! calls aurora-postgresql 15.8, which the Flask API program pins,
//! deprecated for new clusters).

#[path = "support/moto.rs"]
mod moto;
#[path = "support/world.rs"]
mod world;

use std::process::Command;

use serde_json::Value;

use world::World;

/// cfn-lint's exit code is a bit set: 2 errors, 4 warnings, 8 informational
/// (1 is a failure of cfn-lint itself).
const ERRORS: i32 = 2 | 1;

fn lint(w: &World, region: &str) -> Value {
    let file = w.path("template.json");
    let said = w.expect(
        0,
        &[
            "export",
            "--format",
            "cloudformation",
            "--out",
            "template.json",
        ],
    );
    assert!(said.contains("Wrote the"), "{said}");
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).expect("the export is JSON");
    let out = Command::new(moto::venv().join("bin/cfn-lint"))
        .args(["--regions", region, "--"])
        .arg(&file)
        .output()
        .expect("run cfn-lint");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(1);
    assert_eq!(
        code & ERRORS,
        0,
        "cfn-lint found errors in the {} export (exit {code}):\n{report}",
        w.stack
    );
    eprintln!("cfn-lint on {} (exit {code}):\n{report}", w.stack);
    template
}

#[test]
fn the_order_stack_exports_as_a_template_cfn_lint_accepts() {
    let w = World::new("export1");
    let t = lint(&w, "eu-central-1");
    let stack = w.stack();
    let resources = t["Resources"].as_object().unwrap();
    assert_eq!(resources.len(), stack.resources.len());
    // Every output but the two read after an apply, which a template
    // cannot express.
    let outputs = t["Outputs"].as_object().unwrap();
    assert_eq!(outputs.len(), stack.outputs.len() - 2);
    assert!(!outputs.contains_key("DbSecretVersionId"), "{outputs:?}");
    assert!(outputs.contains_key("DbSecretArn"), "{outputs:?}");
    // The Redis auth token is a dynamic reference CloudFormation resolves,
    // never a value; the stack's tags are on every resource that takes tags.
    let token = &t["Resources"]["Redis"]["Properties"]["AuthToken"];
    assert!(
        token.to_string().contains("{{resolve:secretsmanager:"),
        "{token}"
    );
    let tags = t["Resources"]["Vpc"]["Properties"]["Tags"].to_string();
    assert!(tags.contains("FastCartOrderProcessing"), "{tags}");
    assert_eq!(
        t["Outputs"]["VpcId"]["Value"],
        serde_json::json!({"Ref": "Vpc"})
    );
}

#[test]
fn the_flask_api_stack_exports_as_a_template_cfn_lint_accepts() {
    let w = World::of("flask-api", "export2");
    let t = lint(&w, "eu-south-1");
    assert_eq!(
        t["Resources"].as_object().unwrap().len(),
        w.stack().resources.len()
    );
    assert_eq!(
        t["Resources"]["Service"]["DependsOn"],
        serde_json::json!([
            "HttpListener",
            "PrivateDefaultRoute0",
            "PrivateDefaultRoute1"
        ])
    );
    // A list output is one string in CloudFormation.
    assert!(t["Outputs"]["NatGatewayIds"]["Value"]["Fn::Join"].is_array());
}
