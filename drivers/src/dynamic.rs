//! CloudFormation-style dynamic references to Secrets Manager, for secrets
//! handed to AWS (a database master password, a Redis auth token).
//!
//! A write-only property may hold
//! `{{resolve:secretsmanager:<secret-id-or-arn>:SecretString:<json-key>}}`
//! (the JSON key, version stage and version id optional; the short form
//! `{{resolve:secretsmanager:<secret-id-or-arn>}}` takes the whole secret
//! string). The driver resolves it with `GetSecretValue` right before the
//! create or update call that needs it, so the secret itself never reaches the
//! engine, the plan, the journal or the state: those only ever see the
//! reference. Text around a reference is kept, so `user:{{resolve:...}}` works
//! as in CloudFormation.
//!
//! A plain string is returned as is. Errors name the secret and the key, never
//! the secret's value.

use fastcart_engine::DriverError;
use serde_json::Value;

use crate::call::Call;
use crate::error::invalid;
use crate::sdk::Clients;

const OPEN: &str = "{{resolve:";
const CLOSE: &str = "}}";

/// One `{{resolve:secretsmanager:...}}` reference, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The secret's name or ARN.
    pub secret_id: String,
    /// The key to pick from a secret holding a JSON object; `None` takes the
    /// whole secret string.
    pub json_key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

/// A property value as literal text and secret references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Secret(SecretRef),
}

/// Whether a value holds a dynamic reference at all.
pub fn is_dynamic(value: &str) -> bool {
    value.contains(OPEN)
}

/// Splits a value into text and references; pure, so it is tested without
/// AWS. A value without references is one `Text` piece.
pub fn parse(value: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let end = after.find(CLOSE).ok_or_else(|| {
            "a dynamic reference `{{resolve:...` is not closed by `}}`".to_string()
        })?;
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_string()));
        }
        pieces.push(Piece::Secret(parse_reference(&after[..end])?));
        rest = &after[end + CLOSE.len()..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// `secretsmanager:<id>[:SecretString[:<key>[:<stage>[:<version id>]]]]`,
/// the part between `{{resolve:` and `}}`.
fn parse_reference(body: &str) -> Result<SecretRef, String> {
    let Some(rest) = body.strip_prefix("secretsmanager:") else {
        let service = body.split(':').next().unwrap_or_default();
        return Err(format!(
            "dynamic references to `{service}` are not supported: only `{{{{resolve:secretsmanager:...}}}}`"
        ));
    };
    let parts: Vec<&str> = rest.split(':').collect();
    // An ARN has colons of its own: arn:partition:secretsmanager:region:account:secret:name.
    let (secret_id, tail) = if parts.first() == Some(&"arn") {
        if parts.len() < 7 || parts[6].is_empty() {
            return Err(format!(
                "`{}` in a dynamic reference is not a whole secret ARN",
                parts.join(":")
            ));
        }
        (parts[..7].join(":"), &parts[7..])
    } else {
        (parts[0].to_string(), &parts[1..])
    };
    if secret_id.is_empty() {
        return Err("a dynamic reference names no secret".into());
    }
    match tail.first() {
        None | Some(&"SecretString") => {}
        Some(other) => {
            return Err(format!(
                "a secretsmanager dynamic reference to {secret_id} has `{other}` where `SecretString` belongs"
            ))
        }
    }
    if tail.len() > 4 {
        return Err(format!(
            "a secretsmanager dynamic reference to {secret_id} has too many parts: \
             expected SecretString:<json-key>:<version-stage>:<version-id>"
        ));
    }
    let part = |i: usize| tail.get(i).filter(|s| !s.is_empty()).map(|s| s.to_string());
    Ok(SecretRef {
        secret_id,
        json_key: part(1),
        version_stage: part(2),
        version_id: part(3),
    })
}

/// The value under `key` in a secret string holding a JSON object. Errors
/// never quote the secret.
pub(crate) fn pick(secret: &str, key: &str) -> Result<String, String> {
    let doc: Value = serde_json::from_str(secret)
        .map_err(|_| format!("its SecretString is not JSON, so it has no key `{key}`"))?;
    match doc.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(_) => Err(format!("the value under `{key}` is not a string")),
        None => Err(format!("its SecretString has no key `{key}`")),
    }
}

/// `value` with every dynamic reference replaced by the secret it names,
/// for the API call `operation` (such as `rds:CreateDBInstance`). A plain
/// string comes back as is, without a call.
pub async fn resolve(c: &Clients, value: &str, operation: &str) -> Result<String, DriverError> {
    if !is_dynamic(value) {
        return Ok(value.to_string());
    }
    let pieces = parse(value).map_err(|m| invalid(operation, m))?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Secret(r) => out.push_str(&fetch(c, &r, operation).await?),
        }
    }
    Ok(out)
}

