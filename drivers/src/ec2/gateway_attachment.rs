//! `AWS::EC2::VPCGatewayAttachment`, for internet gateways (VPN gateways are
//! not supported).
//!
//! The physical id is `<internet gateway id>|<VPC id>`: an attachment has no
//! id of its own, and reading it needs both. It takes no tags, so a create
//! adopts an attachment that already exists instead of failing: after a crash
//! the engine cannot find it by tags and creates it again.
//!
//! A VPC takes one internet gateway and a gateway one VPC, so a replacement
//! cannot attach the new before detaching the old: `VpcId` is declared as the
//! property that fixes the physical name, which makes the engine delete first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::InternetGateway as Igw;
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, KeyQuery, Observed, ResourceHandle,
    TypeSchema, UpdateRequest,
};
use serde_json::{Map, Value};

use super::internet_gateway::InternetGateway;
use crate::call::Call;
use crate::error::invalid;
use crate::props::{need_str, Obs};
use crate::sdk::Clients;
use crate::wait;

pub struct GatewayAttachment {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// `igw-1|vpc-2` as `("igw-1", "vpc-2")`.
fn split_id<'a>(id: &'a str, operation: &str) -> Result<(&'a str, &'a str), DriverError> {
    id.split_once('|')
        .filter(|(g, v)| !g.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            invalid(
                operation,
                format!("{id} is not a gateway attachment id (<internet gateway id>|<VPC id>)"),
            )
        })
}

/// Whether the gateway is attached (or attaching) to the VPC.
fn attached(g: &Igw, vpc: &str) -> bool {
    g.attachments().iter().any(|a| {
        a.vpc_id() == Some(vpc)
            // AWS reports an attached internet gateway as "available".
            && !matches!(
                a.state().map(|s| s.as_str()),
                Some("detached") | Some("detaching")
            )
    })
}

impl GatewayAttachment {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::VPCGatewayAttachment")
            .required("VpcId")
            .fixed_name("VpcId")
            .required("InternetGatewayId")
            .create_only("InternetGatewayId")
            .untaggable()
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::from_secs(120), Duration::from_secs(600));
        GatewayAttachment { c, schema }
    }

    /// Whether `igw` is attached to `vpc` now (`None`: the gateway is gone).
    async fn is_attached(&self, igw: &str, vpc: &str) -> Result<Option<bool>, DriverError> {
        let found = InternetGateway::describe(&self.c, &[igw]).await?;
        Ok(found.get(igw).map(|g| attached(g, vpc)))
    }
}

#[async_trait]
impl Driver for GatewayAttachment {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    /// One `DescribeInternetGateways` (per page) for the gateways of all the
    /// attachments.
    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let mut pairs = Vec::with_capacity(handles.len());
        for h in handles {
            pairs.push(split_id(&h.physical_id, "ec2:DescribeInternetGateways")?);
        }
        let mut igws: Vec<&str> = pairs.iter().map(|(g, _)| *g).collect();
        igws.sort_unstable();
        igws.dedup();
        let found = InternetGateway::describe(&self.c, &igws).await?;
        Ok(pairs
            .iter()
            .map(|(igw, vpc)| {
                found.get(*igw).filter(|g| attached(g, vpc)).map(|_| {
                    Obs::new()
                        .prop("InternetGatewayId", Some(*igw))
                        .prop("VpcId", Some(*vpc))
                        .done()
                })
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let p = req.properties;
        let vpc = need_str(p, "VpcId", "ec2:AttachInternetGateway")?;
        let igw = need_str(p, "InternetGatewayId", "ec2:AttachInternetGateway")?;
        let id = format!("{igw}|{vpc}");
        // No tags: adopt an attachment an earlier, lost create already made.
        if self.is_attached(igw, vpc).await? != Some(true) {
            self.c
                .ec2
                .attach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(vpc)
                .send()
                .call(&self.c, &id)
                .await?;
        }
        wait::until(
            "ec2:DescribeInternetGateways",
            &format!("{igw} to be attached to {vpc}"),
            self.schema.deadlines.ready,
            || async { Ok(self.is_attached(igw, vpc).await?.filter(|a| *a).map(|_| ())) },
        )
        .await?;
        Ok(Created {
            physical_id: id,
            attributes: Map::new(),
        })
    }

    /// Nothing to update: both properties are create-only and there are no
    /// tags.
    async fn update(&self, _req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        Ok(Map::new())
    }

    /// By its VPC: the gateway attached to it (a VPC has at most one).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(vpc) = crate::key::given(q, "VpcId") else {
            return Ok(None);
        };
        let igws = super::matching!(
            self.c,
            describe_internet_gateways(set_filters),
            vec![super::filter("attachment.vpc-id", [vpc])],
            internet_gateways,
            internet_gateway_id,
            "internet gateways by key",
            |g: &Igw| attached(g, vpc)
        );
        let ids = igws.into_iter().map(|g| format!("{g}|{vpc}"));
        let key = super::key_text(&[("VpcId", Some(vpc))]);
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        let (igw, vpc) = split_id(id, "ec2:DetachInternetGateway")?;
        // Detaching fails while the VPC has mapped public addresses (a NAT
        // gateway being deleted, say): retry for a while.
        let deadline = wait::Deadline::after(self.schema.deadlines.gone);
        let r = wait::while_in_use(deadline.left(), || async {
            self.c
                .ec2
                .detach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(vpc)
                .send()
                .call(&self.c, id)
                .await
        })
        .await;
        match r {
            Ok(_) => {}
            Err(e) if crate::error::is_gone(&e) || e.is_code("Gateway.NotAttached") => {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        wait::until(
            "ec2:DescribeInternetGateways",
            &format!("{igw} to be detached from {vpc}"),
            deadline.left(),
            || async { Ok((self.is_attached(igw, vpc).await? != Some(true)).then_some(())) },
        )
        .await
    }
}
