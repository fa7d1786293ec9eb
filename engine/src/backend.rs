//! Where a stack's state, journal and lock live, behind one trait: the local
//! directory today ([`crate::StateStore`]), a shared store (S3) next. The
//! engine keeps no SDK: a backend that talks to a cloud lives outside it.
//!
//! What every backend guarantees the engine:
//! - `acquire` takes the lock for one run or fails naming its holder; the
//!   `Fence` it returns goes with every write of that run, and a backend
//!   refuses a write whose fence is not the lock's current one (a lock taken
//!   over since);
//! - `save` replaces the whole state at once: a reader sees the old state
//!   or the new, never a mix;
//! - a journal entry is durable when `append` returns, before the request
//!   it records is sent;
//! - `load` is the saved state with the journal entries written after it
//!   folded in ([`fold`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::journal::Entry;
use crate::state::State;

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub holder: String,
    pub pid: u32,
    pub command: String,
    pub since: String,
    /// The fence of the run holding it (0 in locks older than fences).
    #[serde(default)]
    pub token: u64,
}

impl LockInfo {
    /// This process's claim on a lock for `command`: who and where it runs,
    /// since now, with a fresh random fence token.
    pub fn new(command: &str) -> LockInfo {
        LockInfo {
            holder: crate::store::holder(),
            pid: std::process::id(),
            command: command.into(),
            since: crate::store::now_rfc3339(),
            token: crate::store::new_token(),
        }
    }

    /// The holder as messages name it: `user@host (pid N, `command`)`.
    pub fn who(&self) -> String {
        format!("{} (pid {}, `{}`)", self.holder, self.pid, self.command)
    }
}

/// Proof of holding a lock, carried by every write of the run that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence(pub u64);

/// Appends journal entries; an entry is durable when `append` returns.
pub trait JournalSink: Send {
    fn append(&mut self, entry: &Entry) -> Result<()>;
}

pub trait StateBackend: Send + Sync + fmt::Debug {
    fn stack(&self) -> &str;
    fn env(&self) -> &str;
    /// Where the state lives, for people: a directory, an `s3://` URL.
    fn location(&self) -> String;
    /// Takes the lock for `command`, or fails naming its holder.
    fn acquire(&self, command: &str) -> Result<(LockInfo, Fence)>;
    /// Gives the lock back, if `fence` still holds it.
    fn release(&self, fence: Fence) -> Result<()>;
    /// Removes a lock left behind by a run that died; says whose it was.
    fn force_unlock(&self) -> Result<Option<LockInfo>>;
    /// The saved state alone, without the journal; `None` when there is none.
    fn load_saved(&self) -> Result<Option<State>>;
    /// The journal's entries, in order.
    fn read_journal(&self) -> Result<Vec<Entry>>;
    /// Writes the whole state at once.
    fn save(&self, fence: Fence, state: &State) -> Result<()>;
    /// Opens the journal for appending.
    fn journal(&self, fence: Fence) -> Result<Box<dyn JournalSink>>;

    /// The state as of the last journal entry. `None`: nothing was applied.
    fn load(&self) -> Result<Option<State>> {
        Ok(fold(
            self.stack(),
            self.env(),
            self.load_saved()?,
            &self.read_journal()?,
        ))
    }

    /// The local store, when the state is in a local directory.
    fn local(&self) -> Option<&crate::StateStore> {
        None
    }

    /// The lock of a run that died, which `acquire` took over once its
    /// lease ran out (backends with leases).
    fn taken_over(&self) -> Option<LockInfo> {
        None
    }
}

/// `saved` with the entries written after it (of its lineage) folded in;
/// without a saved state, a new one of the journal's lineage.
pub fn fold(stack: &str, env: &str, saved: Option<State>, entries: &[Entry]) -> Option<State> {
    let mut state = match saved {
        Some(s) => s,
        None => {
            let last = entries.last()?;
            let mut s = State::new(stack, env);
            s.lineage = last.lineage.clone();
            s
        }
    };
    let (from, lineage) = (state.journal_seq, state.lineage.clone());
    for e in entries
        .iter()
        .filter(|e| e.seq > from && e.lineage == lineage)
    {
        state.record(e);
    }
    Some(state)
}

/// Why a saved state cannot be `stack`-`env`'s: a format newer than this
/// fastcart reads, or another stack's. Each backend reports it as
/// [`Error::CorruptState`] at its own path.
pub fn check_saved(state: &State, stack: &str, env: &str) -> std::result::Result<(), String> {
    use crate::state::STATE_VERSION;
    if state.version > STATE_VERSION {
        return Err(format!(
            "it has format version {}, newer than this fastcart understands ({STATE_VERSION})",
            state.version
        ));
    }
    if state.stack != stack || state.env != env {
        return Err(format!(
            "it belongs to stack {}-{}, not {stack}-{env}",
            state.stack, state.env
        ));
    }
    Ok(())
}

