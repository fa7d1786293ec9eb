//! `AWS::EC2::SecurityGroup`.
//!
//! Rules are given and read in CloudFormation's shape: one object per CIDR
//! range, group or prefix list (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`,
//! `SourceSecurityGroupId`, ...), where AWS groups several ranges and groups
//! under one permission. Rule lists are reconciled against what AWS holds:
//! missing rules are authorized, extra ones revoked (so the allow-all egress
//! rule AWS adds to every new group goes when the stack gives its own egress
//! rules without it), and changed descriptions updated in place.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup as Group,
    UserIdGroupPair,
};
use fastcart_engine::{
    Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found, KeyQuery, Observed,
    Ownership, ResourceHandle, TypeSchema, UpdateRequest, ValueKind, TAG_ENV, TAG_STACK,
};
use serde_json::{Map, Value};

use super::{filter, owned, owner_filters, sync_tags, tag_spec, tags_of};
use crate::call::Call;
use crate::error::{invalid, SdkResultExt};
use crate::props::{all_tags, i32_of, need_str, str_of, Obs, Props};
use crate::sdk::Clients;
use crate::wait;

/// In the tagging API (for the stack-wide search; this driver's own
/// `find_by_tags` asks EC2, which sees a fresh create at once).
pub const TAGGED: crate::tagging::Tagged = crate::tagging::Tagged {
    filter: "ec2:security-group",
    arn: "ec2:security-group/",
    id: crate::tagging::after_slash,
};

/// What names a rule in diffs: its protocol, ports and source (or
/// destination).
const RULE_IDENTITY: &[&str] = &[
    "IpProtocol",
    "FromPort",
    "ToPort",
    "CidrIp",
    "CidrIpv6",
    "SourceSecurityGroupId",
    "DestinationSecurityGroupId",
    "SourcePrefixListId",
    "DestinationPrefixListId",
];

pub struct SecurityGroup {
    c: Arc<Clients>,
    schema: TypeSchema,
}

/// Which of the two rule lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

use Direction::{Egress, Ingress};

impl Direction {
    fn property(self) -> &'static str {
        match self {
            Ingress => "SecurityGroupIngress",
            Egress => "SecurityGroupEgress",
        }
    }

    /// The key naming another security group as the peer.
    fn group_key(self) -> &'static str {
        match self {
            Ingress => "SourceSecurityGroupId",
            Egress => "DestinationSecurityGroupId",
        }
    }

    /// The key naming a prefix list as the peer.
    fn prefix_key(self) -> &'static str {
        match self {
            Ingress => "SourcePrefixListId",
            Egress => "DestinationPrefixListId",
        }
    }

    fn keys(self) -> [&'static str; 8] {
        [
            "IpProtocol",
            "FromPort",
            "ToPort",
            "CidrIp",
            "CidrIpv6",
            self.group_key(),
            self.prefix_key(),
            "Description",
        ]
    }

    fn authorize_op(self) -> &'static str {
        match self {
            Ingress => "ec2:AuthorizeSecurityGroupIngress",
            Egress => "ec2:AuthorizeSecurityGroupEgress",
        }
    }
}

/// Whom a rule lets in or out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Cidr(String),
    Cidr6(String),
    Group(String),
    PrefixList(String),
}

/// One rule, in a canonical form both sides compare in: protocols by name
/// (`6` is `tcp`, `all` is `-1`), no ports for "all protocols", no empty
/// descriptions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    protocol: String,
    from: Option<i32>,
    to: Option<i32>,
    peer: Peer,
    description: Option<String>,
}

fn canonical_protocol(p: &str) -> String {
    match p.trim().to_ascii_lowercase().as_str() {
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        "-1" | "all" => "-1".into(),
        other => other.to_string(),
    }
}

impl Rule {
    fn new(
        protocol: &str,
        from: Option<i32>,
        to: Option<i32>,
        peer: Peer,
        description: Option<&str>,
    ) -> Rule {
        let protocol = canonical_protocol(protocol);
        let all = protocol == "-1";
        Rule {
            from: if all { None } else { from },
            to: if all { None } else { to },
            protocol,
            peer,
            description: description.filter(|d| !d.is_empty()).map(String::from),
        }
    }