async fn fetch(c: &Clients, r: &SecretRef, operation: &str) -> Result<String, DriverError> {
    let out = c
        .secrets
        .get_secret_value()
        .secret_id(&r.secret_id)
        .set_version_stage(r.version_stage.clone())
        .set_version_id(r.version_id.clone())
        .send()
        .call(c, &r.secret_id)
        .await
        .map_err(|mut e| {
            e.message = format!(
                "{} (resolving a dynamic reference for {operation})",
                e.message
            );
            e
        })?;
    let Some(text) = out.secret_string() else {
        return Err(invalid(
            operation,
            format!(
                "secret {} has no SecretString: a dynamic reference cannot use a binary secret",
                r.secret_id
            ),
        ));
    };
    match &r.json_key {
        None => Ok(text.to_string()),
        Some(key) => {
            pick(text, key).map_err(|m| invalid(operation, format!("secret {}: {m}", r.secret_id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: &str, key: Option<&str>) -> Piece {
        Piece::Secret(SecretRef {
            secret_id: id.into(),
            json_key: key.map(String::from),
            version_stage: None,
            version_id: None,
        })
    }

    #[test]
    fn plain_strings_are_one_text_piece() {
        assert_eq!(
            parse("hunter2").unwrap(),
            vec![Piece::Text("hunter2".into())]
        );
        assert_eq!(parse("").unwrap(), vec![Piece::Text(String::new())]);
        assert!(!is_dynamic("{{not a reference}}"));
        assert_eq!(
            parse("{{not a reference}}").unwrap(),
            vec![Piece::Text("{{not a reference}}".into())]
        );
    }

    #[test]
    fn names_and_keys() {
        assert_eq!(
            parse("{{resolve:secretsmanager:MySecret}}").unwrap(),
            vec![secret("MySecret", None)]
        );
        assert_eq!(
            parse("{{resolve:secretsmanager:MySecret:SecretString}}").unwrap(),
            vec![secret("MySecret", None)]
        );
        assert_eq!(
            parse("{{resolve:secretsmanager:MySecret:SecretString:password}}").unwrap(),
            vec![secret("MySecret", Some("password"))]
        );
    }

    #[test]
    fn arns_keep_their_colons() {
        let arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:redis-token-AbCdEf";
        assert_eq!(
            parse(&format!(
                "{{{{resolve:secretsmanager:{arn}:SecretString:token}}}}"
            ))
            .unwrap(),
            vec![secret(arn, Some("token"))]
        );
        assert_eq!(
            parse(&format!("{{{{resolve:secretsmanager:{arn}}}}}")).unwrap(),
            vec![secret(arn, None)]
        );
        assert!(parse("{{resolve:secretsmanager:arn:aws:secretsmanager:eu-central-1}}").is_err());
    }

    #[test]
    fn versions_and_empty_keys() {
        let got = parse("{{resolve:secretsmanager:S:SecretString::AWSPREVIOUS}}").unwrap();
        assert_eq!(
            got,
            vec![Piece::Secret(SecretRef {
                secret_id: "S".into(),
                json_key: None,
                version_stage: Some("AWSPREVIOUS".into()),
                version_id: None,
            })]
        );
        let got = parse("{{resolve:secretsmanager:S:SecretString:k::v-1}}").unwrap();
        assert_eq!(
            got,
            vec![Piece::Secret(SecretRef {
                secret_id: "S".into(),
                json_key: Some("k".into()),
                version_stage: None,
                version_id: Some("v-1".into()),
            })]
        );
    }

    #[test]
    fn text_around_references_is_kept() {
        assert_eq!(
            parse("u:{{resolve:secretsmanager:A:SecretString:p}}@{{resolve:secretsmanager:B}}!")
                .unwrap(),
            vec![
                Piece::Text("u:".into()),
                secret("A", Some("p")),
                Piece::Text("@".into()),
                secret("B", None),
                Piece::Text("!".into()),
            ]
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(parse("{{resolve:secretsmanager:S:SecretString:k").is_err());
        assert!(parse("{{resolve:ssm:/my/parameter}}").is_err());
        assert!(parse("{{resolve:ssm-secure:/p:1}}").is_err());
        assert!(parse("{{resolve:secretsmanager:S:SecretBinary}}").is_err());
        assert!(parse("{{resolve:secretsmanager:}}").is_err());
        assert!(parse("{{resolve:secretsmanager:S:SecretString:k:s:v:extra}}").is_err());
    }

    #[test]
    fn picking_a_key_never_quotes_the_secret() {
        assert_eq!(
            pick(r#"{"token":"s3cr3t","port":6379}"#, "token").unwrap(),
            "s3cr3t"
        );
        assert_eq!(
            pick(r#"{"token":"s3cr3t","port":6379}"#, "port").unwrap(),
            "6379"
        );
        for (secret, key) in [
            (r#"{"token":"s3cr3t"}"#, "missing"),
            ("s3cr3t", "token"),
            (r#"{"token":{"s3cr3t":1}}"#, "token"),
            (r#"["s3cr3t"]"#, "token"),
        ] {
            let e = pick(secret, key).unwrap_err();
            assert!(!e.contains("s3cr3t"), "{e}");
            assert!(e.contains(key), "{e}");
        }
    }
}
