//! `AWS::ElasticLoadBalancingV2::Listener`.
//!
//! A load balancer has at most one listener per port, so the port is what
//! finds a listener again: before it creates one, the driver looks at the
//! load balancer's listeners, and a listener already on that port with the
//! same protocol and actions is this one (made by an attempt whose answer
//! was lost; AWS would return it, the emulator would make a second). One on
//! that port that differs is an error that says what is there. Listeners
//! take no ownership tags here: the tagging API does not list them, and the
//! port already makes a twin impossible.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Listener as AwsListener, ProtocolEnum,
};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, KeyQuery, Observed,
    ResourceHandle, TypeSchema, UpdateRequest,
};
use serde_json::{json, Map, Value};

use crate::call::Call;
use crate::error::invalid;
use crate::props::{i32_of, need_str, str_of, Obs, Props};
use crate::sdk::Clients;

pub struct Listener {
    c: Arc<Clients>,
    schema: TypeSchema,
}

impl Listener {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::ElasticLoadBalancingV2::Listener")
            .one_of(
                "DefaultActions/*/Type",
                &[
                    "authenticate-cognito",
                    "authenticate-oidc",
                    "fixed-response",
                    "forward",
                    "jwt-validation",
                    "redirect",
                ],
            )
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .range("Port", Some(1.0), Some(65535.0))
            .one_of(
                "Protocol",
                &[
                    "GENEVE", "HTTP", "HTTPS", "QUIC", "TCP", "TCP_QUIC", "TCP_UDP", "TLS", "UDP",
                ],
            )
            .required("LoadBalancerArn")
            .create_only("LoadBalancerArn")
            .required("DefaultActions")
            .prop("Port")
            .prop("Protocol")
            .attribute("ListenerArn")
            .untaggable()
            .typical_duration(Duration::from_secs(1));
        Listener { c, schema }
    }

    async fn describe(&self, arns: &[&str]) -> Result<HashMap<String, AwsListener>, DriverError> {
        super::describe!(
            self.c,
            arns,
            describe_listeners,
            set_listener_arns,
            listeners,
            AwsListener::listener_arn
        )
        .await
    }

    /// The listeners of one load balancer.
    async fn of_load_balancer(&self, lb: &str) -> Result<Vec<AwsListener>, DriverError> {
        let out = self
            .c
            .elbv2
            .describe_listeners()
            .load_balancer_arn(lb)
            .send()
            .call(&self.c, lb)
            .await?;
        Ok(out.listeners().to_vec())
    }
}

/// The actions as the stack writes them: `Type` and, for a forward, the
/// `TargetGroupArn` (what AWS adds, a weighted `ForwardConfig` and an
/// order, follows from those).
fn actions_value(actions: &[Action]) -> Value {
    Value::Array(
        actions
            .iter()
            .map(|a| {
                let mut v = Map::new();
                if let Some(t) = a.r#type() {
                    v.insert("Type".into(), json!(t.as_str()));
                }
                if let Some(tg) = a.target_group_arn() {
                    v.insert("TargetGroupArn".into(), json!(tg));
                }
                Value::Object(v)
            })
            .collect(),
    )
}

/// The stack's `DefaultActions`: forwards to one target group (the only
/// kind this driver sends; others are refused before any call).
fn actions_of(p: &Props, op: &str) -> Result<Vec<Action>, DriverError> {
    let Some(Value::Array(items)) = p.get("DefaultActions") else {
        return Err(invalid(op, "DefaultActions must be a list of actions"));
    };
    items
        .iter()
        .map(|a| {
            let kind = a.get("Type").and_then(Value::as_str).unwrap_or_default();
            let tg = a.get("TargetGroupArn").and_then(Value::as_str);
            match (kind, tg) {
                ("forward", Some(tg)) => Ok(Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(tg)
                    .build()),
                _ => Err(invalid(
                    op,
                    format!(
                        "DefaultActions: only {{\"Type\": \"forward\", \"TargetGroupArn\": ..}} \
                         is supported, not {a}"
                    ),
                )),
            }
        })
        .collect()
}

