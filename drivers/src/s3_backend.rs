//! The S3 state backend (`s3://BUCKET/PREFIX`): state, journal and lock of
//! `<stack>-<env>` as objects under `PREFIX/<stack>-<env>/`, written with
//! S3's conditional writes alone.
//!
//! - `lock.json` is created with `If-None-Match: *`: one run holds it. It
//!   carries the holder, host, pid, command, start time, a fence token and a
//!   lease expiry, which a thread of the holder renews (`If-Match` on the
//!   lock's ETag) every third of the lease. A lock whose lease ran out (its
//!   run died) is taken over with `If-Match` on the ETag read, so two runs
//!   cannot both take it; `taken_over` says whose it was.
//! - `state.json` is written with `If-Match` on the ETag last read (or
//!   `If-None-Match: *` when there was none): a write that lost a race is
//!   refused, never merged. `serial` beside it keeps the highest serial
//!   written; a state below it is refused as a rollback.
//! - The journal is an object per entry, `journal/<seq>.json`, created with
//!   `If-None-Match: *` before the request it records is sent; entries the
//!   saved state has folded in are deleted after a save.
//!
//! A write is made only while this run's lease is valid and its renewals
//! have not found the lock moved (taken over after a pause longer than the
//! lease, or removed with `--force-unlock`). The bucket is the user's:
//! fastcart never creates or deletes it.
//!
//! The engine's backend trait is synchronous; the S3 calls run on a runtime
//! of the backend's own, so they work from any thread, inside an async
//! runtime or not.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use fastcart_engine::journal::{self, Entry};
use fastcart_engine::state::State;
use fastcart_engine::store::now_ms;
use fastcart_engine::{Error, Fence, JournalSink, LockInfo, Result, StateBackend};
use serde::{Deserialize, Serialize};

/// How long a lock lasts without renewal, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The lock object: who holds it and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseBody {
    #[serde(flatten)]
    info: LockInfo,
    host: String,
    /// The lease's end, in milliseconds since the Unix epoch.
    expires_ms: u64,
}

struct Inner {
    client: aws_sdk_s3::Client,
    runtime: Option<tokio::runtime::Runtime>,
    bucket: String,
    /// `PREFIX/<stack>-<env>/`.
    base: String,
    stack: String,
    env: String,
    lease: Duration,
    /// The state object's ETag as last read or written (`None`: none).
    state_etag: Mutex<Option<String>>,
    /// The serial floor and its ETag as last read or written (`None`: not
    /// read yet); under the lock only this run writes it.
    floor: Mutex<Option<(u64, Option<String>)>>,
    /// The journal's objects in S3, as last listed plus this run's own
    /// entries: what a save compacts, without listing them again.
    journal_keys: Mutex<BTreeSet<String>>,
    /// This run's lease, while it holds the lock.
    held: Mutex<Option<Held>>,
    replaced: Mutex<Option<LockInfo>>,
}

struct Held {
    fence: Fence,
    /// Shared with the renewer.
    flags: HeldFlags,
    renewer: Option<std::thread::JoinHandle<()>>,
}

/// What a conditional write did.
enum Put {
    /// Written (by this call, or by an earlier attempt of it): the ETag.
    Written(String),
    /// The condition failed; the object there now, if any.
    Refused(Option<(Vec<u8>, String)>),
}

/// The S3 backend of one stack and environment.
#[derive(Clone)]
pub struct S3Backend(Arc<Inner>);

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Backend({})", self.location())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `s3://BUCKET/PREFIX` as the bucket and the prefix (without slashes at
/// its ends).
pub fn parse_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3://BUCKET/PREFIX URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket (s3://BUCKET/PREFIX)"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// Whether an S3 error is a failed precondition (`If-Match`,
/// `If-None-Match`) or a conflicting conditional write.
fn precondition_failed(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("PreconditionFailed") | Some("ConditionalRequestConflict")
    )
}

impl S3Backend {
    /// The backend for `<stack>-<env>` at `url`, with S3 clients made from
    /// `config` (path-style addressing, so that an emulator's address works).
    pub fn new(
        config: &aws_config::SdkConfig,
        url: &str,
        stack: &str,
        env: &str,
        lease: Duration,
    ) -> Result<Self> {
        Self::counted(config, url, stack, env, lease, Default::default())
    }