fn refused(to: &dyn StateBackend, message: String, help: &str) -> crate::error::Error {
    crate::error::Error::Backend {
        location: to.location(),
        message,
        help: help.into(),
    }
}

/// Replaces the state `to` holds with `state` (`fastcart state push`),
/// under `to`'s lock. Refused when `to` holds a state of another stack or
/// lineage, a higher serial, or journal entries `state` has not folded in.
/// The state is written with a serial above both; returns it.
pub fn push(to: Arc<dyn StateBackend>, mut state: State, wait: Duration) -> Result<u64> {
    let lock = Lock::take_within(to.clone(), "state push", wait, &mut |_| {})?;
    if state.stack != to.stack() || state.env != to.env() {
        return Err(refused(
            &*to,
            format!(
                "the file holds the state of {}-{}, not {}-{}",
                state.stack,
                state.env,
                to.stack(),
                to.env()
            ),
            "push it with the --stack and --env it belongs to",
        ));
    }
    let mut serial = state.serial;
    if let Some(now) = to.load()? {
        let pull = "nothing was written: `fastcart state pull` the current state and start from it";
        if now.lineage != state.lineage {
            return Err(refused(
                &*to,
                format!(
                    "the file's state has lineage {}, the backend's {}: it is another state",
                    state.lineage, now.lineage
                ),
                pull,
            ));
        }
        if state.serial < now.serial {
            return Err(refused(
                &*to,
                format!(
                    "the file's serial {} is lower than the backend's {}: pushing it would roll \
                     the state back",
                    state.serial, now.serial
                ),
                pull,
            ));
        }
        if now.journal_seq > state.journal_seq {
            return Err(refused(
                &*to,
                format!(
                    "the backend's journal has entries up to {} that the file (up to {}) lacks",
                    now.journal_seq, state.journal_seq
                ),
                pull,
            ));
        }
        serial = serial.max(now.serial);
    }
    state.serial = serial + 1;
    to.save(lock.fence, &state)?;
    Ok(state.serial)
}

/// Copies the state `from` holds, with its journal folded in (pending
/// operations included, so the next run recovers them), to `to`, which
/// must hold none (`fastcart state migrate`). Both are locked meanwhile;
/// `from` is left as it was. Returns the serial written.
pub fn migrate(
    from: Arc<dyn StateBackend>,
    to: Arc<dyn StateBackend>,
    wait: Duration,
) -> Result<u64> {
    if same_place(&*from, &*to) {
        // Else this run would wait on the lock it holds itself.
        return Err(refused(
            &*to,
            "is where the state already is".into(),
            "give --to another bucket, prefix or directory",
        ));
    }
    let _from_lock = Lock::take_within(from.clone(), "state migrate", wait, &mut |_| {})?;
    let to_lock = Lock::take_within(to.clone(), "state migrate", wait, &mut |_| {})?;
    let Some(mut state) = from.load()? else {
        return Err(refused(
            &*from,
            "holds no state to migrate".into(),
            "pass the --state-dir (or --backend), --stack and --env the stack was applied with",
        ));
    };
    if to.load()?.is_some() {
        return Err(refused(
            &*to,
            "already holds a state; migrating would overwrite it".into(),
            "nothing was written: migrate to an empty place, or `state push` a file there",
        ));
    }
    state.serial += 1;
    to.save(to_lock.fence, &state)?;
    Ok(state.serial)
}

/// Whether two backends keep the same state: the same URL, or the same
/// directory however it is spelled.
fn same_place(a: &dyn StateBackend, b: &dyn StateBackend) -> bool {
    match (a.local(), b.local()) {
        (Some(x), Some(y)) => {
            let real = |s: &crate::StateStore| {
                std::fs::canonicalize(s.dir()).unwrap_or_else(|_| s.dir().to_path_buf())
            };
            real(x) == real(y)
        }
        _ => a.location() == b.location(),
    }
}

/// A lock held for one run; given back when dropped.
#[derive(Debug)]
pub struct Lock {
    backend: Arc<dyn StateBackend>,
    pub info: LockInfo,
    pub fence: Fence,
}

impl Lock {
    /// Takes `backend`'s lock for `command`.
    pub fn take(backend: Arc<dyn StateBackend>, command: &str) -> Result<Lock> {
        let (info, fence) = backend.acquire(command)?;
        Ok(Lock {
            backend,
            info,
            fence,
        })
    }