fn observe(l: &AwsListener) -> Observed {
    let mut o = Obs::new()
        .prop("LoadBalancerArn", l.load_balancer_arn())
        .prop("Port", l.port())
        .prop("Protocol", l.protocol().map(|p| p.as_str()))
        .prop("DefaultActions", Some(actions_value(l.default_actions())))
        .done();
    o.attributes = attributes_of(l);
    o
}

fn attributes_of(l: &AwsListener) -> Map<String, Value> {
    Obs::new()
        .attr("ListenerArn", l.listener_arn())
        .done()
        .attributes
}

#[async_trait]
impl Driver for Listener {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        let arns: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let found = self.describe(&arns).await?;
        Ok(handles
            .iter()
            .map(|h| found.get(&h.physical_id).map(observe))
            .collect())
    }

    /// A load balancer has one listener per port: the two are its key.
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let (Some(lb), Some(port)) = (
            crate::key::given(q, "LoadBalancerArn"),
            i32_of(q.properties, "Port"),
        ) else {
            return Ok(None);
        };
        let arns = self
            .of_load_balancer(lb)
            .await?
            .into_iter()
            .filter(|l| l.port() == Some(port))
            .filter_map(|l| l.listener_arn().map(String::from));
        let key = format!("LoadBalancerArn={lb}, Port={port}");
        crate::key::candidates(self, q, arns, &key).await.map(Some)
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let op = "elasticloadbalancing:CreateListener";
        let lb = need_str(p, "LoadBalancerArn", op)?;
        let actions = actions_of(p, op)?;
        let port = i32_of(p, "Port");
        let protocol = str_of(p, "Protocol");
        // The port finds an earlier attempt's listener, or one in the way.
        if let Some(there) = self
            .of_load_balancer(lb)
            .await?
            .into_iter()
            .find(|l| port.is_some() && l.port() == port)
        {
            let (have, want) = (
                actions_value(there.default_actions()),
                actions_value(&actions),
            );
            let same = protocol
                .is_none_or(|want| there.protocol().map(|p| p.as_str()) == Some(want))
                && have == want;
            if !same {
                return Err(DriverError::new(
                    ErrorKind::InvalidRequest,
                    op,
                    format!(
                        "{}: port {} of {lb} already has listener {} ({} to {}), not this one's \
                         ({} to {}): delete it or choose another port",
                        req.logical_id,
                        port.unwrap_or_default(),
                        there.listener_arn().unwrap_or("?"),
                        there.protocol().map(|p| p.as_str()).unwrap_or("?"),
                        have,
                        protocol.unwrap_or("?"),
                        want,
                    ),
                ));
            }
            return Ok(Created {
                physical_id: there.listener_arn().unwrap_or_default().to_string(),
                attributes: attributes_of(&there),
            });
        }
        let out = self
            .c
            .elbv2
            .create_listener()
            .load_balancer_arn(lb)
            .set_port(port)
            .set_protocol(protocol.map(ProtocolEnum::from))
            .set_default_actions(Some(actions))
            .send()
            .call(&self.c, req.logical_id)
            .await?;
        let l = out.listeners().first().ok_or_else(|| {
            DriverError::new(
                ErrorKind::Other,
                op,
                format!("{lb}: AWS returned no listener"),
            )
        })?;
        Ok(Created {
            physical_id: l.listener_arn().unwrap_or_default().to_string(),
            attributes: attributes_of(l),
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let arn = req.physical_id;
        let p = req.properties;
        let op = "elasticloadbalancing:ModifyListener";
        let out = self
            .c
            .elbv2
            .modify_listener()
            .listener_arn(arn)
            .set_port(i32_of(p, "Port"))
            .set_protocol(str_of(p, "Protocol").map(ProtocolEnum::from))
            .set_default_actions(Some(actions_of(p, op)?))
            .send()
            .call(&self.c, arn)
            .await?;
        Ok(out
            .listeners()
            .first()
            .map(attributes_of)
            .unwrap_or_default())
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let arn = h.physical_id.as_str();
        let r = self
            .c
            .elbv2
            .delete_listener()
            .listener_arn(arn)
            .send()
            .call(&self.c, arn)
            .await;
        crate::error::done_if_gone(r)
    }
}
