//! Container definitions: CloudFormation's PascalCase objects and the SDK's types, both ways.

use super::*;

pub(super) const CONTAINER_KEYS: &[&str] = &[
    "Name",
    "Image",
    "Essential",
    "Cpu",
    "Memory",
    "MemoryReservation",
    "PortMappings",
    "Environment",
    "Secrets",
    "LogConfiguration",
    "Command",
    "EntryPoint",
    "HealthCheck",
    "WorkingDirectory",
    "User",
    "ReadonlyRootFilesystem",
    "StopTimeout",
    "StartTimeout",
    "DependsOn",
];

pub(super) fn container_definition(
    v: &Value,
    op: &str,
) -> Result<ContainerDefinition, DriverError> {
    let o = obj(v, "each of ContainerDefinitions", op)?;
    let name = need(o, "Name", "ContainerDefinitions[]", op)?;
    let what = format!("ContainerDefinitions[{name}]");
    let what = what.as_str();
    only_keys(o, CONTAINER_KEYS, what, op)?;
    let mut b = ContainerDefinition::builder()
        .name(name)
        .image(need(o, "Image", what, op)?)
        .set_essential(flag(o, "Essential", what, op)?)
        .set_cpu(num(o, "Cpu", what, op)?)
        .set_memory(num(o, "Memory", what, op)?)
        .set_memory_reservation(num(o, "MemoryReservation", what, op)?)
        .set_command(texts(o, "Command", what, op)?)
        .set_entry_point(texts(o, "EntryPoint", what, op)?)
        .set_working_directory(text(o, "WorkingDirectory", what, op)?.map(String::from))
        .set_user(text(o, "User", what, op)?.map(String::from))
        .set_readonly_root_filesystem(flag(o, "ReadonlyRootFilesystem", what, op)?)
        .set_stop_timeout(num(o, "StopTimeout", what, op)?)
        .set_start_timeout(num(o, "StartTimeout", what, op)?)
        .set_secrets(secrets(o, "Secrets", what, op)?);
    if given(o, "PortMappings").is_some() {
        let w = format!("{what}.PortMappings[]");
        let mut ports = Vec::new();
        for p in list(o, "PortMappings", what, op)? {
            let p = obj(p, &w, op)?;
            only_keys(
                p,
                &[
                    "ContainerPort",
                    "HostPort",
                    "Protocol",
                    "Name",
                    "AppProtocol",
                    "ContainerPortRange",
                ],
                &w,
                op,
            )?;
            ports.push(
                PortMapping::builder()
                    .set_container_port(num(p, "ContainerPort", &w, op)?)
                    .set_host_port(num(p, "HostPort", &w, op)?)
                    .set_protocol(text(p, "Protocol", &w, op)?.map(TransportProtocol::from))
                    .set_name(text(p, "Name", &w, op)?.map(String::from))
                    .set_app_protocol(
                        text(p, "AppProtocol", &w, op)?.map(ApplicationProtocol::from),
                    )
                    .set_container_port_range(
                        text(p, "ContainerPortRange", &w, op)?.map(String::from),
                    )
                    .build(),
            );
        }
        b = b.set_port_mappings(Some(ports));
    }
    if let Some(env) = pairs(o, "Environment", "Value", what, op)? {
        b = b.set_environment(Some(
            env.into_iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ));
    }
    if let Some(lc) = given(o, "LogConfiguration") {
        let w = format!("{what}.LogConfiguration");
        let lc = obj(lc, &w, op)?;
        only_keys(lc, &["LogDriver", "Options", "SecretOptions"], &w, op)?;
        let options = match given(lc, "Options") {
            None => None,
            Some(Value::Object(m)) => Some(
                m.iter()
                    .map(|(k, v)| {
                        scalar(v)
                            .map(|v| (k.clone(), v))
                            .ok_or_else(|| invalid(op, format!("{w}.Options.{k} must be a string")))
                    })
                    .collect::<Result<HashMap<String, String>, DriverError>>()?,
            ),
            Some(_) => return Err(invalid(op, format!("{w}.Options must be an object"))),
        };
        b = b.log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::from(need(lc, "LogDriver", &w, op)?))
                .set_options(options)
                .set_secret_options(secrets(lc, "SecretOptions", &w, op)?)
                .build()
                .map_err(|e| invalid(op, format!("{w}: {e}")))?,
        );
    }
    if let Some(hc) = given(o, "HealthCheck") {
        let w = format!("{what}.HealthCheck");
        let hc = obj(hc, &w, op)?;
        only_keys(
            hc,
            &["Command", "Interval", "Timeout", "Retries", "StartPeriod"],
            &w,
            op,
        )?;
        b = b.health_check(
            HealthCheck::builder()
                .set_command(texts(hc, "Command", &w, op)?)
                .set_interval(num(hc, "Interval", &w, op)?)
                .set_timeout(num(hc, "Timeout", &w, op)?)
                .set_retries(num(hc, "Retries", &w, op)?)
                .set_start_period(num(hc, "StartPeriod", &w, op)?)
                .build()
                .map_err(|e| invalid(op, format!("{w}: {e}")))?,
        );
    }
    if given(o, "DependsOn").is_some() {
        let w = format!("{what}.DependsOn[]");
        let mut deps = Vec::new();
        for d in list(o, "DependsOn", what, op)? {
            let d = obj(d, &w, op)?;
            only_keys(d, &["ContainerName", "Condition"], &w, op)?;
            deps.push(
                ContainerDependency::builder()
                    .container_name(need(d, "ContainerName", &w, op)?)
                    .condition(ContainerCondition::from(need(d, "Condition", &w, op)?))
                    .build()
                    .map_err(|e| invalid(op, format!("{w}: {e}")))?,
            );
        }
        b = b.set_depends_on(Some(deps));
    }
    Ok(b.build())
}