    /// The same, its requests counted in `requests` (the CLI's `-v` prints
    /// them beside the drivers').
    pub fn counted(
        config: &aws_config::SdkConfig,
        url: &str,
        stack: &str,
        env: &str,
        lease: Duration,
        requests: Arc<crate::sdk::RequestCounter>,
    ) -> Result<Self> {
        let (bucket, prefix) = parse_url(url).map_err(|message| Error::Backend {
            location: url.to_string(),
            message,
            help: "give the backend as s3://BUCKET/PREFIX".into(),
        })?;
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .interceptor(crate::sdk::Counting(requests))
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fastcart-s3-state")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend {
                location: url.to_string(),
                message: format!("cannot start its runtime: {e}"),
                help: "this is a bug in fastcart".into(),
            })?;
        let base = match prefix.as_str() {
            "" => format!("{stack}-{env}/"),
            p => format!("{p}/{stack}-{env}/"),
        };
        Ok(S3Backend(Arc::new(Inner {
            client: aws_sdk_s3::Client::from_conf(s3),
            runtime: Some(runtime),
            bucket,
            base,
            stack: stack.into(),
            env: env.into(),
            lease,
            state_etag: Mutex::new(None),
            floor: Mutex::new(None),
            journal_keys: Mutex::new(BTreeSet::new()),
            held: Mutex::new(None),
            replaced: Mutex::new(None),
        })))
    }

    /// What `kill -9` does to the holder, for tests: its lease is no longer
    /// renewed, and the lock stays where it is until the lease runs out.
    pub fn die(&self) {
        let held = self.0.held.lock().expect("held lock").as_mut().map(|h| {
            h.flags.stop.store(true, Ordering::SeqCst);
            h.renewer.take()
        });
        if let Some(Some(t)) = held {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.base.trim_end_matches('/'))
    }

    /// Runs `f` on the backend's runtime and waits for it, from any thread.
    fn block<T: Send>(&self, f: impl Future<Output = T> + Send) -> T {
        let rt = self.runtime.as_ref().expect("runtime until drop");
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .expect("an S3 call does not panic")
        })
    }

    fn error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        what: &str,
        e: aws_sdk_s3::error::SdkError<E>,
    ) -> Error {
        let code = e.code().map(String::from);
        let message = e
            .message()
            .map(String::from)
            .unwrap_or_else(|| format!("{e:?}"));
        let help = match code.as_deref() {
            Some("NoSuchBucket") => format!(
                "the bucket {} does not exist: create it (fastcart never creates or deletes it; \
                 turn on versioning to keep old states), or fix --backend",
                self.bucket
            ),
            Some("AccessDenied") => format!(
                "allow s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on {} to \
                 these credentials",
                self.location()
            ),
            _ => "nothing was written; check the credentials, the region and the network, \
                  then run again"
                .into(),
        };
        Error::Backend {
            location: self.location(),
            message: format!(
                "{what}: {}{message}",
                code.map(|c| c + ": ").unwrap_or_default()
            ),
            help,
        }
    }

    /// The object `key` and its ETag; `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let got = self.block(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await?;
            let etag = out.e_tag().unwrap_or_default().to_string();
            let body = out.body.collect().await.map(|b| b.to_vec());
            Ok::<_, aws_sdk_s3::error::SdkError<_>>(Some((body, etag)))
        });
        match got {
            Ok(Some((Ok(body), etag))) => Ok(Some((body, etag))),
            Ok(Some((Err(e), _))) => Err(Error::Backend {
                location: self.location(),
                message: format!("reading {key}: {e}"),
                help: "run again".into(),
            }),
            Ok(None) => Ok(None),
            Err(e) if e.code() == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(self.error(&format!("reading {key}"), e)),
        }
    }

    /// Writes `key` under a condition: `Some(etag)` it must still have,
    /// `None` it must not exist. `Ok(None)`: the condition failed.
    ///
    /// When an answer is lost after the write took effect, the SDK sends it
    /// again, and the second attempt fails the condition on the first one's
    /// write. So a failed condition is checked: an object holding exactly
    /// these bytes is taken as this write. For a lock or a lease the bytes
    /// carry this run's token and expiry, so they are this run's. A state,
    /// floor or journal entry with the same bytes from another run would
    /// hold the same content, so taking it as written loses nothing, and
    /// the next write's `If-Match` on this ETag still refuses a change made
    /// since. An `If-Match` on an object gone is a failed condition too.
    fn put(&self, key: &str, body: Vec<u8>, if_match: Option<&str>) -> Result<Option<String>> {
        Ok(match self.put_seen(key, body, if_match)? {
            Put::Written(etag) => Some(etag),
            Put::Refused(_) => None,
        })
    }

    /// As [`Inner::put`], with the object found there when the condition
    /// failed, which the lock's callers read instead of asking again.
    fn put_seen(&self, key: &str, body: Vec<u8>, if_match: Option<&str>) -> Result<Put> {
        let sent = self.block(async {
            let call = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body.clone()));
            let call = match if_match {
                Some(etag) => call.if_match(etag),
                None => call.if_none_match("*"),
            };
            call.send().await
        });
        match sent {
            Ok(out) => Ok(Put::Written(out.e_tag().unwrap_or_default().to_string())),
            Err(e)
                if precondition_failed(e.code())
                    || (if_match.is_some() && e.code() == Some("NoSuchKey")) =>
            {
                Ok(match self.get(key)? {
                    Some((now, etag)) if now == body => Put::Written(etag),
                    now => Put::Refused(now),
                })
            }
            Err(e) => Err(self.error(&format!("writing {key}"), e)),
        }
    }

    /// Deletes `key` if it still has `etag`: `Ok(false)` when it changed
    /// since (another run's now). An object already gone counts as deleted
    /// (the answer to an earlier attempt was lost).
    fn delete_if(&self, key: &str, etag: &str) -> Result<bool> {
        let sent = self.block(async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .if_match(etag)
                .send()
                .await
        });
        match sent {
            Ok(_) => Ok(true),
            Err(e) if precondition_failed(e.code()) => Ok(false),
            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NotFound")) => Ok(true),
            Err(e) => Err(self.error(&format!("deleting {key}"), e)),
        }
    }

    /// Deletes `keys`, a thousand to a request (`DeleteObjects`).
    fn delete_all(&self, keys: &[String]) -> Result<()> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .expect("a key is all an object identifier needs");
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            let out = self
                .block(async {
                    self.client
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete)
                        .send()
                        .await
                })
                .map_err(|e| self.error("deleting compacted journal entries", e))?;
            if let Some(failed) = out.errors().first() {
                return Err(Error::Backend {
                    location: self.location(),
                    message: format!(
                        "deleting compacted journal entry {}: {}",
                        failed.key().unwrap_or("?"),
                        failed.message().unwrap_or("refused")
                    ),
                    help: "the state is saved; give the credentials s3:DeleteObject on the \
                           prefix, then run again"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// Every key under `prefix`, in order.
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.block(async {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                keys.extend(
                    page?
                        .contents()
                        .iter()
                        .filter_map(|o| o.key().map(String::from)),
                );
            }
            keys.sort();
            Ok(keys)
        })
        .map_err(|e: aws_sdk_s3::error::SdkError<_>| self.error(&format!("listing {prefix}"), e))
    }

    fn lock_body(&self) -> Result<Option<(LeaseBody, String)>> {
        self.lease_of(self.get(&self.key("lock.json"))?)
    }

    /// The lock object `found` (its bytes and ETag) read as a lease.
    fn lease_of(&self, found: Option<(Vec<u8>, String)>) -> Result<Option<(LeaseBody, String)>> {
        let Some((body, etag)) = found else {
            return Ok(None);
        };
        let lease = serde_json::from_slice(&body).map_err(|e| Error::Backend {
            location: self.location(),
            message: format!("lock.json is unreadable: {e}"),
            help: "remove it with --force-unlock once no run is using the state".into(),
        })?;
        Ok(Some((lease, etag)))
    }

    /// Refuses a write of a run that does not hold a valid lease.
    fn check_fence(&self, fence: Fence) -> Result<()> {
        let held = self.held.lock().expect("held lock");
        let valid = held.as_ref().is_some_and(|h| {
            h.fence == fence
                && !h.flags.lost.load(Ordering::SeqCst)
                && now_ms() < h.flags.expires_ms.load(Ordering::SeqCst)
        });
        drop(held);
        if valid {
            return Ok(());
        }
        let now = match self.lock_body() {
            Ok(Some((l, _))) if l.info.token == fence.0 => {
                return Err(Error::Backend {
                    location: self.location(),
                    message: "this run's lease ran out before it could write (the machine or \
                              the network was slower than the lease); nothing was written"
                        .into(),
                    help: "run again; where runs are this slow, give a longer --lock-lease".into(),
                })
            }
            Ok(Some((l, _))) => l.info.who(),
            Ok(None) => "nobody (it was removed with --force-unlock)".into(),
            Err(e) => format!("an unknown holder ({e})"),
        };
        Err(Error::LockLost {
            location: self.location(),
            now,
        })
    }
}

