//! The local backend: the state directory `.fastcart/<stack>-<env>/` with
//! `state.json`, the append-only `journal.jsonl`, and the `lock`.
//!
//! **Invariant:** every write of `state.json` goes to a temporary file in the
//! same directory, is synced, and is renamed over the old file; a reader sees
//! the old state or the new one, never a mix. A file that does not parse is
//! reported and never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::backend::LockInfo;
use crate::backend::{Fence, JournalSink, Lock, StateBackend};
use crate::error::{Error, Result};
use crate::journal::{self, Entry};
use crate::state::State;

#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    stack: String,
    env: String,
}

impl StateStore {
    /// The store of `<stack>-<env>` under `root` (by default `.fastcart`).
    pub fn new(root: impl AsRef<Path>, stack: &str, env: &str) -> Self {
        StateStore {
            dir: root.as_ref().join(format!("{stack}-{env}")),
            stack: stack.into(),
            env: env.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io("create directory", &self.dir, e))
    }

    /// Takes the lock, or fails naming its holder; given back when dropped.
    pub fn lock(&self, command: &str) -> Result<Lock> {
        Lock::take(Arc::new(self.clone()), command)
    }

    /// Who holds the lock now, if anyone.
    fn holder_now(&self) -> Option<LockInfo> {
        fs::read_to_string(self.lock_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Refuses a write of a run whose lock was removed or taken over since.
    fn check_fence(&self, fence: Fence) -> Result<()> {
        match self.holder_now() {
            Some(h) if h.token == fence.0 => Ok(()),
            held => Err(Error::LockLost {
                location: self.location(),
                now: held.map_or_else(
                    || "nobody (it was removed with --force-unlock)".into(),
                    |h| h.who(),
                ),
            }),
        }
    }

    /// The state as of the last journal entry: `state.json` with the entries
    /// written after it folded in. `None` when nothing was ever applied.
    pub fn load(&self) -> Result<Option<State>> {
        StateBackend::load(self)
    }
}

impl StateBackend for StateStore {
    fn stack(&self) -> &str {
        &self.stack
    }

    fn env(&self) -> &str {
        &self.env
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn acquire(&self, command: &str) -> Result<(LockInfo, Fence)> {
        self.ensure_dir()?;
        let path = self.lock_path();
        let info = LockInfo::new(command);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let text = serde_json::to_string_pretty(&info).expect("lock info serializes");
                if let Err(e) = f.write_all(text.as_bytes()).and_then(|_| f.sync_all()) {
                    let _ = fs::remove_file(&path);
                    return Err(Error::io("write lock", &path, e));
                }
                let fence = Fence(info.token);
                Ok((info, fence))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let held = self.holder_now();
                Err(Error::Locked {
                    path: self.state_path(),
                    holder: held
                        .as_ref()
                        .map_or_else(|| "an unknown process".into(), LockInfo::who),
                    since: held.map_or_else(|| "an unknown time".into(), |h| h.since),
                })
            }
            Err(e) => Err(Error::io("create lock", &path, e)),
        }
    }

    /// Removes the lock file if it is still this run's.
    fn release(&self, fence: Fence) -> Result<()> {
        if self.holder_now().is_some_and(|h| h.token == fence.0) {
            let path = self.lock_path();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove lock", &path, e)),
            }
        }
        Ok(())
    }