pub(super) fn secrets_json(secrets: &[Secret]) -> Value {
    Value::Array(
        secrets
            .iter()
            .map(|s| json!({"Name": s.name(), "ValueFrom": s.value_from()}))
            .collect(),
    )
}

/// What AWS reports about a container, in CloudFormation's shape. Numbers
/// stay numbers; lists are always present (AWS reports empty ones).
/// ECS does not keep the order of a container's environment variables and
/// secrets: lists them in the order the stack gave them (matched by name,
/// container by container), so the same set reads back equal. Entries the
/// stack did not give go last, so a variable added behind fastcart's back is
/// still a difference.
pub(super) fn in_given_order(seen: &mut Value, given: &Value) {
    let (Value::Array(seen), Value::Array(given)) = (seen, given) else {
        return;
    };
    for container in seen.iter_mut() {
        let name = container.get("Name").cloned();
        let Some(wanted) = given.iter().find(|g| g.get("Name") == name.as_ref()) else {
            continue;
        };
        for key in ["Environment", "Secrets"] {
            let order: Vec<&Value> = match wanted.get(key) {
                Some(Value::Array(items)) => items.iter().filter_map(|i| i.get("Name")).collect(),
                _ => continue,
            };
            if let Some(Value::Array(items)) = container.get_mut(key) {
                items.sort_by_key(|i| {
                    i.get("Name")
                        .and_then(|n| order.iter().position(|o| *o == n))
                        .unwrap_or(usize::MAX)
                });
            }
        }
    }
}

pub(super) fn container_json(c: &ContainerDefinition) -> Value {
    let mut o = Map::new();
    put(&mut o, "Name", c.name());
    put(&mut o, "Image", c.image());
    put(&mut o, "Essential", c.essential());
    o.insert("Cpu".into(), c.cpu().into());
    put(&mut o, "Memory", c.memory());
    put(&mut o, "MemoryReservation", c.memory_reservation());
    o.insert(
        "PortMappings".into(),
        Value::Array(
            c.port_mappings()
                .iter()
                .map(|p| {
                    let mut m = Map::new();
                    put(&mut m, "ContainerPort", p.container_port());
                    put(&mut m, "HostPort", p.host_port());
                    put(&mut m, "Protocol", p.protocol().map(|x| x.as_str()));
                    put(&mut m, "Name", p.name());
                    put(&mut m, "AppProtocol", p.app_protocol().map(|x| x.as_str()));
                    put(&mut m, "ContainerPortRange", p.container_port_range());
                    Value::Object(m)
                })
                .collect(),
        ),
    );
    o.insert(
        "Environment".into(),
        Value::Array(
            c.environment()
                .iter()
                .map(|e| {
                    json!({
                        "Name": e.name().unwrap_or_default(),
                        "Value": e.value().unwrap_or_default(),
                    })
                })
                .collect(),
        ),
    );
    o.insert("Secrets".into(), secrets_json(c.secrets()));
    if let Some(lc) = c.log_configuration() {
        let mut m = Map::new();
        m.insert("LogDriver".into(), lc.log_driver().as_str().into());
        if let Some(options) = lc.options() {
            m.insert(
                "Options".into(),
                Value::Object(
                    options
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ),
            );
        }
        if !lc.secret_options().is_empty() {
            m.insert("SecretOptions".into(), secrets_json(lc.secret_options()));
        }
        o.insert("LogConfiguration".into(), Value::Object(m));
    }
    o.insert("Command".into(), Value::from(c.command().to_vec()));
    o.insert("EntryPoint".into(), Value::from(c.entry_point().to_vec()));
    if let Some(hc) = c.health_check() {
        let mut m = Map::new();
        m.insert("Command".into(), Value::from(hc.command().to_vec()));
        put(&mut m, "Interval", hc.interval());
        put(&mut m, "Timeout", hc.timeout());
        put(&mut m, "Retries", hc.retries());
        put(&mut m, "StartPeriod", hc.start_period());
        o.insert("HealthCheck".into(), Value::Object(m));
    }
    put(&mut o, "WorkingDirectory", c.working_directory());
    put(&mut o, "User", c.user());
    put(
        &mut o,
        "ReadonlyRootFilesystem",
        c.readonly_root_filesystem(),
    );
    put(&mut o, "StopTimeout", c.stop_timeout());
    put(&mut o, "StartTimeout", c.start_timeout());
    o.insert(
        "DependsOn".into(),
        Value::Array(
            c.depends_on()
                .iter()
                .map(|d| {
                    json!({
                        "ContainerName": d.container_name(),
                        "Condition": d.condition().as_str(),
                    })
                })
                .collect(),
        ),
    );
    Value::Object(o)
}
