//! One step of a plan as cloud calls: journaled, retried by one loop, and
//! reported.

use super::*;

impl Shared {
    pub(super) fn journal(&self, mut e: Entry) -> std::result::Result<(), String> {
        {
            let mut b = self.book.lock().expect("book lock");
            if self.journal_failed.load(Ordering::SeqCst) {
                return Err(
                    "the journal could not be written, so the request was not sent: \
                            free disk space or fix permissions in the state directory, then run \
                            `fastcart apply` again"
                        .into(),
                );
            }
            e.seq = b.state.journal_seq + 1;
            e.at_ms = now_ms();
            e.lineage = b.state.lineage.clone();
            if let Err(err) = b.journal.append(&e) {
                self.journal_failed.store(true, Ordering::SeqCst);
                return Err(format!("{err}; the request was not sent"));
            }
            b.state.record(&e);
            // Under the same lock, so the persister sees the journal's order.
            self.persister.send(Persist::Entry(Box::new(e)));
        }
        Ok(())
    }

    pub(super) fn emit(&self, e: ApplyEvent) {
        if let Some(f) = &self.opts.on_event {
            f(&e);
        }
    }

    /// The engine's one retry loop for a step's call. It retries what
    /// [`DriverError::is_retryable`] allows (calls the SDK did not already
    /// retry), with backoff, until the attempts run out or the user cancels;
    /// every call runs in the apply's cancellation scope, so a driver's waits
    /// stop at Ctrl-C too.
    pub(super) async fn retrying<T, F, Fut>(&self, call: F) -> std::result::Result<T, DriverError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, DriverError>>,
    {
        let mut backoff = self.backoff();
        loop {
            match cancel::scope(self.opts.cancel.clone(), call()).await {
                Err(e) if e.is_retryable() && backoff.pause().await => {}
                other => return other,
            }
        }
    }

    pub(super) fn backoff(&self) -> Backoff {
        Backoff {
            delay: self.opts.retry_base,
            attempt: 1,
            max_attempts: self.opts.max_attempts,
            cancel: self.opts.cancel.clone(),
        }
    }

    pub(super) async fn run(self: Arc<Self>, t: usize) -> std::result::Result<(), String> {
        let task = self.tasks[t];
        let step = &self.plan.steps[task.step];
        if self.journal_failed.load(Ordering::SeqCst) {
            // Nothing may be sent that the journal cannot record.
            return Err("not started: the journal could not be written".into());
        }
        self.emit(ApplyEvent::Started {
            logical_id: step.logical_id.clone(),
            type_name: step.type_name.clone(),
            operation: task.op,
        });
        let start = tokio::time::Instant::now();
        let result = match task.op {
            Operation::Create | Operation::CreateReplacement => self.create(step).await,
            Operation::Update => self.update(step).await,
            Operation::Delete | Operation::DeleteReplaced => self.delete(step).await,
        };
        let physical_id = match (&result, task.op) {
            (Ok(pid), _) => pid.clone(),
            _ => step.physical_id.clone(),
        };
        self.emit(ApplyEvent::Finished {
            logical_id: step.logical_id.clone(),
            type_name: step.type_name.clone(),
            operation: task.op,
            physical_id,
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
            elapsed: start.elapsed(),
        });
        result.map(|_| ())
    }

    fn spec(&self, logical_id: &str) -> Option<&crate::ResourceSpec> {
        self.specs
            .get(logical_id)
            .map(|&i| &self.stack.resources[i])
    }

    /// The properties the stack sets for `logical_id`'s creation only.
    pub(super) fn initial_only(&self, logical_id: &str) -> Vec<String> {
        self.spec(logical_id)
            .map(|r| r.initial_only.clone())
            .unwrap_or_default()
    }

    pub(super) fn resolved(
        &self,
        step: &Step,
    ) -> std::result::Result<(Map<String, Value>, Vec<String>), String> {
        let spec = self
            .spec(&step.logical_id)
            .ok_or_else(|| format!("{} is not in the stack", step.logical_id))?;
        let b = self.book.lock().expect("book lock");
        let props = resolve_map(&spec.properties, &self.ctx, &b.state).map_err(|e| match e {
            Unresolved::KnownAfterApply(ids) => format!(
                "needs {} which did not get created",
                ids.into_iter().collect::<Vec<_>>().join(", ")
            ),
            Unresolved::Invalid(m) => m,
        })?;
        let deps = self
            .deps_of
            .get(&step.logical_id)
            .cloned()
            .unwrap_or_default();
        Ok((props, deps))
    }