    /// Takes `backend`'s lock for `command`, waiting up to `within` while
    /// another run holds it (`--lock-timeout`): asked again every
    /// [`LOCK_POLL`], so a lease that runs out is taken over and a lock
    /// given back is taken, by whichever waiting run asks first. `waiting`
    /// hears of the holder once, when the wait begins. A zero `within`
    /// fails at once, as [`Lock::take`] does; so does any error but
    /// [`Error::Locked`].
    pub fn take_within(
        backend: Arc<dyn StateBackend>,
        command: &str,
        within: Duration,
        waiting: &mut dyn FnMut(&Error),
    ) -> Result<Lock> {
        // No deadline past what an Instant can hold: wait for good.
        let deadline = Instant::now().checked_add(within);
        let mut told = false;
        loop {
            let err = match Lock::take(backend.clone(), command) {
                Err(e @ Error::Locked { .. }) => e,
                other => return other,
            };
            let now = Instant::now();
            let left = deadline.map_or(LOCK_POLL, |d| d.saturating_duration_since(now));
            if left.is_zero() {
                return Err(err);
            }
            if !told {
                waiting(&err);
                told = true;
            }
            std::thread::sleep(LOCK_POLL.min(left));
        }
    }
}

/// How often a run waiting for a lock asks for it again.
pub const LOCK_POLL: Duration = Duration::from_millis(500);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.backend.release(self.fence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Op, Phase};
    use crate::StateStore;

    fn local(dir: &tempfile::TempDir) -> Arc<dyn StateBackend> {
        Arc::new(StateStore::new(dir.path(), "s", "dev"))
    }

    /// A state with one resource saved and one create journaled after it.
    fn applied(b: &Arc<dyn StateBackend>) -> State {
        let lock = Lock::take(b.clone(), "apply").unwrap();
        let mut state = State::new("s", "dev");
        state.serial = 3;
        b.save(lock.fence, &state).unwrap();
        let mut j = b.journal(lock.fence).unwrap();
        let mut e = Entry::new(Op::Create, Phase::Intent, "Vpc", "AWS::EC2::VPC");
        e.seq = 1;
        e.lineage = state.lineage.clone();
        j.append(&e).unwrap();
        b.load().unwrap().unwrap()
    }

    #[test]
    fn a_run_told_to_wait_takes_the_lock_once_it_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(&dir);
        let held = Lock::take(b.clone(), "apply").unwrap();
        let mut heard = Vec::new();
        // Without a wait, refused at once; the holder is not told to anyone.
        let err = Lock::take_within(b.clone(), "plan", Duration::ZERO, &mut |e| {
            heard.push(e.to_string())
        })
        .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(heard.is_empty());
        // Waiting until well after it is given back: taken, holder heard once.
        let giver = std::thread::spawn(move || {
            std::thread::sleep(LOCK_POLL * 2);
            drop(held);
        });
        let lock = Lock::take_within(b.clone(), "plan", LOCK_POLL * 20, &mut |e| {
            heard.push(e.to_string())
        })
        .unwrap();
        giver.join().unwrap();
        assert_eq!(lock.info.command, "plan");
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert!(heard[0].contains("`apply`"), "{heard:?}");
        // A wait that runs out gives the holder's error.
        let err = Lock::take_within(b, "apply", LOCK_POLL, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("`plan`"), "{err}");
    }

    #[test]
    fn a_migrated_state_keeps_what_its_journal_holds() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (local(&a), local(&b));
        let before = applied(&from);
        assert_eq!(
            migrate(from.clone(), to.clone(), Duration::ZERO).unwrap(),
            4
        );
        let moved = to.load().unwrap().unwrap();
        assert_eq!(moved.lineage, before.lineage);
        assert!(
            moved.pending.contains_key("Vpc"),
            "the pending create moved too"
        );
        // Not over a state that is there.
        let err = migrate(from.clone(), to, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already holds a state"), "{err}");
        // Nor onto itself, however the directory is spelled (it would
        // wait on its own lock).
        let spelled = format!("{}/.", a.path().display());
        let itself: Arc<dyn StateBackend> = Arc::new(StateStore::new(&spelled, "s", "dev"));
        let err = migrate(from, itself, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already is"), "{err}");
    }

    #[test]
    fn a_push_of_a_lower_serial_or_another_lineage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = local(&dir);
        let now = applied(&b);
        let mut old = now.clone();
        old.serial = 2;
        let err = push(b.clone(), old, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lower than the backend's 3"), "{err}");
        let other = State::new("s", "dev");
        let err = push(b.clone(), other, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lineage"), "{err}");
        let mut behind = now.clone();
        behind.journal_seq = 0;
        let err = push(b.clone(), behind, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("journal has entries"), "{err}");
        assert_eq!(push(b.clone(), now, Duration::ZERO).unwrap(), 4);
        assert_eq!(b.load().unwrap().unwrap().serial, 4);
    }
}