    /// What tells rules apart in AWS: everything but the description.
    fn same(&self, other: &Rule) -> bool {
        self.protocol == other.protocol
            && self.from == other.from
            && self.to == other.to
            && self.peer == other.peer
    }

    /// A rule object from the stack.
    fn parse(v: &Value, dir: Direction, op: &str) -> Result<Rule, DriverError> {
        let list = dir.property();
        let Value::Object(m) = v else {
            return Err(invalid(op, format!("{list}: each rule must be an object")));
        };
        let allowed = dir.keys();
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(
                op,
                format!(
                    "{list}: unsupported rule key {k}; a rule takes {}",
                    allowed.join(", ")
                ),
            ));
        }
        let protocol = match m.get("IpProtocol") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(invalid(op, format!("{list}: every rule needs IpProtocol"))),
        };
        let text = |k: &str| -> Result<Option<String>, DriverError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(op, format!("{list}: {k} must be a string"))),
            }
        };
        let port = |k: &str| -> Result<Option<i32>, DriverError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => i32_of(m, k)
                    .map(Some)
                    .ok_or_else(|| invalid(op, format!("{list}: {k} must be a number"))),
            }
        };
        let mut peers = Vec::new();
        if let Some(s) = text("CidrIp")? {
            peers.push(Peer::Cidr(s));
        }
        if let Some(s) = text("CidrIpv6")? {
            peers.push(Peer::Cidr6(s));
        }
        if let Some(s) = text(dir.group_key())? {
            peers.push(Peer::Group(s));
        }
        if let Some(s) = text(dir.prefix_key())? {
            peers.push(Peer::PrefixList(s));
        }
        if peers.len() != 1 {
            return Err(invalid(
                op,
                format!(
                    "{list}: each rule needs exactly one of CidrIp, CidrIpv6, {}, {}",
                    dir.group_key(),
                    dir.prefix_key()
                ),
            ));
        }
        Ok(Rule::new(
            &protocol,
            port("FromPort")?,
            port("ToPort")?,
            peers.remove(0),
            text("Description")?.as_deref(),
        ))
    }

    /// The rule object a stack would give for it.
    fn to_value(&self, dir: Direction) -> Value {
        let mut m = Map::new();
        m.insert("IpProtocol".into(), Value::String(self.protocol.clone()));
        if let Some(f) = self.from {
            m.insert("FromPort".into(), Value::from(f));
        }
        if let Some(t) = self.to {
            m.insert("ToPort".into(), Value::from(t));
        }
        let (k, v) = match &self.peer {
            Peer::Cidr(c) => ("CidrIp", c),
            Peer::Cidr6(c) => ("CidrIpv6", c),
            Peer::Group(g) => (dir.group_key(), g),
            Peer::PrefixList(p) => (dir.prefix_key(), p),
        };
        m.insert(k.into(), Value::String(v.clone()));
        if let Some(d) = &self.description {
            m.insert("Description".into(), Value::String(d.clone()));
        }
        Value::Object(m)
    }

    /// The permission AWS takes for it.
    fn permission(&self) -> IpPermission {
        let d = self.description.clone();
        let b = IpPermission::builder()
            .ip_protocol(self.protocol.as_str())
            .set_from_port(self.from)
            .set_to_port(self.to);
        let b = match &self.peer {
            Peer::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).set_description(d).build()),
            Peer::Cidr6(c) => {
                b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).set_description(d).build())
            }
            Peer::Group(g) => b.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(d)
                    .build(),
            ),
            Peer::PrefixList(p) => b.prefix_list_ids(
                PrefixListId::builder()
                    .prefix_list_id(p)
                    .set_description(d)
                    .build(),
            ),
        };
        b.build()
    }
}

/// The stack's rule list, if it gives one.
fn rules_of(p: &Props, dir: Direction) -> Result<Option<Vec<Rule>>, DriverError> {
    let op = dir.authorize_op();
    match p.get(dir.property()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| Rule::parse(v, dir, op))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(
            op,
            format!("{} must be a list of rules", dir.property()),
        )),
    }
}

