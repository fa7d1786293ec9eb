//! KMS keys and aliases, IAM roles, Secrets Manager secrets and rotation
//! schedules.

use std::collections::BTreeMap;
use std::path::Path;

use fastcart_engine::{get_att, r#ref, CreateRequest, ResourceSpec, StackSpec};
use serde_json::{json, Map, Value};

use crate::common::{cloud, lifecycle};

/// A key that waits out the shortest deletion window.
fn key(logical_id: &str, description: &str) -> ResourceSpec {
    ResourceSpec::new(logical_id, "AWS::KMS::Key")
        .prop("Description", description)
        .prop("PendingWindowInDays", 7)
}

/// The same stack with nothing in it: applying it destroys everything.
fn destroy(s: &StackSpec) -> StackSpec {
    StackSpec::new(&s.name, &s.env)
}

#[tokio::test]
async fn kms_key() {
    let c = cloud("kmskey").await;
    let policy = json!({
        "Version": "2012-10-17",
        "Id": "fastcart-test",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{}:root", c.ctx.account_id)},
            "Action": "kms:*",
            "Resource": "*"
        }]
    });
    let stack = |description: &str, rotation: bool, spec: &str| {
        let mut s = c.stack();
        let mut k = key("Key", description)
            .prop("KeySpec", spec)
            .prop("KeyUsage", "ENCRYPT_DECRYPT")
            .prop("KeyPolicy", policy.clone())
            .prop("Tags", json!([{"Key": "Name", "Value": c.name("key")}]));
        // AWS rotates symmetric keys only.
        if spec == "SYMMETRIC_DEFAULT" {
            k = k.prop("EnableKeyRotation", rotation);
        }
        s.add(k);
        s
    };
    lifecycle(
        &c,
        "AWS::KMS::Key",
        "Key",
        &stack("one", false, "SYMMETRIC_DEFAULT"),
        Some(&stack("two", true, "SYMMETRIC_DEFAULT")),
        Some(&stack("two", false, "RSA_2048")),
    )
    .await;
}

