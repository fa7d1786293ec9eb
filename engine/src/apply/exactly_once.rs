//! Creates sent exactly once: after a failure that may have made something,
//! look for it and adopt it instead of sending the create again.

use super::*;

impl Shared {
    /// Sends a create so that it takes effect at most once. A create that
    /// failed in a way that may have made something (no answer, a 5xx or a
    /// throttle, or a name already taken) is never sent again blindly: first
    /// [`Shared::made_by_us`] looks for what it made, and that is adopted.
    /// Only when nothing was made is the create sent again. Returns the
    /// created object and, when it was adopted, a note and what AWS reports.
    pub(super) async fn create_exactly_once(
        &self,
        driver: &dyn Driver,
        step: &Step,
        props: &Map<String, Value>,
        tags: &BTreeMap<String, String>,
        token: &str,
    ) -> std::result::Result<(Created, Option<(String, Observed)>), DriverError> {
        let mut backoff = self.backoff();
        loop {
            let request = CreateRequest {
                logical_id: &step.logical_id,
                properties: props,
                tags,
                idempotency_token: token,
                context: &self.ctx,
            };
            let e = match cancel::scope(self.opts.cancel.clone(), driver.create(request)).await {
                Ok(created) => return Ok((created, None)),
                Err(e) => e,
            };
            if e.may_have_created() {
                match self.made_by_us(driver, step, props).await {
                    Ok(Some((created, seen))) => {
                        let note = format!("adopted what an earlier attempt made ({e})");
                        return Ok((created, Some((note, seen))));
                    }
                    Ok(None) if e.kind == ErrorKind::AlreadyExists => {
                        let why = if driver.schema().taggable {
                            "what holds the name does not carry this resource's fastcart \
                             ownership tags"
                        } else {
                            "what is there is not what this resource asks for"
                        };
                        return Err(DriverError {
                            message: format!(
                                "{}; {why}: take it over with `fastcart import` if it is this \
                                 resource made by another tool, else delete or rename it, or \
                                 deploy under another --env",
                                e.message
                            ),
                            kind: ErrorKind::InvalidRequest,
                            ..e
                        });
                    }
                    // Nothing was made: sending it again is safe.
                    Ok(None) => {}
                    Err(check) => {
                        return Err(DriverError {
                            message: format!(
                                "{}; could not check whether it made something ({check}), so it \
                                 was not sent again: run `fastcart apply` again, which finds what \
                                 it made by its ownership tags",
                                e.message
                            ),
                            ..e
                        })
                    }
                }
            }
            if !(e.is_retryable() && backoff.pause().await) {
                return Err(e);
            }
        }
    }

    /// What an earlier attempt of this create made: the object carrying
    /// this resource's ownership tags that the state does not already hold,
    /// read back through the driver. It is looked for by the resource's
    /// natural key first, as `fastcart import` looks (the service's own
    /// Describe sees a fresh create at once), then by the ownership tags
    /// (names AWS picked, types without a key). Types without tags answer
    /// `None`: their drivers look for an identical object before they
    /// create, so sending the create again is itself the lookup.
    pub(super) async fn made_by_us(
        &self,
        driver: &dyn Driver,
        step: &Step,
        props: &Map<String, Value>,
    ) -> std::result::Result<Option<(Created, Observed)>, DriverError> {
        if !driver.schema().taggable {
            return Ok(None);
        }
        let known: Vec<String> = {
            let b = self.book.lock().expect("book lock");
            b.state
                .resources
                .get(&step.logical_id)
                .map(|r| r.physical_ids().map(String::from).collect())
                .unwrap_or_default()
        };
        let query = KeyQuery {
            logical_id: &step.logical_id,
            properties: props,
            context: &self.ctx,
        };
        let by_key = cancel::scope(self.opts.cancel.clone(), driver.find_by_key(&query)).await?;
        let mut ours: Vec<Candidate> = by_key
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !known.contains(&c.physical_id))
            .filter(|c| self.owner.made(&c.tags, &step.logical_id))
            .collect();
        ours.sort_by(|a, b| a.physical_id.cmp(&b.physical_id));
        if let Some(c) = ours.into_iter().next() {
            let created = Created {
                physical_id: c.physical_id,
                attributes: c.observed.attributes.clone(),
            };
            return Ok(Some((created, c.observed)));
        }
        let found =
            cancel::scope(self.opts.cancel.clone(), driver.find_by_tags(&self.owner)).await?;
        // Every candidate, read at once: a tag search can still list objects
        // being deleted. The first live one (by id, as `recover` picks) is
        // adopted; any other live one is a twin the next plan deletes.
        let mut handles: Vec<ResourceHandle> = found
            .into_iter()
            .filter(|f| f.logical_id == step.logical_id && !known.contains(&f.physical_id))
            .map(|f| ResourceHandle {
                logical_id: step.logical_id.clone(),
                physical_id: f.physical_id,
                properties: Map::new(),
                attributes: Default::default(),
            })
            .collect();
        if handles.is_empty() {
            return Ok(None);
        }
        handles.sort_by(|a, b| a.physical_id.cmp(&b.physical_id));
        let seen = driver.read(&handles).await?;
        Ok(handles.into_iter().zip(seen).find_map(|(h, o)| {
            let o = o?;
            Some((
                Created {
                    physical_id: h.physical_id,
                    attributes: o.attributes.clone(),
                },
                o,
            ))
        }))
    }

    /// Brings an adopted object to what the stack asks: a create cut short
    /// after its first call (the object exists, a later call of the same
    /// create got no answer) is finished by an update of the properties
    /// that differ. Create-only properties are what the first call sent, so
    /// they are not compared.
    pub(super) async fn converge(
        &self,
        driver: &dyn Driver,
        step: &Step,
        props: &Map<String, Value>,
        created: &Created,
        seen: &Observed,
    ) -> std::result::Result<Created, DriverError> {
        // Made by a call whose answer was lost: it may still be on its way
        // (a database "creating"), and what depends on it needs it ready,
        // with the attributes it has then (an endpoint).
        let handle = ResourceHandle {
            logical_id: step.logical_id.clone(),
            physical_id: created.physical_id.clone(),
            properties: props.clone(),
            attributes: created.attributes.clone(),
        };
        let mut created = created.clone();
        if let Some(attributes) =
            cancel::scope(self.opts.cancel.clone(), driver.ready(&handle)).await?
        {
            created.attributes.extend(attributes);
        }
        let created = &created;
        let schema = driver.schema();
        let initial_only = self.initial_only(&step.logical_id);
        let changed: Vec<String> = props
            .iter()
            .filter(|(name, _)| !initial_only.contains(name))
            .filter(|(name, desired)| {
                let p = schema.property(name).cloned().unwrap_or_default();
                !p.write_only
                    && !p.create_only
                    && !crate::compare::satisfies(desired, seen.properties.get(*name), p.kind)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if changed.is_empty() {
            return Ok(created.clone());
        }
        let tags = self.owner.tags_for(&step.logical_id, &self.stack.tags);
        let attributes = self
            .retrying(|| {
                driver.update(UpdateRequest {
                    logical_id: &step.logical_id,
                    physical_id: &created.physical_id,
                    properties: props,
                    previous: &seen.properties,
                    changed: &changed,
                    tags: &tags,
                    context: &self.ctx,
                })
            })
            .await?;
        let mut all = created.attributes.clone();
        all.extend(attributes);
        Ok(Created {
            physical_id: created.physical_id.clone(),
            attributes: all,
        })
    }
}