    fn force_unlock(&self) -> Result<Option<LockInfo>> {
        let path = self.lock_path();
        let held = self.holder_now();
        match fs::remove_file(&path) {
            Ok(()) => Ok(held),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("remove lock", &path, e)),
        }
    }

    fn load_saved(&self) -> Result<Option<State>> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| Error::CorruptState {
            path: path.clone(),
            message: e.to_string(),
        })?;
        crate::backend::check_saved(&state, &self.stack, &self.env)
            .map_err(|message| Error::CorruptState { path, message })?;
        Ok(Some(state))
    }

    fn read_journal(&self) -> Result<Vec<Entry>> {
        let path = self.journal_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        journal::parse(&text).map_err(|message| Error::CorruptState { path, message })
    }

    /// Writes `state.json` atomically, if `fence` still holds the lock.
    fn save(&self, fence: Fence, state: &State) -> Result<()> {
        self.check_fence(fence)?;
        self.ensure_dir()?;
        let path = self.state_path();
        let tmp = self
            .dir
            .join(format!(".state.json.tmp-{}", std::process::id()));
        let text = serde_json::to_vec_pretty(state).expect("state serializes");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // Persist the rename itself.
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("write", &path, e)
        })
    }

    /// Opens the journal for appending, if `fence` holds the lock.
    ///
    /// A torn last line (a write cut short) is cut off first, so that the
    /// next entry starts on a line of its own; its request was never sent.
    fn journal(&self, fence: Fence) -> Result<Box<dyn JournalSink>> {
        self.check_fence(fence)?;
        self.ensure_dir()?;
        let path = self.journal_path();
        match fs::read(&path) {
            Ok(bytes) if !bytes.is_empty() && !bytes.ends_with(b"\n") => {
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(keep as u64))
                    .map_err(|e| Error::io("repair", &path, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &path, e)),
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(Box::new(JournalWriter { file, path }))
    }

    fn local(&self) -> Option<&StateStore> {
        Some(self)
    }
}

/// A run's fence: random, so that a lock taken over is told from ours.
pub(crate) fn new_token() -> u64 {
    let mut buf = [0u8; 8];
    getrandom::getrandom(&mut buf).expect("the OS random source works");
    u64::from_le_bytes(buf).max(1)
}

/// The local journal file, appended to.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalSink for JournalWriter {
    /// Appends one entry as one line, with a single write. The line is in the
    /// kernel when this returns: it survives the process being killed.
    fn append(&mut self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).expect("journal entry serializes");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| Error::io("append to", &self.path, e))
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `user@host` of this process.
pub(crate) fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    rfc3339(now_ms())
}

/// A time in milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_holder_and_force_unlock_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "s", "dev");
        let guard = store.lock("apply").unwrap();
        let err = store.lock("apply").unwrap_err().to_string();
        assert!(err.contains("is locked by"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(guard);
        let guard = store.lock("apply").unwrap();
        std::mem::forget(guard); // a process that died holding it
        assert!(store.lock("apply").is_err());
        assert!(store.force_unlock().unwrap().is_some());
        store.lock("apply").unwrap();
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "s", "dev");
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(store.state_path(), b"{\"version\": 1, \"lin").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        assert!(err.contains("unreadable"), "{err}");
        assert_eq!(
            fs::read(store.state_path()).unwrap(),
            b"{\"version\": 1, \"lin"
        );
    }

    #[test]
    fn save_is_atomic_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "s", "dev");
        let lock = store.lock("test").unwrap();
        let mut state = State::new("s", "dev");
        state.serial = 7;
        store.save(lock.fence, &state).unwrap();
        assert_eq!(store.load().unwrap(), Some(state));
        let leftovers: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_torn_journal_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "s", "dev");
        let lock = store.lock("test").unwrap();
        let mut w = store.journal(lock.fence).unwrap();
        let mut e = Entry::new(
            crate::journal::Op::Create,
            crate::journal::Phase::Intent,
            "A",
            "T::X::Y",
        );
        e.seq = 1;
        w.append(&e).unwrap();
        drop(w);
        let mut f = OpenOptions::new()
            .append(true)
            .open(store.journal_path())
            .unwrap();
        f.write_all(b"{\"seq\": 2, \"torn").unwrap();
        assert_eq!(
            store.read_journal().unwrap().len(),
            1,
            "a torn tail is ignored on read"
        );
        let mut w = store.journal(lock.fence).unwrap();
        e.seq = 2;
        w.append(&e).unwrap();
        let entries = store.read_journal().unwrap();
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn a_run_whose_lock_was_taken_over_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "s", "dev");
        let first = store.lock("apply").unwrap();
        store.force_unlock().unwrap();
        let second = store.lock("apply").unwrap();
        let state = State::new("s", "dev");
        let err = store.save(first.fence, &state).unwrap_err().to_string();
        assert!(err.contains("taken over"), "{err}");
        assert!(store.journal(first.fence).is_err());
        // The first run's end leaves the second run's lock alone.
        drop(first);
        assert!(store.lock_path().exists());
        store.save(second.fence, &state).unwrap();
    }

    #[test]
    fn rfc3339_looks_right() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20"), "{s}");
    }
}