/// The rule AWS gives every new group in a VPC, and CloudFormation restores
/// when a template stops giving egress rules.
fn allow_all_egress() -> Vec<Rule> {
    vec![Rule::new(
        "-1",
        None,
        None,
        Peer::Cidr("0.0.0.0/0".into()),
        None,
    )]
}

/// AWS's permissions flattened to one rule per range, group or prefix list.
fn flatten(perms: &[IpPermission]) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("-1");
        let (from, to) = (p.from_port(), p.to_port());
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.push(Rule::new(
                    proto,
                    from,
                    to,
                    Peer::Cidr(c.into()),
                    r.description(),
                ));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                out.push(Rule::new(
                    proto,
                    from,
                    to,
                    Peer::Cidr6(c.into()),
                    r.description(),
                ));
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.push(Rule::new(
                    proto,
                    from,
                    to,
                    Peer::Group(id.into()),
                    g.description(),
                ));
            }
        }
        for l in p.prefix_list_ids() {
            if let Some(id) = l.prefix_list_id() {
                out.push(Rule::new(
                    proto,
                    from,
                    to,
                    Peer::PrefixList(id.into()),
                    l.description(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The rules AWS holds as a rule list. A rule that means the same as one the
/// stack last applied is given in the stack's own spelling (`"6"` for `tcp`,
/// ports on an all-protocols rule), so that it compares equal.
fn observed_rules(actual: &[Rule], applied: Option<&Value>, dir: Direction) -> Value {
    let given: Vec<(Rule, &Value)> = match applied {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| Rule::parse(v, dir, "").ok().map(|r| (r, v)))
            .collect(),
        _ => Vec::new(),
    };
    Value::Array(
        actual
            .iter()
            .map(|r| {
                given
                    .iter()
                    .find(|(g, _)| g == r)
                    .map(|(_, v)| (*v).clone())
                    .unwrap_or_else(|| r.to_value(dir))
            })
            .collect(),
    )
}

fn attributes(id: &str, vpc: Option<&str>) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("GroupId".into(), Value::String(id.to_string()));
    if let Some(v) = vpc {
        a.insert("VpcId".into(), Value::String(v.to_string()));
    }
    a
}

/// The owner named by the ownership tags handed to a create.
fn owner_of(tags: &std::collections::BTreeMap<String, String>) -> Ownership {
    Ownership {
        stack: tags.get(TAG_STACK).cloned().unwrap_or_default(),
        env: tags.get(TAG_ENV).cloned().unwrap_or_default(),
    }
}

/// A name for a group whose stack gives none, as CloudFormation makes one:
/// stack, logical id and a suffix, here from the idempotency token so that a
/// retried create asks for the same name.
fn generated_name(req: &CreateRequest<'_>) -> String {
    let stack = req
        .tags
        .get(TAG_STACK)
        .map(String::as_str)
        .unwrap_or("fastcart");
    let env = req.tags.get(TAG_ENV).map(String::as_str).unwrap_or("");
    let suffix: String = req
        .idempotency_token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect::<String>()
        .to_ascii_uppercase();
    let mut name = format!("{stack}-{env}-{}-{suffix}", req.logical_id);
    // AWS reserves the "sg-" prefix for group ids.
    if name.to_ascii_lowercase().starts_with("sg-") {
        name = format!("fc-{name}");
    }
    name.chars().take(255).collect()
}

impl SecurityGroup {
    pub fn new(c: Arc<Clients>) -> Self {
        let schema = TypeSchema::new("AWS::EC2::SecurityGroup")
            .range("SecurityGroupIngress/*/FromPort", Some(-1.0), None)
            .range("SecurityGroupIngress/*/ToPort", Some(-1.0), None)
            .range("SecurityGroupEgress/*/FromPort", Some(-1.0), None)
            .range("SecurityGroupEgress/*/ToPort", Some(-1.0), None)
            // What AWS accepts, as its resource schema says (the conformance
            // test holds these against it).
            .length("GroupDescription", 0, 255)
            .pattern(
                "GroupDescription",
                r#"^([a-z,A-Z,0-9,. _\-:/()#,@[\]+=&;\{\}!$*])*$"#,
            )
            .identity("SecurityGroupIngress", RULE_IDENTITY)
            .identity("SecurityGroupEgress", RULE_IDENTITY)
            .guard("SecurityGroupIngress", fastcart_engine::Guard::Ingress)
            .required("GroupDescription")
            .create_only("GroupDescription")
            .fixed_name("GroupName")
            .create_only("VpcId")
            .kind("SecurityGroupIngress", ValueKind::UnorderedList)
            .kind("SecurityGroupEgress", ValueKind::UnorderedList)
            .kind("Tags", ValueKind::Tags)
            .id_attribute("GroupId")
            .attribute("VpcId")
            .typical_duration(Duration::from_secs(3))
            .deadlines(Duration::from_secs(120), Duration::from_secs(600));
        SecurityGroup { c, schema }
    }

    /// One group, or `None` when EC2 does not show it (yet, or any more).
    async fn describe(&self, id: &str) -> Result<Option<Group>, DriverError> {
        let out = self
            .c
            .ec2
            .describe_security_groups()
            .filters(filter("group-id", [id]))
            .send()
            .call(&self.c, id)
            .await?;
        Ok(out.security_groups().first().cloned())
    }

    /// The group a create made on an earlier attempt: same name, same VPC,
    /// carrying this resource's ownership tags.
    async fn earlier(
        &self,
        name: &str,
        vpc: Option<&str>,
        req: &CreateRequest<'_>,
    ) -> Result<Option<String>, DriverError> {
        let mut call = self
            .c
            .ec2
            .describe_security_groups()
            .filters(filter("group-name", [name]));
        if let Some(v) = vpc {
            call = call.filters(filter("vpc-id", [v]));
        }
        let out = call.send().call(&self.c, name).await?;
        let owner = owner_of(req.tags);
        Ok(out
            .security_groups()
            .iter()
            .find(|g| owned(g.tags(), &owner).as_deref() == Some(req.logical_id))
            .and_then(|g| g.group_id())
            .map(String::from))
    }

    /// Makes one rule list of a group what the stack asks for: authorizes
    /// what is missing first, so that traffic the stack keeps allowing never
    /// stops, then updates descriptions, then revokes what is left over.
    async fn reconcile(
        &self,
        id: &str,
        dir: Direction,
        desired: &[Rule],
        actual: &[Rule],
    ) -> Result<(), DriverError> {
        let mut wanted: Vec<&Rule> = Vec::new();
        for d in desired {
            if !wanted.iter().any(|w| w.same(d)) {
                wanted.push(d);
            }
        }
        let add: Vec<IpPermission> = wanted
            .iter()
            .filter(|d| !actual.iter().any(|a| a.same(d)))
            .map(|d| d.permission())
            .collect();
        let redescribe: Vec<IpPermission> = wanted
            .iter()
            .filter(|d| {
                actual
                    .iter()
                    .any(|a| a.same(d) && a.description != d.description)
            })
            .map(|d| d.permission())
            .collect();
        // Revoked as AWS reports them, descriptions included: moto matches a
        // group rule only with its description.
        let leftover: Vec<&Rule> = actual
            .iter()
            .filter(|a| !wanted.iter().any(|d| d.same(a)))
            .collect();
        let remove: Vec<IpPermission> = leftover.iter().map(|r| r.permission()).collect();
        if !add.is_empty() {
            let authorized = match dir {
                Ingress => self
                    .c
                    .ec2
                    .authorize_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(add))
                    .send()
                    .call(&self.c, id)
                    .await
                    .map(|_| ()),
                Egress => self
                    .c
                    .ec2
                    .authorize_security_group_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(add))
                    .send()
                    .call(&self.c, id)
                    .await
                    .map(|_| ()),
            };
            match authorized {
                // Already there (an earlier attempt whose answer was lost):
                // done, when what is there is exactly what was asked.
                Err(e) if e.is_code("InvalidPermission.Duplicate") => {
                    self.already_there(id, dir, &wanted, e).await?
                }
                other => other?,
            }
        }
        if !redescribe.is_empty() {
            match dir {
                Ingress => self
                    .c
                    .ec2
                    .update_security_group_rule_descriptions_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(redescribe))
                    .send()
                    .call(&self.c, id)
                    .await
                    .map(|_| ())?,
                Egress => self
                    .c
                    .ec2
                    .update_security_group_rule_descriptions_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(redescribe))
                    .send()
                    .call(&self.c, id)
                    .await
                    .map(|_| ())?,
            }
        }
        if !remove.is_empty() {
            let revoked = match dir {
                Ingress => self
                    .c
                    .ec2
                    .revoke_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(remove))
                    .send()
                    .call(&self.c, id)
                    .await
                    .map(|_| ()),
                Egress => self
                    .c
                    .ec2
                    .revoke_security_group_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(remove))
                    .send()
                    .call(&self.c, id)
                    .await
                    .map(|_| ()),
            };
            match revoked {
                // Already gone (a resend after a lost answer): done, when
                // none of the rules to remove is left.
                Err(e) if e.is_code("InvalidPermission.NotFound") => {
                    let now = self.rules_now(id, dir).await?;
                    if leftover.iter().any(|r| now.iter().any(|a| a.same(r))) {
                        return Err(e);
                    }
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// The rules of one list of a group as AWS has them now (none when the
    /// group is gone).
    async fn rules_now(&self, id: &str, dir: Direction) -> Result<Vec<Rule>, DriverError> {
        Ok(self
            .describe(id)
            .await?
            .map(|g| {
                flatten(match dir {
                    Ingress => g.ip_permissions(),
                    Egress => g.ip_permissions_egress(),
                })
            })
            .unwrap_or_default())
    }

    /// After AWS answered that a rule it was asked to add is a duplicate:
    /// success when every rule the stack wants is now in the group, else the
    /// error, naming the rules still missing.
    async fn already_there(
        &self,
        id: &str,
        dir: Direction,
        wanted: &[&Rule],
        duplicate: DriverError,
    ) -> Result<(), DriverError> {
        let now = self.rules_now(id, dir).await?;
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !now.iter().any(|a| a.same(w)))
            .map(|w| w.to_value(dir).to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(DriverError {
            message: format!(
                "{}; these rules are still missing: {}",
                duplicate.message,
                missing.join(", ")
            ),
            ..duplicate
        })
    }

    /// Reconciles the rule lists given (`None`: left as they are).
    async fn apply_rules(
        &self,
        id: &str,
        group: &Group,
        ingress: Option<&[Rule]>,
        egress: Option<&[Rule]>,
    ) -> Result<(), DriverError> {
        if let Some(want) = ingress {
            self.reconcile(id, Ingress, want, &flatten(group.ip_permissions()))
                .await?;
        }
        if let Some(want) = egress {
            self.reconcile(id, Egress, want, &flatten(group.ip_permissions_egress()))
                .await?;
        }
        Ok(())
    }

    async fn delete_once(&self, id: &str) -> Result<(), DriverError> {
        self.c
            .ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .call(&self.c, id)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Driver for SecurityGroup {
    fn schema(&self) -> &TypeSchema {
        &self.schema
    }

    async fn read(&self, handles: &[ResourceHandle]) -> Result<Vec<Option<Observed>>, DriverError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = handles.iter().map(|h| h.physical_id.as_str()).collect();
        let groups: HashMap<String, Group> = super::by_ids!(
            self.c,
            &ids,
            describe_security_groups,
            filters("group-id"),
            security_groups,
            group_id
        )
        .await?;
        Ok(handles
            .iter()
            .map(|h| {
                let g = groups.get(&h.physical_id)?;
                let ingress = observed_rules(
                    &flatten(g.ip_permissions()),
                    h.properties.get(Ingress.property()),
                    Ingress,
                );
                let egress = observed_rules(
                    &flatten(g.ip_permissions_egress()),
                    h.properties.get(Egress.property()),
                    Egress,
                );
                Some(
                    Obs::new()
                        .prop("GroupDescription", g.description())
                        .prop("GroupName", g.group_name())
                        .prop("VpcId", g.vpc_id())
                        .prop(Ingress.property(), Some(ingress))
                        .prop(Egress.property(), Some(egress))
                        .prop("Tags", Some(tags_of(g.tags())))
                        .attr("GroupId", g.group_id())
                        .attr("VpcId", g.vpc_id())
                        .done(),
                )
            })
            .collect())
    }

    async fn create(&self, req: CreateRequest<'_>) -> Result<Created, DriverError> {
        let op = "ec2:CreateSecurityGroup";
        let p = req.properties;
        let description = need_str(p, "GroupDescription", op)?;
        let ingress = rules_of(p, Ingress)?;
        let egress = rules_of(p, Egress)?;
        let name = match str_of(p, "GroupName") {
            Some(n) => n.to_string(),
            None => generated_name(&req),
        };
        let vpc = str_of(p, "VpcId");
        let made = self
            .c
            .ec2
            .create_security_group()
            .group_name(&name)
            .description(description)
            .set_vpc_id(vpc.map(String::from))
            .tag_specifications(tag_spec(
                ResourceType::SecurityGroup,
                &all_tags(p, req.tags),
            ))
            .send()
            .call(&self.c, req.logical_id)
            .await;
        let id = match made {
            Ok(out) => out.group_id().unwrap_or_default().to_string(),
            // An earlier attempt made it (its answer was lost): adopt it.
            Err(e) if e.is_code("InvalidGroup.Duplicate") => {
                match self.earlier(&name, vpc, &req).await? {
                    Some(id) => id,
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        // EC2 is eventually consistent: rules authorized right after the
        // create may not find the group yet.
        let group = wait::until(
            "ec2:DescribeSecurityGroups",
            &format!("{id} to be visible"),
            self.schema.deadlines.ready,
            || async { self.describe(&id).await },
        )
        .await?;
        if let Err(e) = self
            .apply_rules(&id, &group, ingress.as_deref(), egress.as_deref())
            .await
        {
            // Leave no half-made group behind: a retry makes it whole again,
            // and a fixed GroupName would otherwise be taken. When a rule's
            // answer was lost the group stays: the engine finds it by its
            // tags, adopts it and finishes its rules.
            if e.kind != ErrorKind::OutcomeUnknown {
                let _ = self.delete_once(&id).await;
            }
            return Err(e);
        }
        Ok(Created {
            attributes: attributes(&id, group.vpc_id()),
            physical_id: id,
        })
    }

    async fn update(&self, req: UpdateRequest<'_>) -> Result<Map<String, Value>, DriverError> {
        let id = req.physical_id;
        let changed = |name: &str| crate::props::changed(&req, name);
        let group = self.describe(id).await?.ok_or_else(|| {
            DriverError::new(
                ErrorKind::NotFound,
                "ec2:DescribeSecurityGroups",
                format!("{id}: the security group is gone"),
            )
        })?;
        // A list the stack no longer gives goes back to what AWS starts a
        // group with: no ingress, allow-all egress.
        let ingress = if changed(Ingress.property()) {
            Some(rules_of(req.properties, Ingress)?.unwrap_or_default())
        } else {
            None
        };
        let egress = if changed(Egress.property()) {
            Some(rules_of(req.properties, Egress)?.unwrap_or_else(allow_all_egress))
        } else {
            None
        };
        self.apply_rules(id, &group, ingress.as_deref(), egress.as_deref())
            .await?;
        sync_tags(&self.c, &req).await?;
        Ok(attributes(id, group.vpc_id()))
    }

    async fn delete(&self, h: &ResourceHandle) -> Result<(), DriverError> {
        let id = h.physical_id.as_str();
        // Network interfaces of deleted tasks, databases and caches let go
        // of a group minutes after those are gone.
        wait::deleted(self.schema.deadlines.gone, || self.delete_once(id)).await
    }

    /// By its VPC and its group name when the stack fixes one, else the
    /// stack's `Name` tag (a name AWS picked, such as Pulumi's
    /// `web-sg-1a2b3c4`, is no key).
    async fn find_by_key(&self, q: &KeyQuery<'_>) -> Result<Option<Vec<Candidate>>, DriverError> {
        let Some(vpc) = crate::key::given(q, "VpcId") else {
            return Ok(None);
        };
        let group_name = crate::key::given(q, "GroupName");
        let name = crate::key::name_tag(q);
        let mut filters = vec![filter("vpc-id", [vpc])];
        let key = match (group_name, &name) {
            (Some(g), _) => {
                filters.push(filter("group-name", [g]));
                super::key_text(&[("VpcId", Some(vpc)), ("GroupName", Some(g))])
            }
            (None, Some(n)) => {
                filters.extend(super::name_filters(Some(n)));
                super::key_text(&[("VpcId", Some(vpc)), ("Name", Some(n))])
            }
            (None, None) => return Ok(None),
        };
        let ids = super::matching!(
            self.c,
            describe_security_groups(set_filters),
            filters,
            security_groups,
            group_id,
            "security groups by key",
            |g: &aws_sdk_ec2::types::SecurityGroup| match group_name {
                Some(wanted) => g.group_name() == Some(wanted),
                None => super::has_tag(g.tags(), "Name", name.as_deref()),
            }
        );
        crate::key::candidates(self, q, ids, &key).await.map(Some)
    }

    async fn find_by_tags(&self, owner: &Ownership) -> Result<Vec<Found>, DriverError> {
        let mut found = Vec::new();
        let mut pages = self
            .c
            .ec2
            .describe_security_groups()
            .set_filters(Some(owner_filters(owner)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.op("security groups by tag")?;
            found.extend(super::found(
                page.security_groups(),
                owner,
                aws_sdk_ec2::types::SecurityGroup::tags,
                aws_sdk_ec2::types::SecurityGroup::group_id,
            ));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::Direction::{Egress, Ingress};
    use super::*;
    use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};
    use serde_json::json;

    #[test]
    fn rules_parse_to_a_canonical_form() {
        let a = Rule::parse(
            &json!({"IpProtocol": -1, "FromPort": -1, "ToPort": -1, "CidrIp": "0.0.0.0/0"}),
            Egress,
            "op",
        )
        .unwrap();
        assert_eq!(a, allow_all_egress()[0]);
        let b = Rule::parse(
            &json!({"IpProtocol": "6", "FromPort": "8080", "ToPort": 8080, "SourceSecurityGroupId": "sg-1", "Description": ""}),
            Ingress,
            "op",
        )
        .unwrap();
        assert_eq!(b.protocol, "tcp");
        assert_eq!((b.from, b.to), (Some(8080), Some(8080)));
        assert_eq!(b.peer, Peer::Group("sg-1".into()));
        assert_eq!(b.description, None);
        assert_eq!(
            b.to_value(Ingress),
            json!({"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "SourceSecurityGroupId": "sg-1"})
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            json!({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1}),
            json!({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIp": "10.0.0.0/8", "SourceSecurityGroupId": "sg-1"}),
            json!({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIp": "10.0.0.0/8", "Bogus": 1}),
            json!({"FromPort": 1, "ToPort": 1, "CidrIp": "10.0.0.0/8"}),
        ] {
            assert!(Rule::parse(&bad, Ingress, "op").is_err(), "{bad}");
        }
        // Egress names the peer group differently.
        assert!(Rule::parse(
            &json!({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "SourceSecurityGroupId": "sg-1"}),
            Egress,
            "op"
        )
        .is_err());
    }

    #[test]
    fn permissions_flatten_to_one_rule_per_peer_in_the_stack_spelling() {
        let perm = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(5432)
            .to_port(5432)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip("10.1.0.0/16")
                    .description("vpn")
                    .build(),
            )
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-9").build())
            .build();
        let rules = flatten(&[perm]);
        assert_eq!(rules.len(), 3);
        let applied =
            json!([{"IpProtocol": 6, "FromPort": 5432, "ToPort": 5432, "CidrIp": "10.0.0.0/16"}]);
        let seen = observed_rules(&rules, Some(&applied), Ingress);
        let seen = seen.as_array().unwrap();
        assert!(seen.contains(&applied[0]), "{seen:?}");
        assert!(seen.contains(&json!({"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIp": "10.1.0.0/16", "Description": "vpn"})));
        assert!(seen.contains(&json!({"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "SourceSecurityGroupId": "sg-9"})));
        let all = flatten(&[IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()]);
        assert_eq!(
            observed_rules(&all, None, Egress),
            json!([{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}])
        );
    }
}