/// Renews the lease every third of it until told to stop; a renewal that
/// finds the lock moved marks the lease lost.
fn renew(inner: std::sync::Weak<Inner>, mut body: LeaseBody, mut etag: String, h: HeldFlags) {
    loop {
        let Some(me) = inner.upgrade() else { return };
        let period = me.lease / 3;
        drop(me);
        let mut slept = Duration::ZERO;
        while slept < period {
            if h.stop.load(Ordering::SeqCst) {
                return;
            }
            let step = Duration::from_millis(50).min(period - slept);
            std::thread::sleep(step);
            slept += step;
        }
        let Some(me) = inner.upgrade() else { return };
        body.expires_ms = now_ms() + me.lease.as_millis() as u64;
        let text = serde_json::to_vec_pretty(&body).expect("a lease serializes");
        // The condition failed, or the renewal failed and may have taken
        // effect all the same: the lock decides. Still this run's token:
        // its ETag and expiry are this run's lease now. Another's, or
        // none: the lease is lost.
        let seen = match me.put_seen(&me.key("lock.json"), text, Some(&etag)) {
            Ok(Put::Written(new)) => {
                etag = new;
                h.expires_ms.store(body.expires_ms, Ordering::SeqCst);
                continue;
            }
            Ok(Put::Refused(now)) => me.lease_of(now),
            Err(_) => me.lock_body(),
        };
        match seen {
            Ok(Some((l, now))) if l.info.token == body.info.token => {
                etag = now;
                h.expires_ms.store(l.expires_ms, Ordering::SeqCst);
            }
            Ok(_) => {
                h.lost.store(true, Ordering::SeqCst);
                return;
            }
            // Unreadable now: tried again; the lease still runs out.
            Err(_) => {}
        }
    }
}

