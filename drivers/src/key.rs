//! Natural keys: how each driver finds an object by what identifies it in
//! the stack (its name, or its network and CIDR block), whoever made it, for
//! `fastcart import` ([`fastcart_engine::Driver::find_by_key`]). A driver
//! lists the ids its key matches with the service's own Describe (never the
//! tagging API, which misses some types), and [`candidates`] reads them
//! back through the driver's `read`, so a candidate is observed exactly as a
//! plan will observe it.

use std::future::Future;

use fastcart_engine::{Candidate, Driver, DriverError, KeyQuery, ResourceHandle};
use serde_json::Value;

use crate::props::tag_map;

/// The value of `prop` the stack gives, when it resolved.
pub fn given<'a>(q: &'a KeyQuery<'_>, prop: &str) -> Option<&'a str> {
    q.properties.get(prop).and_then(Value::as_str)
}

/// The stack's `Name` tag for the resource.
pub fn name_tag(q: &KeyQuery<'_>) -> Option<String> {
    tag_map(q.properties).remove("Name")
}

/// The objects `ids` that `driver` reads as existing, found by `key`.
pub async fn candidates<D: Driver + ?Sized>(
    driver: &D,
    q: &KeyQuery<'_>,
    ids: impl IntoIterator<Item = String>,
    key: &str,
) -> Result<Vec<Candidate>, DriverError> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let handles: Vec<ResourceHandle> = ids
        .into_iter()
        .map(|physical_id| ResourceHandle {
            logical_id: q.logical_id.to_string(),
            physical_id,
            properties: q.properties.clone(),
            attributes: Default::default(),
        })
        .collect();
    let seen = driver.read(&handles).await?;
    Ok(handles
        .into_iter()
        .zip(seen)
        .filter_map(|(h, o)| {
            let observed = o?;
            Some(Candidate {
                physical_id: h.physical_id,
                tags: tag_map(&observed.properties),
                observed,
                key: key.to_string(),
            })
        })
        .collect())
}

/// The object named by the stack's `prop`, under the physical id `id_of`
/// makes of the name (RDS and ElastiCache keep ids in lower case). `None`
/// when the stack gives no name.
pub async fn by_name<D: Driver + ?Sized>(
    driver: &D,
    q: &KeyQuery<'_>,
    prop: &str,
    id_of: impl Fn(&str) -> String,
) -> Result<Option<Vec<Candidate>>, DriverError> {
    let Some(name) = given(q, prop) else {
        return Ok(None);
    };
    let key = format!("{prop}={name}");
    candidates(driver, q, [id_of(name)], &key).await.map(Some)
}

/// The objects named by the stack's `prop`, whose ids (ARNs) `lookup`
/// finds by that name with the service's Describe; a name the service
/// does not know is no candidate. `None` when the stack gives no name.
pub async fn looked_up<D, F>(
    driver: &D,
    q: &KeyQuery<'_>,
    prop: &str,
    lookup: impl FnOnce(String) -> F,
) -> Result<Option<Vec<Candidate>>, DriverError>
where
    D: Driver + ?Sized,
    F: Future<Output = Result<Vec<String>, DriverError>>,
{
    let Some(name) = given(q, prop) else {
        return Ok(None);
    };
    let ids = match lookup(name.to_string()).await {
        Ok(ids) => ids,
        Err(e) if crate::error::is_gone(&e) => Vec::new(),
        Err(e) => return Err(e),
    };
    candidates(driver, q, ids, &format!("{prop}={name}"))
        .await
        .map(Some)
}
