//! The S3 state backend against the emulator's S3, which honours
//! `If-None-Match` and `If-Match`: one lock holder, a dead run's lease
//! taken over, compare-and-swap state writes, no rollback, and the journal
//! as an object per entry.

use std::sync::Arc;
use std::time::Duration;

use fastcart_drivers::s3_backend::S3Backend;
use fastcart_engine::journal::{Entry, Op, Phase};
use fastcart_engine::{Error, Lock, State, StateBackend};

const LEASE: Duration = Duration::from_millis(1500);

/// A bucket of the test's own, as the user would have made it.
async fn bucket(name: &str) -> (aws_config::SdkConfig, aws_sdk_s3::Client) {
    crate::moto::moto().bucket(name).await
}

/// Puts `state` as the state object, behind the backend's back.
async fn put_state(s3: &aws_sdk_s3::Client, bucket: &str, state: &State) {
    s3.put_object()
        .bucket(bucket)
        .key("team/shop-dev/state.json")
        .body(serde_json::to_vec(state).unwrap().into())
        .send()
        .await
        .unwrap();
}

fn backend(config: &aws_config::SdkConfig, bucket: &str) -> Arc<dyn StateBackend> {
    Arc::new(S3Backend::new(config, &format!("s3://{bucket}/team"), "shop", "dev", LEASE).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_holds_the_lock_and_a_dead_runs_lease_is_taken_over() {
    let (config, _) = bucket("fastcart-state-lock").await;
    let process = || {
        S3Backend::new(
            &config,
            "s3://fastcart-state-lock/team",
            "shop",
            "dev",
            LEASE,
        )
        .unwrap()
    };
    let first = process();
    let lock = Lock::take(Arc::new(first.clone()), "apply").unwrap();

    // Another process: refused at once, naming the holder.
    let second = process();
    let err = Lock::take(Arc::new(second.clone()), "apply").unwrap_err();
    let said = err.to_string();
    assert!(matches!(err, Error::Locked { .. }), "{said}");
    assert!(
        said.contains(&format!("pid {}", std::process::id())),
        "{said}"
    );
    assert!(said.contains("`apply`"), "{said}");
    assert!(said.contains("its lease runs out at 20"), "{said}");

    // While the holder renews its lease, waiting past it changes nothing.
    std::thread::sleep(LEASE * 2);
    assert!(Lock::take(Arc::new(second.clone()), "apply").is_err());

    // Killed (-9): the lease runs out, and the next run takes the lock over,
    // saying whose it was; the dead run can no longer write.
    first.die();
    std::thread::sleep(LEASE + Duration::from_millis(300));
    let taken = Lock::take(Arc::new(second.clone()), "apply").unwrap();
    let replaced = second.taken_over().expect("whose lock it replaced");
    assert_eq!(replaced.token, lock.fence.0);
    let err = first
        .save(lock.fence, &State::new("shop", "dev"))
        .unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err}");
    second
        .save(taken.fence, &State::new("shop", "dev"))
        .unwrap();
    std::mem::forget(lock);

    // Released when dropped: the next run gets it at once.
    drop(taken);
    let again = Lock::take(Arc::new(second.clone()), "plan").unwrap();
    // --force-unlock names the holder and frees it.
    assert_eq!(
        second.force_unlock().unwrap().map(|l| l.token),
        Some(again.fence.0)
    );
    Lock::take(Arc::new(first), "plan").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_writes_are_compare_and_swap_and_never_roll_back() {
    let (config, s3) = bucket("fastcart-state-cas").await;
    let b = backend(&config, "fastcart-state-cas");
    let lock = Lock::take(b.clone(), "apply").unwrap();
    assert_eq!(b.load().unwrap(), None);
    let mut state = State::new("shop", "dev");
    state.serial = 1;
    b.save(lock.fence, &state).unwrap();
    state.serial = 2;
    b.save(lock.fence, &state).unwrap();

    // A write behind this run's back: its next write is refused.
    let mut other = state.clone();
    other.serial = 3;
    put_state(&s3, "fastcart-state-cas", &other).await;
    state.serial = 3;
    let err = b.save(lock.fence, &state).unwrap_err().to_string();
    assert!(err.contains("written by another run"), "{err}");

    // An older state put back is refused on read, naming both serials.
    state.serial = 1;
    put_state(&s3, "fastcart-state-cas", &state).await;
    let err = b.load().unwrap_err().to_string();
    assert!(
        err.contains("rollback") && err.contains("serial is 1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_an_object_per_entry_folded_in_and_compacted() {
    let (config, _) = bucket("fastcart-state-journal").await;
    let b = backend(&config, "fastcart-state-journal");
    let lock = Lock::take(b.clone(), "apply").unwrap();
    let mut state = State::new("shop", "dev");
    b.save(lock.fence, &state).unwrap();
    let mut journal = b.journal(lock.fence).unwrap();
    for seq in 1..=3 {
        let mut e = Entry::new(Op::Create, Phase::Intent, &format!("R{seq}"), "T::X::Y");
        e.seq = seq;
        e.lineage = state.lineage.clone();
        journal.append(&e).unwrap();
        state.record(&e);
    }
    assert_eq!(b.read_journal().unwrap().len(), 3);
    // Another run on another machine sees what this one journaled.
    let other = backend(&config, "fastcart-state-journal");
    assert_eq!(other.load().unwrap().unwrap().pending.len(), 3);

    // A second entry under a sequence number taken is refused.
    let mut dup = Entry::new(Op::Create, Phase::Intent, "R1", "T::X::Y");
    dup.seq = 2;
    assert!(journal.append(&dup).is_err());

    // Saved with the first two folded in, those two are compacted.
    let mut saved = state.clone();
    saved.journal_seq = 2;
    saved.serial = 1;
    b.save(lock.fence, &saved).unwrap();
    let left: Vec<u64> = b.read_journal().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(left, [3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_and_never_created() {
    let config = crate::moto::moto().config_in("eu-central-1").await;
    let b = backend(&config, "fastcart-no-such-bucket");
    let err = Lock::take(b.clone(), "plan").unwrap_err();
    let help = match &err {
        Error::Backend { help, .. } => help.clone(),
        other => panic!("{other}"),
    };
    assert!(help.contains("does not exist"), "{help}");
    assert!(help.contains("never creates"), "{help}");
}

/// Ten rounds of two runs (two backends, as two machines would have) taking
/// the lock at the same moment and writing the next serial: exactly one
/// runs each round, the other is refused naming the holder, and no serial
/// is lost or written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_started_together_one_runs_and_no_state_is_lost() {
    let (config, _) = bucket("fastcart-state-race").await;
    let runs = [
        backend(&config, "fastcart-state-race"),
        backend(&config, "fastcart-state-race"),
    ];
    let (mut serial, mut refused) = (0, 0);
    for round in 1..=10u64 {
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<std::result::Result<(), String>> = std::thread::scope(|s| {
            let handles: Vec<_> = runs
                .iter()
                .map(|b| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let lock = Lock::take(b.clone(), "apply").map_err(|e| e.to_string())?;
                        let mut state = b
                            .load()
                            .unwrap()
                            .unwrap_or_else(|| State::new("shop", "dev"));
                        state.serial += 1;
                        b.save(lock.fence, &state).map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|o| o.is_ok()).count() as u64;
        assert!(won >= 1, "round {round}: {outcomes:?}");
        for lost in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert!(lost.contains("is locked by"), "round {round}: {lost}");
            refused += 1;
        }
        // Each run that held the lock wrote the next serial; none was lost.
        serial += won;
        let state = runs[0].load().unwrap().unwrap();
        assert_eq!(state.serial, serial, "round {round}");
    }
    assert!(refused > 0, "the runs never met: nothing was tested");
}

/// Under lost answers (a third of S3's answers lost after the write took
/// effect, so the SDK sends the request again and meets its own write): a
/// run never mistakes its own lock, lease renewal, state or journal entry
/// for another run's. Two runs in turn take the lock, journal and save
/// four times each, and give the lock back; what S3 holds at the end is
/// exactly what they wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_never_make_a_run_conflict_with_its_own_writes() {
    let m = crate::moto::moto();
    let name = "fastcart-state-lossy";
    let (_, s3) = bucket(name).await;
    let proxy =
        crate::fault_proxy::FaultProxy::start_losing(&m.venv, &m.endpoint, 0.3, 11, "after");
    let config = fastcart_drivers::Clients::loader("eu-central-1")
        .endpoint_url(&proxy.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    // A lease long enough for the SDK's backoff between attempts.
    let lease = Duration::from_secs(6);
    let b: Arc<dyn StateBackend> = Arc::new(
        S3Backend::new(&config, &format!("s3://{name}/team"), "shop", "dev", lease).unwrap(),
    );
    for run in 0..2 {
        let lock = Lock::take(b.clone(), "apply").unwrap_or_else(|e| panic!("run {run}: {e}"));
        let mut state = b
            .load()
            .unwrap()
            .unwrap_or_else(|| State::new("shop", "dev"));
        let mut journal = b.journal(lock.fence).unwrap();
        for i in 0..4 {
            let mut e = Entry::new(Op::Create, Phase::Intent, &format!("R{run}{i}"), "T::X::Y");
            e.seq = state.journal_seq + 1;
            e.lineage = state.lineage.clone();
            journal
                .append(&e)
                .unwrap_or_else(|err| panic!("run {run}, entry {}: {err}", e.seq));
            state.record(&e);
            state.serial += 1;
            b.save(lock.fence, &state)
                .unwrap_or_else(|err| panic!("run {run}, serial {}: {err}", state.serial));
        }
        // Long enough for a renewal of the lease through the proxy.
        std::thread::sleep(lease / 3 + Duration::from_millis(300));
        drop(journal);
        b.release(lock.fence)
            .unwrap_or_else(|err| panic!("run {run}: {err}"));
        std::mem::forget(lock);
        let held = s3
            .head_object()
            .bucket(name)
            .key("team/shop-dev/lock.json")
            .send()
            .await;
        assert!(held.is_err(), "run {run}: the lock was not given back");
    }
    let stats = proxy.stats();
    eprintln!("fault proxy: {stats}");
    let lost = stats["lost_after"].as_u64().unwrap();
    assert!(lost >= 8, "only {lost} answers were lost");
    let direct = backend(&crate::moto::moto().config_in("eu-central-1").await, name);
    let state = direct.load().unwrap().unwrap();
    assert_eq!(state.serial, 8);
    assert_eq!(state.pending.len(), 8);
    assert!(direct.read_journal().unwrap().is_empty(), "compacted");
}