/// What the holder and its renewer share: `stop` (this run lets go),
/// `lost` (a renewal found the lock moved) and the lease's end.
#[derive(Clone)]
struct HeldFlags {
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    expires_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl StateBackend for S3Backend {
    fn stack(&self) -> &str {
        &self.0.stack
    }

    fn env(&self) -> &str {
        &self.0.env
    }

    fn location(&self) -> String {
        self.0.location()
    }

    fn acquire(&self, command: &str) -> Result<(LockInfo, Fence)> {
        let me = &self.0;
        let info = LockInfo::new(command);
        let mut body = LeaseBody {
            host: info.holder.rsplit('@').next().unwrap_or_default().into(),
            info,
            expires_ms: now_ms() + me.lease.as_millis() as u64,
        };
        let etag = self.take_lock(&mut body)?;
        let flags = HeldFlags {
            stop: Arc::new(AtomicBool::new(false)),
            lost: Arc::new(AtomicBool::new(false)),
            expires_ms: Arc::new(body.expires_ms.into()),
        };
        let weak = Arc::downgrade(&self.0);
        let renewer = {
            let (flags, body) = (flags.clone(), body.clone());
            std::thread::Builder::new()
                .name("fastcart-s3-lease".into())
                .spawn(move || renew(weak, body, etag, flags))
                .ok()
        };
        let fence = Fence(body.info.token);
        *me.held.lock().expect("held lock") = Some(Held {
            fence,
            flags,
            renewer,
        });
        Ok((body.info, fence))
    }

    fn release(&self, fence: Fence) -> Result<()> {
        let me = &self.0;
        let held = me.held.lock().expect("held lock").take();
        if let Some(mut h) = held {
            h.flags.stop.store(true, Ordering::SeqCst);
            if let Some(t) = h.renewer.take() {
                let _ = t.join();
            }
        }
        // Only this run's own lock, as read: not one taken over meanwhile.
        match me.lock_body()? {
            Some((l, etag)) if l.info.token == fence.0 => {
                me.delete_if(&me.key("lock.json"), &etag).map(drop)
            }
            _ => Ok(()),
        }
    }

    fn force_unlock(&self) -> Result<Option<LockInfo>> {
        let me = &self.0;
        let key = me.key("lock.json");
        let Some((held, mut etag)) = me.lock_body()? else {
            return Ok(None);
        };
        // The holder's renewals change the ETag, not the token: the same
        // lock is removed on its new ETag.
        for _ in 0..3 {
            if me.delete_if(&key, &etag)? {
                return Ok(Some(held.info));
            }
            match me.lock_body()? {
                None => return Ok(Some(held.info)),
                Some((now, e)) if now.info.token == held.info.token => etag = e,
                Some((now, _)) => {
                    return Err(Error::Backend {
                        location: me.location(),
                        message: format!(
                            "the lock changed hands while it was being removed: {} holds it now",
                            now.info.who()
                        ),
                        help: "run again to remove that lock, if that run is gone too".into(),
                    })
                }
            }
        }
        Err(Error::Backend {
            location: me.location(),
            message: "the lock kept changing while it was being removed".into(),
            help: "its holder is renewing it: it is alive; let it finish".into(),
        })
    }

    fn load_saved(&self) -> Result<Option<State>> {
        let me = &self.0;
        let key = me.key("state.json");
        let Some((body, etag)) = me.get(&key)? else {
            *me.state_etag.lock().expect("etag lock") = None;
            return Ok(None);
        };
        let corrupt = |message: String| Error::CorruptState {
            path: format!("s3://{}/{key}", me.bucket).into(),
            message,
        };
        let state: State = serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
        fastcart_engine::backend::check_saved(&state, &me.stack, &me.env).map_err(corrupt)?;
        let (floor, _) = self.read_floor()?;
        if state.serial < floor {
            return Err(corrupt(format!(
                "its serial is {}, lower than {floor}, the highest this backend wrote: an older \
                 state was put back (a rollback); restore the newest version of the object",
                state.serial
            )));
        }
        *me.state_etag.lock().expect("etag lock") = Some(etag);
        Ok(Some(state))
    }

    fn read_journal(&self) -> Result<Vec<Entry>> {
        let me = &self.0;
        let mut entries = Vec::new();
        let keys = me.list(&me.key("journal/"))?;
        *me.journal_keys.lock().expect("journal keys") = keys.iter().cloned().collect();
        for key in keys {
            let Some((body, _)) = me.get(&key)? else {
                continue; // compacted meanwhile
            };
            let text = String::from_utf8_lossy(&body);
            let parsed = journal::parse(&text).map_err(|message| Error::CorruptState {
                path: format!("s3://{}/{key}", me.bucket).into(),
                message,
            })?;
            entries.extend(parsed);
        }
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    fn save(&self, fence: Fence, state: &State) -> Result<()> {
        let me = &self.0;
        me.check_fence(fence)?;
        let floor = self.floor()?.0;
        if state.serial < floor {
            return Err(Error::Backend {
                location: me.location(),
                message: format!(
                    "refusing to write serial {} over serial {floor}: that would roll the \
                     state back",
                    state.serial
                ),
                help: "run `fastcart plan` again: it reads the newest state".into(),
            });
        }
        let text = serde_json::to_vec_pretty(state).expect("state serializes");
        let etag = me.state_etag.lock().expect("etag lock").clone();
        match me.put(&me.key("state.json"), text, etag.as_deref())? {
            Some(new) => *me.state_etag.lock().expect("etag lock") = Some(new),
            None => {
                return Err(Error::Backend {
                    location: me.location(),
                    message: "the state was written by another run since this one read it; \
                              this write was refused"
                        .into(),
                    help: "nothing was overwritten: run again, which reads the newest state".into(),
                })
            }
        }
        self.raise_floor(state.serial)?;
        // Entries the saved state holds are folded in: compact them. The
        // keys are those the load listed and this run wrote (only the lock's
        // holder writes entries); one a third party put there stays until a
        // load lists it. It is ignored by the fold meanwhile.
        let done: Vec<String> = me
            .journal_keys
            .lock()
            .expect("journal keys")
            .iter()
            .filter(|k| seq_of(k).is_some_and(|s| s <= state.journal_seq))
            .cloned()
            .collect();
        me.delete_all(&done)?;
        me.journal_keys
            .lock()
            .expect("journal keys")
            .retain(|k| !done.contains(k));
        Ok(())
    }

    fn taken_over(&self) -> Option<LockInfo> {
        self.0.replaced.lock().expect("replaced lock").clone()
    }

    fn journal(&self, fence: Fence) -> Result<Box<dyn JournalSink>> {
        self.0.check_fence(fence)?;
        Ok(Box::new(S3Journal {
            backend: self.clone(),
            fence,
        }))
    }
}

impl S3Backend {
    /// Creates the lock with `body`, or takes over one whose lease ran out
    /// (`taken_over` says whose it was); `Error::Locked`, naming the holder
    /// and when its lease runs out, while another run's lease is live. A
    /// lock given back, or taken over by a third run, while this run asked
    /// is asked again, so a waiting run (`--lock-timeout`) keeps waiting.
    fn take_lock(&self, body: &mut LeaseBody) -> Result<String> {
        let me = &self.0;
        let key = me.key("lock.json");
        let lease = me.lease.as_millis() as u64;
        for _ in 0..3 {
            body.expires_ms = now_ms() + lease;
            let text = serde_json::to_vec_pretty(&*body).expect("a lease serializes");
            let now = match me.put_seen(&key, text, None)? {
                Put::Written(etag) => return Ok(etag),
                Put::Refused(now) => now,
            };
            let Some((old, old_etag)) = me.lease_of(now)? else {
                continue; // given back meanwhile
            };
            if now_ms() < old.expires_ms {
                return Err(Error::Locked {
                    path: me.location().into(),
                    holder: format!(
                        "{}; if it died, its lease runs out at {}",
                        old.info.who(),
                        fastcart_engine::store::rfc3339(old.expires_ms)
                    ),
                    since: old.info.since,
                });
            }
            body.expires_ms = now_ms() + lease;
            let text = serde_json::to_vec_pretty(&*body).expect("a lease serializes");
            if let Some(etag) = me.put(&key, text, Some(&old_etag))? {
                *me.replaced.lock().expect("replaced lock") = Some(old.info);
                return Ok(etag);
            }
            // Another run took the expired lock over first: asked again,
            // its lock is live and named.
        }
        Err(Error::Backend {
            location: me.location(),
            message: "the lock kept changing hands while this run asked for it".into(),
            help: "run again".into(),
        })
    }

    /// The highest serial this backend wrote (0 when none) and the floor
    /// object's ETag, read from S3 and kept.
    fn read_floor(&self) -> Result<(u64, Option<String>)> {
        let me = &self.0;
        let read = match me.get(&me.key("serial"))? {
            Some((body, etag)) => (
                String::from_utf8_lossy(&body).trim().parse().unwrap_or(0),
                Some(etag),
            ),
            None => (0, None),
        };
        *me.floor.lock().expect("floor lock") = Some(read.clone());
        Ok(read)
    }

    /// The floor as last read or written, else read.
    fn floor(&self) -> Result<(u64, Option<String>)> {
        let kept = self.0.floor.lock().expect("floor lock").clone();
        kept.map_or_else(|| self.read_floor(), Ok)
    }

    /// Raises the serial floor to `serial`, on the ETag last seen: written
    /// by this run alone under the lock, so a changed ETag (a run without
    /// the lock, or a hand) is read again, and the floor never goes down.
    fn raise_floor(&self, serial: u64) -> Result<()> {
        let me = &self.0;
        let key = me.key("serial");
        let (mut floor, mut etag) = self.floor()?;
        for _ in 0..3 {
            if floor >= serial {
                return Ok(());
            }
            match me.put(&key, serial.to_string().into_bytes(), etag.as_deref())? {
                Some(new) => {
                    *me.floor.lock().expect("floor lock") = Some((serial, Some(new)));
                    return Ok(());
                }
                None => (floor, etag) = self.read_floor()?,
            }
        }
        Err(Error::Backend {
            location: me.location(),
            message: format!("the serial floor ({key}) kept changing while this run raised it"),
            help: "another writer is changing this state without its lock: stop it, then run \
                   again"
                .into(),
        })
    }
}

/// The sequence number of a journal entry's key (`…/journal/<seq>.json`).
fn seq_of(key: &str) -> Option<u64> {
    key.rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.parse().ok())
}

/// The journal on S3: an object per entry.
struct S3Journal {
    backend: S3Backend,
    fence: Fence,
}

impl JournalSink for S3Journal {
    fn append(&mut self, entry: &Entry) -> Result<()> {
        let me = &self.backend.0;
        me.check_fence(self.fence)?;
        let key = me.key(&format!("journal/{:020}.json", entry.seq));
        let mut line = serde_json::to_vec(entry).expect("journal entry serializes");
        line.push(b'\n');
        match me.put(&key, line, None)? {
            Some(_) => {
                me.journal_keys.lock().expect("journal keys").insert(key);
                Ok(())
            }
            None => Err(Error::Backend {
                location: me.location(),
                message: format!("journal entry {} was written by another run", entry.seq),
                help: "nothing was sent: run again, which reads the newest state".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://b/team/states/").unwrap(),
            ("b".to_string(), "team/states".to_string())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("/tmp/x").is_err());
    }
}