    pub(super) async fn create(&self, step: &Step) -> std::result::Result<Option<String>, String> {
        let driver = self.registry.get(&step.type_name).expect("validated");
        let schema = driver.schema();
        let (props, deps) = self.resolved(step)?;
        if step.action == Action::Create {
            if let Some(gone) = &step.physical_id {
                // The old object vanished outside fastcart: drop it from state.
                let mut e = Entry::new(Op::Delete, Phase::Done, &step.logical_id, &step.type_name);
                e.physical_id = Some(gone.clone());
                e.error = Some("deleted outside fastcart".into());
                self.journal(e)?;
            }
        }
        let protected = protect_secrets(&props, schema);
        let tags = self.owner.tags_for(&step.logical_id, &self.stack.tags);
        let token = {
            let b = self.book.lock().expect("book lock");
            let mut h = Sha256::new();
            h.update(b.state.lineage.as_bytes());
            h.update(step.logical_id.as_bytes());
            h.update(b.state.journal_seq.to_le_bytes());
            hex(&h.finalize())[..32].to_string()
        };
        let mut intent = Entry::new(Op::Create, Phase::Intent, &step.logical_id, &step.type_name);
        intent.properties = Some(protected.clone());
        intent.dependencies = deps.clone();
        self.journal(intent)?;
        let result = self
            .create_exactly_once(driver.as_ref(), step, &props, &tags, &token)
            .await;
        let (created, adopted) = match result {
            Ok(done) => done,
            // It may have made something that was not found yet (no answer
            // at the end of the attempts, Ctrl-C, a wait that gave up): the
            // intent stays pending, so the next run's `recover` looks for it
            // by its tags and adopts it, in a replacement too.
            Err(e)
                if e.may_have_created()
                    || e.kind == ErrorKind::Cancelled
                    || e.kind == ErrorKind::DeadlineExceeded =>
            {
                return Err(e.to_string())
            }
            Err(e) => return self.failed(Op::Create, step, None, e),
        };
        // An adopted object may lack what the rest of its create would
        // have set: finish it. It is recorded either way, so it is tracked.
        let (created, unfinished) = match &adopted {
            Some((_, seen)) => {
                match self
                    .converge(driver.as_ref(), step, &props, &created, seen)
                    .await
                {
                    Ok(done) => (done, None),
                    Err(e) => (created, Some(e)),
                }
            }
            None => (created, None),
        };
        let mut done = Entry::new(Op::Create, Phase::Done, &step.logical_id, &step.type_name);
        done.physical_id = Some(created.physical_id.clone());
        done.properties = Some(protected);
        done.attributes = Some(created.attributes);
        done.dependencies = deps;
        done.initial_only = self.initial_only(&step.logical_id);
        done.error = adopted.map(|(note, _)| note);
        self.journal(done)?;
        match unfinished {
            None => Ok(Some(created.physical_id)),
            Some(e) => self.failed(Op::Create, step, Some(created.physical_id), e),
        }
    }

    pub(super) fn failed<T>(
        &self,
        op: Op,
        step: &Step,
        physical_id: Option<String>,
        e: DriverError,
    ) -> std::result::Result<T, String> {
        let mut f = Entry::new(op, Phase::Failed, &step.logical_id, &step.type_name);
        f.physical_id = physical_id;
        f.error = Some(e.to_string());
        let _ = self.journal(f);
        Err(e.to_string())
    }

    pub(super) async fn update(&self, step: &Step) -> std::result::Result<Option<String>, String> {
        let driver = self.registry.get(&step.type_name).expect("validated");
        let (props, deps) = self.resolved(step)?;
        let (physical_id, previous) = {
            let b = self.book.lock().expect("book lock");
            let r = b
                .state
                .resources
                .get(&step.logical_id)
                .ok_or_else(|| format!("{} is not in state", step.logical_id))?;
            (r.physical_id.clone(), r.properties.clone())
        };
        let protected = protect_secrets(&props, driver.schema());
        let changed: Vec<String> = step.changes.iter().map(|c| c.path.clone()).collect();
        let tags = self.owner.tags_for(&step.logical_id, &self.stack.tags);
        let mut intent = Entry::new(Op::Update, Phase::Intent, &step.logical_id, &step.type_name);
        intent.physical_id = Some(physical_id.clone());
        intent.properties = Some(protected.clone());
        self.journal(intent)?;
        let result = self
            .retrying(|| {
                driver.update(UpdateRequest {
                    logical_id: &step.logical_id,
                    physical_id: &physical_id,
                    properties: &props,
                    previous: &previous,
                    changed: &changed,
                    tags: &tags,
                    context: &self.ctx,
                })
            })
            .await;
        match result {
            Ok(attributes) => {
                let mut done =
                    Entry::new(Op::Update, Phase::Done, &step.logical_id, &step.type_name);
                done.physical_id = Some(physical_id.clone());
                done.properties = Some(protected);
                done.attributes = Some(attributes);
                done.dependencies = deps;
                done.initial_only = self.initial_only(&step.logical_id);
                self.journal(done)?;
                Ok(Some(physical_id))
            }
            Err(e) => self.failed(Op::Update, step, Some(physical_id), e),
        }
    }

    pub(super) async fn delete(&self, step: &Step) -> std::result::Result<Option<String>, String> {
        let type_name = step.old_type.as_deref().unwrap_or(&step.type_name);
        let driver = self
            .registry
            .get(type_name)
            .ok_or_else(|| format!("no driver for {type_name}"))?;
        let physical_id = step
            .physical_id
            .clone()
            .ok_or_else(|| format!("{} has no physical id to delete", step.logical_id))?;
        let properties = {
            let b = self.book.lock().expect("book lock");
            b.state
                .resources
                .get(&step.logical_id)
                .and_then(|r| {
                    if r.physical_id == physical_id {
                        Some(r.properties.clone())
                    } else {
                        r.deposed
                            .iter()
                            .find(|d| d.physical_id == physical_id)
                            .map(|d| d.properties.clone())
                    }
                })
                .unwrap_or_default()
        };
        let handle = ResourceHandle {
            logical_id: step.logical_id.clone(),
            physical_id: physical_id.clone(),
            properties,
            attributes: Default::default(),
        };
        let mut intent = Entry::new(Op::Delete, Phase::Intent, &step.logical_id, &step.type_name);
        intent.physical_id = Some(physical_id.clone());
        self.journal(intent)?;
        match self.retrying(|| driver.delete(&handle)).await {
            Ok(()) => {
                let mut done =
                    Entry::new(Op::Delete, Phase::Done, &step.logical_id, &step.type_name);
                done.physical_id = Some(physical_id.clone());
                self.journal(done)?;
                Ok(Some(physical_id))
            }
            Err(e) => self.failed(Op::Delete, step, Some(physical_id), e),
        }
    }
}