#[tokio::test]
async fn a_deleted_key_waits_its_pending_window() {
    let c = cloud("kmswin").await;
    let mut s = c.stack();
    s.add(key("Key", "short window").prop("PendingWindowInDays", 9));
    c.converge(&s).await;
    let id = c.physical_id(&s, "Key");
    c.converge(&destroy(&s)).await;
    let out = c
        .clients
        .kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .expect("a key pending deletion can be described");
    let m = out.key_metadata().expect("key metadata");
    assert_eq!(
        m.key_state().map(|k| k.as_str()),
        Some("PendingDeletion"),
        "{m:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let when = m.deletion_date().map(|d| d.secs()).expect("deletion date");
    let days = (when - now) as f64 / 86_400.0;
    // The window the stack gave (9), not the default (30): the engine only
    // kept its salted hash.
    assert!((8.5..9.5).contains(&days), "deleted in {days} days");
}

#[tokio::test]
async fn kms_alias() {
    let c = cloud("kmsalias").await;
    let stack = |alias: &str, target: Value| {
        let mut s = c.stack();
        s.add(key("KeyA", "a"));
        s.add(key("KeyB", "b"));
        s.add(
            ResourceSpec::new("Alias", "AWS::KMS::Alias")
                .prop("AliasName", format!("alias/{}", c.name(alias)))
                .prop("TargetKeyId", target),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::KMS::Alias",
        "Alias",
        &stack("app", r#ref("KeyA")),
        // By ARN this time: read back in the form given.
        Some(&stack("app", get_att("KeyB", "Arn"))),
        Some(&stack("app2", get_att("KeyB", "Arn"))),
    )
    .await;
}

#[tokio::test]
async fn reading_many_aliases_is_one_request() {
    let c = cloud("kmsalias-batch").await;
    let mut s = c.stack();
    s.add(key("Key", "aliased"));
    for i in 0..4 {
        s.add(
            ResourceSpec::new(format!("Alias{i}"), "AWS::KMS::Alias")
                .prop("AliasName", format!("alias/{}", c.name(&format!("a{i}"))))
                .prop("TargetKeyId", r#ref("Key")),
        );
    }
    c.converge(&s).await;
    let before = c.clients.requests.get("kms:ListAliases");
    c.plan(&s).await;
    assert_eq!(c.clients.requests.get("kms:ListAliases") - before, 1);
    c.converge(&destroy(&s)).await;
}

#[tokio::test]
async fn creating_an_alias_that_exists_adopts_it_only_for_the_same_key() {
    let c = cloud("kmsalias-adopt").await;
    let alias = format!("alias/{}", c.name("app"));
    let mut s = c.stack();
    s.add(key("KeyA", "a"));
    s.add(key("KeyB", "b"));
    s.add(
        ResourceSpec::new("Alias", "AWS::KMS::Alias")
            .prop("AliasName", alias.as_str())
            .prop("TargetKeyId", r#ref("KeyA")),
    );
    c.converge(&s).await;
    let key_a = c.physical_id(&s, "KeyA");
    let key_b = c.physical_id(&s, "KeyB");
    let arn_a = c
        .read("AWS::KMS::Key", &key_a)
        .await
        .expect("key A")
        .attributes
        .get("Arn")
        .and_then(Value::as_str)
        .expect("key A's ARN")
        .to_string();
    let props = |target: &str| -> Map<String, Value> {
        let v = json!({"AliasName": alias, "TargetKeyId": target});
        v.as_object().expect("an object").clone()
    };
    let tags = BTreeMap::new();
    let driver = c.driver("AWS::KMS::Alias");
    // The same key, named by ARN where the alias was made with its id.
    let same = props(&arn_a);
    let again = driver
        .create(CreateRequest {
            logical_id: "Alias",
            properties: &same,
            tags: &tags,
            idempotency_token: "0123456789abcdef0123456789abcdef",
            context: &c.ctx,
        })
        .await
        .expect("an alias of the same key is adopted");
    assert_eq!(again.physical_id, alias);
    let other = props(&key_b);
    let err = driver
        .create(CreateRequest {
            logical_id: "Alias",
            properties: &other,
            tags: &tags,
            idempotency_token: "0123456789abcdef0123456789abcdef",
            context: &c.ctx,
        })
        .await
        .expect_err("an alias of another key is not adopted");
    assert!(err.message.contains("AlreadyExists"), "{err}");
    c.converge(&destroy(&s)).await;
}

#[tokio::test]
async fn iam_role() {
    let c = cloud("iamrole").await;
    // moto loads no AWS managed policies unless started with
    // MOTO_IAM_LOAD_MANAGED_POLICIES=true: a customer managed policy stands
    // in for AmazonECSTaskExecutionRolePolicy.
    let managed = c
        .clients
        .iam
        .create_policy()
        .policy_name(c.name("execution"))
        .policy_document(
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["ecr:GetAuthorizationToken", "logs:PutLogEvents"],
                    "Resource": "*"
                }]
            })
            .to_string(),
        )
        .send()
        .await
        .expect("create a managed policy")
        .policy()
        .and_then(|p| p.arn())
        .expect("the policy's ARN")
        .to_string();
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    });
    let logs = json!({
        "PolicyName": "logs",
        "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*"
            }]
        }
    });
    // A document given as JSON text.
    let kinesis = json!({
        "PolicyName": "kinesis",
        "PolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"kinesis:PutRecord\",\"Resource\":\"*\"}]}"
    });
    let stack = |name: &str, policies: Value, arns: Value| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("Role", "AWS::IAM::Role")
                .prop("RoleName", c.name(name))
                .prop("Path", "/fastcart/")
                .prop("AssumeRolePolicyDocument", trust.clone())
                .prop("Description", "the task's role")
                .prop("MaxSessionDuration", 7200)
                .prop("Policies", policies)
                .prop("ManagedPolicyArns", arns)
                .prop("Tags", json!([{"Key": "Name", "Value": c.name(name)}])),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::IAM::Role",
        "Role",
        &stack("task", json!([logs]), json!([])),
        Some(&stack("task", json!([logs, kinesis]), json!([managed]))),
        Some(&stack("task2", json!([logs, kinesis]), json!([managed]))),
    )
    .await;
    c.clients
        .iam
        .delete_policy()
        .policy_arn(&managed)
        .send()
        .await
        .expect("the managed policy is detached from every role");
}

#[tokio::test]
async fn secret() {
    let c = cloud("secret").await;
    let stack = |name: &str, description: &str| {
        let mut s = c.stack();
        s.add(
            ResourceSpec::new("Secret", "AWS::SecretsManager::Secret")
                .prop("Name", c.name(name))
                .prop("Description", description)
                .prop(
                    "GenerateSecretString",
                    json!({
                        "SecretStringTemplate": "{\"username\":\"app\"}",
                        "GenerateStringKey": "password",
                        "PasswordLength": 32,
                        "ExcludeCharacters": "\"@/\\"
                    }),
                )
                .prop("Tags", json!([{"Key": "Name", "Value": c.name(name)}])),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::SecretsManager::Secret",
        "Secret",
        &stack("db", "one"),
        Some(&stack("db", "two")),
        Some(&stack("db2", "two")),
    )
    .await;
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the state directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_generated_secret_never_reaches_the_disk() {
    let c = cloud("secret-value").await;
    let mut s = c.stack();
    s.add(
        ResourceSpec::new("Secret", "AWS::SecretsManager::Secret")
            .prop("Name", c.name("db"))
            .prop(
                "GenerateSecretString",
                json!({
                    "SecretStringTemplate": "{\"username\":\"app\"}",
                    "GenerateStringKey": "password",
                    "PasswordLength": 40,
                    "ExcludePunctuation": true
                }),
            ),
    );
    c.converge(&s).await;
    let arn = c.physical_id(&s, "Secret");
    let value = c
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("the secret's value")
        .secret_string()
        .expect("a string value")
        .to_string();
    let doc: Value = serde_json::from_str(&value).expect("the template filled in");
    assert_eq!(doc["username"], "app");
    let password = doc["password"].as_str().expect("a password").to_string();
    assert_eq!(password.len(), 40);
    assert!(password.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let state_path = c.session(&s).local().unwrap().state_path();
    let state = std::fs::read_to_string(&state_path).expect("the state file");
    assert!(
        !state.contains(&password),
        "the secret's value is in {}",
        state_path.display()
    );
    // Nor in any other file fastcart wrote (journal, plans, locks).
    for path in files(c.dir.path()) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&password),
            "the secret's value is in {}",
            path.display()
        );
    }
    c.converge(&destroy(&s)).await;
}

#[tokio::test]
async fn rotation_schedule() {
    let c = cloud("rotsched").await;
    let secret = |logical_id: &str, name: &str| {
        ResourceSpec::new(logical_id, "AWS::SecretsManager::Secret")
            .prop("Name", c.name(name))
            .prop("SecretString", "not-a-real-password")
    };
    // The replacement moves the schedule to SecretB and drops SecretA: a
    // schedule without a rotation function cannot be cancelled (AWS and
    // moto refuse), it goes with its secret.
    let stack = |with_a: bool, target: &str, days: i64| {
        let mut s = c.stack();
        if with_a {
            s.add(secret("SecretA", "a"));
        }
        s.add(secret("SecretB", "b"));
        s.add(
            ResourceSpec::new("Schedule", "AWS::SecretsManager::RotationSchedule")
                .prop("SecretId", r#ref(target))
                .prop("RotationRules", json!({"AutomaticallyAfterDays": days})),
        );
        s
    };
    lifecycle(
        &c,
        "AWS::SecretsManager::RotationSchedule",
        "Schedule",
        &stack(true, "SecretA", 30),
        Some(&stack(true, "SecretA", 7)),
        Some(&stack(false, "SecretB", 7)),
    )
    .await;
}
