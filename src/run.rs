//! What each command does. The cloud and the stacks come from a
//! [`Provider`], so the same code runs against AWS and in tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fastcart_engine::render::human_duration;
use fastcart_engine::{
    render_plan, ApplyOptions, ApplyReport, CloudContext, Limits, Plan, Registry, Session,
    StackSpec, StateBackend, StateStore, Status,
};
use fastcart_stacks::StackOptions;
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, Global, GraphFormat, StateCommand};

/// Where the cloud and the stacks come from.
#[async_trait]
pub trait Provider: Send + Sync {
    fn registry(&self) -> &Registry;
    /// Per-service caps on concurrent mutations.
    fn service_limits(&self) -> BTreeMap<String, usize>;
    /// Region, account and availability zones, for pseudo parameters. When
    /// the state already holds the zones of `region` (`zones`), those are
    /// the zones, and they are not looked up again.
    async fn context(&self, region: &str, zones: Option<&[String]>) -> Result<CloudContext>;
    fn stack(&self, name: &str, options: &StackOptions) -> Option<StackSpec>;
    fn stack_names(&self) -> Vec<String>;
    /// A shared state backend at `url` (`--backend`), for `<stack>-<env>`.
    fn shared_backend(
        &self,
        url: &str,
        stack: &str,
        env: &str,
        lease: std::time::Duration,
    ) -> Result<Arc<dyn StateBackend>> {
        let _ = (stack, env, lease);
        Err(miette!(
            help = "drop --backend (and FASTCART_BACKEND) to keep the state in --state-dir",
            "this provider has no shared state backends, so --backend {url} cannot be used"
        ))
    }
}

/// The real thing: the AWS drivers and FastCart's stacks.
pub struct Aws {
    clients: Arc<fastcart_drivers::Clients>,
    registry: Registry,
}

impl Aws {
    /// Loads the standard AWS configuration for `region` (credentials,
    /// profile, `AWS_ENDPOINT_URL`); nothing is sent until a command needs
    /// the cloud.
    pub async fn connect(region: &str) -> Self {
        Self::with_clients(fastcart_drivers::Clients::connect(region).await)
    }

    /// Over clients configured elsewhere (tests point them at the emulator).
    pub fn with_clients(clients: Arc<fastcart_drivers::Clients>) -> Self {
        Aws {
            registry: fastcart_drivers::registry(&clients),
            clients,
        }
    }

    /// Requests sent so far, by service and operation.
    pub fn requests(&self) -> std::collections::BTreeMap<String, u64> {
        self.clients.requests.snapshot()
    }
}

#[async_trait]
impl Provider for Aws {
    fn registry(&self) -> &Registry {
        &self.registry
    }
    fn service_limits(&self) -> BTreeMap<String, usize> {
        fastcart_drivers::service_limits()
    }
    fn shared_backend(
        &self,
        url: &str,
        stack: &str,
        env: &str,
        lease: std::time::Duration,
    ) -> Result<Arc<dyn StateBackend>> {
        if !url.starts_with("s3://") {
            return Err(miette!(
                help = "give the backend as s3://BUCKET/PREFIX",
                "--backend {url} names no backend fastcart knows"
            ));
        }
        let backend = fastcart_drivers::s3_backend::S3Backend::counted(
            &self.clients.config,
            url,
            stack,
            env,
            lease,
            self.clients.requests.clone(),
        )?;
        Ok(Arc::new(backend))
    }
    async fn context(&self, region: &str, zones: Option<&[String]>) -> Result<CloudContext> {
        self.clients.context(zones).await.map_err(|e| {
            let help = match std::env::var("AWS_ENDPOINT_URL") {
                Ok(url) => format!(
                    "AWS_ENDPOINT_URL sends every request to {url}: start the emulator there \
                     (`bash scripts/run.sh` does), or unset it to use AWS"
                ),
                Err(_) => "check the AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
                           AWS_SECRET_ACCESS_KEY) and the region; to use a local emulator, set \
                           AWS_ENDPOINT_URL"
                    .to_string(),
            };
            miette!(
                help = help,
                "cannot look up the account and availability zones of {region}: {e}"
            )
        })
    }
    fn stack(&self, name: &str, options: &StackOptions) -> Option<StackSpec> {
        fastcart_stacks::stack(name, options)
    }
    fn stack_names(&self) -> Vec<String> {
        fastcart_stacks::names()
            .into_iter()
            .map(String::from)
            .collect()
    }
}

/// For `apply FILE`: the stack, environment and region the plan was made
/// for, unless a flag (or its environment variable) says otherwise, which is
/// then an error. Other commands are left as they are.
pub fn saved_plan_settings(cli: &mut Cli) -> Result<()> {
    let Command::Apply {
        plan_file: Some(path),
        ..
    } = &cli.command
    else {
        return Ok(());
    };
    let plan = Plan::load(path)?;
    cli.global
        .from_plan(&plan.stack, &plan.env, &plan.region)
        .map_err(|why| {
            miette!(
                help = "leave the flag out (the plan file says where it applies), or make a new \
                        plan with `fastcart plan --out FILE` for what you want",
                "{} was made for stack {}-{} in {}: {why}",
                path.display(),
                plan.stack,
                plan.env,
                plan.region
            )
        })
}

/// Writes generated text to standard output; a reader that stops early
/// (`| head`) is not an error.
fn print_bytes(text: &[u8], what: &str) -> Result<u8> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {what}")),
        _ => Ok(OK),
    }
}

/// Exit codes.
pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const CHANGES: u8 = 2;
/// `drift-check` found drift that weakens security (see `Guard`).
pub const SECURITY: u8 = 3;

/// Runs one command. `interactive` says whether a person can answer a
/// confirmation prompt on standard input.
pub async fn run(mut cli: Cli, provider: &dyn Provider, interactive: bool) -> Result<u8> {
    saved_plan_settings(&mut cli)?;
    let g = &cli.global;
    match cli.command {
        Command::Plan {
            out,
            json,
            detailed_exitcode,
        } => plan(g, provider, out.as_deref(), json, detailed_exitcode).await,
        Command::Apply {
            plan_file,
            auto_approve,
            parallelism,
            force_unlock,
            allow_replace,
        } => {
            let stack = find_stack(g, provider)?;
            let approval = Approval::new(auto_approve, interactive);
            let flags = ApplyFlags {
                parallelism: parallelism.map(std::num::NonZeroUsize::get),
                force_unlock,
                allow_replace,
            };
            apply(g, provider, &stack, plan_file.as_deref(), approval, flags).await
        }
        Command::Destroy {
            auto_approve,
            force_unlock,
        } => {
            // Destroy needs no stack definition: it deletes what the state holds.
            let mut empty = StackSpec::new(g.stack(), g.env());
            if let Some(s) = provider.stack(g.stack(), &options(g)) {
                empty.tags = s.tags;
            }
            let approval = Approval::new(auto_approve, interactive);
            let flags = ApplyFlags {
                force_unlock,
                ..ApplyFlags::default()
            };
            apply(g, provider, &empty, None, approval, flags).await
        }
        Command::Import { ids, apply, json } => {
            import(g, provider, ids.into_iter().collect(), apply, json).await
        }
        Command::DriftCheck { json, report } => {
            drift_check(g, provider, json, report.as_deref()).await
        }
        Command::Outputs { json } => outputs(g, provider, json),
        Command::Graph { format } => graph(g, provider, format),
        Command::State { command } => state(g, provider, command),
        Command::Schema { json } => schema(provider, json),
        Command::Export { format, out } => export(g, provider, format, out.as_deref()),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, "fastcart", &mut text);
            print_bytes(&text, "the completion script")
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut text)
                .into_diagnostic()
                .wrap_err("cannot render the manual page")?;
            print_bytes(&text, "the manual page")
        }
    }
}

fn options(g: &Global) -> StackOptions {
    StackOptions {
        env: g.env().to_string(),
        region: g.region().to_string(),
        db_secret_arn: g.db_secret_arn.clone(),
    }
}

/// The stack the flags name, validated: a stack AWS would refuse (a name
/// too long for its type, an unknown property) fails here, before any AWS
/// call.
fn find_stack(g: &Global, provider: &dyn Provider) -> Result<StackSpec> {
    let stack = named_stack(g, provider)?;
    fastcart_engine::validate(&stack, provider.registry())?;
    Ok(stack)
}

fn named_stack(g: &Global, provider: &dyn Provider) -> Result<StackSpec> {
    provider.stack(g.stack(), &options(g)).ok_or_else(|| {
        let names = provider.stack_names();
        miette!(
            help = if names.is_empty() {
                "this build of fastcart defines no stacks yet".to_string()
            } else {
                format!("known stacks: {}", names.join(", "))
            },
            "there is no stack named {}",
            g.stack()
        )
    })
}

/// Refuses to work on a state applied in another region: its resources are
/// there, and a plan here would make a second copy of the stack (a region
/// picked up from `AWS_REGION` by accident, most often).
fn same_region(g: &Global, state: &fastcart_engine::State) -> Result<()> {
    match &state.zones {
        Some(z) if z.region != g.region() && !state.resources.is_empty() => Err(miette!(
            help = format!(
                "pass --region {} (check AWS_REGION too), or use another --env for a copy \
                 of the stack in {}",
                z.region,
                g.region()
            ),
            "the state of {}-{} was applied in {}, not {}",
            state.stack,
            state.env,
            z.region,
            g.region()
        )),
        _ => Ok(()),
    }
}

/// Where the state of `<stack>-<env>` lives: `--backend`, else the local
/// `--state-dir`.
fn state_backend(
    g: &Global,
    provider: &dyn Provider,
    stack: &str,
    env: &str,
) -> Result<Arc<dyn StateBackend>> {
    match &g.backend {
        Some(url) => provider.shared_backend(
            url,
            stack,
            env,
            std::time::Duration::from_secs(g.lock_lease.max(1)),
        ),
        None => Ok(Arc::new(StateStore::new(&g.state_dir, stack, env))),
    }
}

/// What Ctrl-C (or SIGTERM) does to a command holding a session's lock, from the moment
/// the session opens until the command ends: one listener, registered at
/// once (a Ctrl-C before it would kill the process with the lock held, a
/// local lock to force or an S3 lease to wait out), whose phase an apply
/// switches when its changes start, so no Ctrl-C falls between two.
struct CtrlC {
    phase: Arc<std::sync::Mutex<OnCtrlC>>,
    task: tokio::task::JoinHandle<()>,
}

enum OnCtrlC {
    /// Reading, planning or asking: give the lock back and exit 130.
    GiveBack,
    /// Applying: start nothing new, finish the calls in flight, save.
    Cancel(CancellationToken),
    /// Asked once already: give the lock back and exit 130 now.
    Exit,
}

impl CtrlC {
    fn new(session: &Session) -> CtrlC {
        let (backend, fence) = (session.backend().clone(), session.lock().fence);
        let phase = Arc::new(std::sync::Mutex::new(OnCtrlC::GiveBack));
        // Ctrl-C, and SIGTERM as a CI runner cancelling the job sends it.
        use tokio::signal::unix::{signal, Signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async fn next(s: &mut Option<Signal>) -> bool {
            match s {
                Some(s) => s.recv().await.is_some(),
                None => std::future::pending().await,
            }
        }
        let task = tokio::spawn({
            let phase = phase.clone();
            async move {
                loop {
                    let heard = tokio::select! {
                        h = next(&mut interrupt) => h,
                        h = next(&mut terminate) => h,
                    };
                    if !heard {
                        return;
                    }
                    let mut now = phase.lock().expect("ctrl-c phase");
                    let first = match &*now {
                        OnCtrlC::Cancel(cancel) => {
                            eprintln!("\nInterrupted: no new changes will start and waits stop; finishing the requests in flight, then saving state. Press Ctrl-C again to exit at once.");
                            cancel.cancel();
                            *now = OnCtrlC::Exit;
                            continue;
                        }
                        OnCtrlC::GiveBack => true,
                        OnCtrlC::Exit => false,
                    };
                    // Every request sent is in the journal, which the next
                    // run folds into the state; only the lock must go.
                    let lock = match backend.release(fence) {
                        Ok(()) => format!("the lock on {} is given back", backend.location()),
                        Err(e) => format!(
                            "the lock on {} could not be given back ({e}); it stays until \
                             removed with --force-unlock (an S3 lock: until its lease runs out)",
                            backend.location()
                        ),
                    };
                    eprintln!(
                        "\nInterrupted{}: exiting now, {lock}. The journal records every \
                         request sent; run the command again to continue.",
                        if first { "" } else { " again" }
                    );
                    std::process::exit(130);
                }
            }
        });
        CtrlC { phase, task }
    }

    /// From now on the first Ctrl-C cancels `cancel` (an apply's changes
    /// stop starting), and a second gives the lock back and exits.
    fn cancel_on_first(&self, cancel: CancellationToken) {
        *self.phase.lock().expect("ctrl-c phase") = OnCtrlC::Cancel(cancel);
    }
}

impl Drop for CtrlC {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long to wait for a lock another run holds (`--lock-timeout`).
fn lock_wait(g: &Global) -> std::time::Duration {
    std::time::Duration::from_secs(g.lock_timeout)
}

/// Locks and loads the state `backend` holds, waiting up to
/// `--lock-timeout` for a lock another run holds.
fn open_waiting(
    g: &Global,
    backend: Arc<dyn StateBackend>,
    command: &str,
) -> Result<(Session, CtrlC)> {
    let opened = Session::open_within(backend, command, lock_wait(g), &mut |held| {
        eprintln!(
            "Waiting up to {} s (--lock-timeout) for the lock: {held}",
            g.lock_timeout
        )
    });
    match opened {
        Err(e @ fastcart_engine::Error::Locked { .. }) if g.lock_timeout > 0 => {
            Err(miette::Report::new(e)
                .wrap_err(format!("still locked after waiting {} s", g.lock_timeout)))
        }
        other => {
            let session = other?;
            let interrupt = CtrlC::new(&session);
            Ok((session, interrupt))
        }
    }
}

/// The cloud context of the region, with the zones the session's state
/// placed subnets in (so a plan keeps them).
async fn context_of(
    g: &Global,
    provider: &dyn Provider,
    session: &Session,
) -> Result<CloudContext> {
    provider
        .context(g.region(), session.state().zones_in(g.region()))
        .await
}

fn open_session(
    g: &Global,
    provider: &dyn Provider,
    stack: &StackSpec,
    command: &str,
    force_unlock: Option<Approval>,
) -> Result<(Session, CtrlC)> {
    let backend = state_backend(g, provider, &stack.name, &stack.env)?;
    if let Some(approval) = force_unlock {
        // A lock may belong to a run that is alive: ask before taking it.
        if approval != Approval::Given {
            eprintln!(
                "--force-unlock removes the lock on {} whoever holds it; if that run is still \
                 going, both would write the state.",
                backend.location()
            );
        }
        confirm(approval, "remove the lock")?;
        if let Some(held) = backend.force_unlock()? {
            eprintln!(
                "Removed the lock held by {} since {}.",
                held.who(),
                held.since
            );
        }
    }
    let (session, interrupt) = open_waiting(g, backend, command)?;
    if let Some(old) = session.backend().taken_over() {
        eprintln!(
            "Took over the lock of {} (since {}), whose lease ran out: that run is gone, and \
             what it journaled is recovered.",
            old.who(),
            old.since
        );
    }
    same_region(g, session.state())?;
    if g.verbose {
        let st = session.state();
        eprintln!(
            "state {}: lineage {}, serial {}, {} resources",
            session.backend().location(),
            st.lineage,
            st.serial,
            st.resources.len()
        );
    }
    Ok((session, interrupt))
}

async fn plan(
    g: &Global,
    provider: &dyn Provider,
    out: Option<&Path>,
    json: bool,
    detailed_exitcode: bool,
) -> Result<u8> {
    let stack = find_stack(g, provider)?;
    let (mut session, _interrupt) = open_session(g, provider, &stack, "plan", None)?;
    let ctx = context_of(g, provider, &session).await?;
    let plan = session.plan(&stack, provider.registry(), &ctx).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan).into_diagnostic()?);
    } else {
        print!("{}", render_plan(&plan));
    }
    if let Some(path) = out {
        plan.save(path)?;
        eprintln!(
            "\nSaved the plan to {0}. Apply exactly it with `fastcart apply {0}`.",
            path.display()
        );
    }
    Ok(if detailed_exitcode && plan.has_changes() {
        CHANGES
    } else {
        OK
    })
}

/// How an apply gets the go-ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approval {
    Given,
    AskOnTerminal,
    NoTerminal,
}

impl Approval {
    fn new(auto_approve: bool, interactive: bool) -> Self {
        match (auto_approve, interactive) {
            (true, _) => Approval::Given,
            (false, true) => Approval::AskOnTerminal,
            (false, false) => Approval::NoTerminal,
        }
    }
}

fn confirm(approval: Approval, what: &str) -> Result<()> {
    if approval == Approval::Given {
        return Ok(());
    }
    if approval == Approval::NoTerminal {
        return Err(miette!(
            help = "review the plan, then run again with --auto-approve (or apply a saved plan file with --auto-approve)",
            "refusing to {what} without confirmation: standard input is not a terminal"
        ));
    }
    print!("\nDo you want to {what}? Only 'yes' will be accepted: ");
    std::io::stdout().flush().into_diagnostic()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).into_diagnostic()?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(miette!("cancelled: nothing was changed"))
    }
}

/// What `apply` and `destroy` are told besides the plan.
#[derive(Default)]
struct ApplyFlags {
    /// At most this many cloud calls at once.
    parallelism: Option<usize>,
    force_unlock: bool,
    /// Resources holding data that may be replaced.
    allow_replace: Vec<String>,
}

async fn apply(
    g: &Global,
    provider: &dyn Provider,
    stack: &StackSpec,
    plan_file: Option<&Path>,
    approval: Approval,
    flags: ApplyFlags,
) -> Result<u8> {
    let destroying = stack.resources.is_empty();
    let unlock = flags.force_unlock.then_some(approval);
    let (mut session, interrupt) = open_session(g, provider, stack, "apply", unlock)?;
    let ctx = context_of(g, provider, &session).await?;
    let plan = match plan_file {
        Some(path) => {
            let plan = Plan::load(path)?;
            session.check_plan(stack, &ctx, &plan)?;
            plan
        }
        None => session.plan(stack, provider.registry(), &ctx).await?,
    };
    print!("{}", render_plan(&plan));
    // A replacement that loses data is refused before the question.
    plan.check_data_loss(provider.registry(), &flags.allow_replace)?;
    if plan.has_changes() {
        confirm(
            approval,
            if destroying {
                "destroy every resource of this stack"
            } else {
                "perform these actions"
            },
        )?;
    }

    let cancel = CancellationToken::new();
    interrupt.cancel_on_first(cancel.clone());
    let progress = crate::progress::Progress::start(plan.summary.changes());
    let opts = ApplyOptions {
        limits: Limits {
            global: flags.parallelism,
            per_service: provider.service_limits(),
            default_per_service: None,
        },
        cancel: cancel.clone(),
        on_event: Some(progress.sink()),
        allow_replace: flags.allow_replace,
        ..ApplyOptions::default()
    };
    let started = Instant::now();
    let report = session
        .apply(stack, provider.registry(), &ctx, &plan, opts)
        .await;
    progress.stop();
    let report = report?;
    print_summary(&report, started.elapsed());
    if report.cancelled {
        println!(
            "Stopped before the end. The state is saved; run `fastcart apply` again to continue."
        );
        return Ok(FAILED);
    }
    if !report.succeeded() {
        println!("Some changes failed; the state records everything that succeeded. Fix the cause and run `fastcart apply` again.");
        return Ok(FAILED);
    }
    if !destroying {
        let path = write_flat_outputs(
            &g.outputs_dir,
            &fastcart_stacks::outputs_file(&stack.name),
            &session.state().outputs,
        )?;
        println!("Outputs written to {}.", path.display());
        // Automation reads every key: one left out is an error to see.
        if !report.unresolved_outputs.is_empty() {
            for (name, why) in &report.unresolved_outputs {
                eprintln!("error: output {name} was not written: {why}");
            }
            eprintln!(
                "help: the changes were applied and the state is saved; fix these outputs in the \
                 stack (an attribute its resource does not have here, or a resource that is \
                 missing) and run `fastcart apply` again"
            );
            return Ok(FAILED);
        }
    }
    Ok(OK)
}

fn print_summary(report: &ApplyReport, elapsed: Duration) {
    let done = report.count(|s| matches!(s, Status::Done { .. }));
    let failed = report.count(|s| matches!(s, Status::Failed { .. }));
    let skipped = report.count(|s| matches!(s, Status::Skipped { .. }));
    let not_started = report.count(|s| matches!(s, Status::NotStarted));
    println!(
        "\nApply finished in {}: {done} done, {failed} failed, {skipped} skipped, {not_started} not started.",
        human_duration(elapsed.as_secs())
    );
    for r in &report.results {
        match &r.status {
            Status::Failed { error } => {
                println!("  failed  {} ({}): {error}", r.logical_id, r.type_name)
            }
            Status::Skipped { because } => {
                println!("  skipped {} ({}): {because}", r.logical_id, r.type_name)
            }
            _ => {}
        }
    }
}

/// Writes `<dir>/<file>` (keys sorted, 2-space indent) atomically.
fn write_flat_outputs(
    dir: &Path,
    file: &str,
    outputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(file);
    let tmp = dir.join(format!(".{file}.tmp-{}", std::process::id()));
    let text = serde_json::to_string_pretty(outputs).into_diagnostic()? + "\n";
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

async fn import(
    g: &Global,
    provider: &dyn Provider,
    given: BTreeMap<String, String>,
    apply: bool,
    json: bool,
) -> Result<u8> {
    let stack = find_stack(g, provider)?;
    let (mut session, _interrupt) = open_session(g, provider, &stack, "import", None)?;
    let ctx = context_of(g, provider, &session).await?;
    let report = session
        .import(&stack, provider.registry(), &ctx, &given, apply)
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).into_diagnostic()?
        );
    } else {
        print!("{}", render_import(&report));
    }
    for a in &report.ambiguous {
        let list: Vec<String> = a
            .candidates
            .iter()
            .map(|(id, how)| format!("{id} ({how})"))
            .collect();
        eprintln!(
            "{:?}",
            miette!(
                help = format!(
                    "name the one to take over with --id {}=<physical id>; nothing of {} was \
                     adopted",
                    a.logical_id, a.logical_id
                ),
                "{} ({}) matches more than one object: {}",
                a.logical_id,
                a.type_name,
                list.join(", ")
            )
        );
    }
    Ok(if report.has_ambiguity() { FAILED } else { OK })
}

/// An import report for people: one line per resource.
fn render_import(r: &fastcart_engine::import::ImportReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verb = if r.applied { "adopted" } else { "would adopt" };
    for a in &r.adopted {
        let _ = writeln!(
            out,
            "  {verb:<12} {} ({}) {} {}",
            a.logical_id, a.type_name, a.physical_id, a.how
        );
    }
    for a in &r.ambiguous {
        let ids: Vec<&str> = a.candidates.iter().map(|(id, _)| id.as_str()).collect();
        let _ = writeln!(
            out,
            "  {:<12} {} ({}): {}",
            "ambiguous",
            a.logical_id,
            a.type_name,
            ids.join(", ")
        );
    }
    for n in &r.unmatched {
        let _ = writeln!(
            out,
            "  {:<12} {} ({}): {}",
            "no match", n.logical_id, n.type_name, n.why
        );
    }
    let held = r.in_state.len();
    let _ = write!(
        out,
        "\n{} {verb}, {} ambiguous, {} without a match, {held} already in state.",
        r.adopted.len(),
        r.ambiguous.len(),
        r.unmatched.len()
    );
    if r.adopted.is_empty() && r.ambiguous.is_empty() {
        let _ = write!(out, " Nothing to import.");
    } else if !r.applied && !r.adopted.is_empty() {
        let _ = write!(
            out,
            " Nothing was changed: run again with --apply to take them over."
        );
    } else if r.applied {
        let _ = write!(
            out,
            " Run `fastcart plan` to see how they differ from the stack."
        );
    }
    out.push('\n');
    out
}

async fn drift_check(
    g: &Global,
    provider: &dyn Provider,
    json: bool,
    report_file: Option<&Path>,
) -> Result<u8> {
    let backend = state_backend(g, provider, g.stack(), g.env())?;
    if backend.load()?.is_none() {
        return Err(no_state(g, &*backend));
    }
    let (session, _interrupt) = open_waiting(g, backend, "drift-check")?;
    same_region(g, session.state())?;
    let report = session.drift(provider.registry()).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).into_diagnostic()?
        );
    } else {
        print!("{}", report.render());
    }
    if let Some(path) = report_file {
        std::fs::write(path, report.to_markdown())
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if !report.security_findings().is_empty() {
        SECURITY
    } else if report.has_drift() {
        CHANGES
    } else {
        OK
    })
}

fn load_state(g: &Global, provider: &dyn Provider) -> Result<fastcart_engine::State> {
    let backend = state_backend(g, provider, g.stack(), g.env())?;
    backend.load()?.ok_or_else(|| no_state(g, &*backend))
}

/// The error of a command that needs a state where there is none.
fn no_state(g: &Global, backend: &dyn StateBackend) -> miette::Report {
    miette!(
        help = "run `fastcart apply` first, or pass the --state-dir (or --backend), --stack and --env it used",
        "no state for {}-{} in {}: nothing was applied there",
        g.stack(),
        g.env(),
        backend.location()
    )
}

fn outputs(g: &Global, provider: &dyn Provider, json: bool) -> Result<u8> {
    let state = load_state(g, provider)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&state.outputs).into_diagnostic()?
        );
    } else {
        for (k, v) in &state.outputs {
            println!("{k} = {v}");
        }
    }
    Ok(OK)
}

/// The stack as a template; secrets only as dynamic references or NoEcho
/// parameters (see `fastcart_engine::export`). Written atomically.
fn export(
    g: &Global,
    provider: &dyn Provider,
    format: crate::cli::ExportFormat,
    out: Option<&Path>,
) -> Result<u8> {
    let stack = find_stack(g, provider)?;
    let template = match format {
        crate::cli::ExportFormat::Cloudformation => {
            fastcart_engine::export::cloudformation(&stack, provider.registry())
        }
    };
    let text = serde_json::to_string_pretty(&template).into_diagnostic()? + "\n";
    match out {
        None => print_bytes(text.as_bytes(), "the template"),
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("template");
            let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, path))
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "Wrote the {} template to {}.",
                stack.qualified_name(),
                path.display()
            );
            Ok(OK)
        }
    }
}

fn graph(g: &Global, provider: &dyn Provider, format: GraphFormat) -> Result<u8> {
    // Validated here, once: the graph is what validation returns.
    let stack = named_stack(g, provider)?;
    let graph = fastcart_engine::validate(&stack, provider.registry())?;
    let types = stack.by_id();
    let label = |id: &str| format!("{id}\\n{}", types[id].type_name);
    match format {
        GraphFormat::Dot => print!("{}", graph.to_dot(label)),
        GraphFormat::Mermaid => print!(
            "{}",
            graph.to_mermaid(|id| format!("{id}<br/>{}", types[id].type_name))
        ),
    }
    Ok(OK)
}

fn state(g: &Global, provider: &dyn Provider, command: StateCommand) -> Result<u8> {
    match &command {
        StateCommand::Push { file } => {
            let text = std::fs::read_to_string(file)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read {}", file.display()))?;
            let pushed: fastcart_engine::State = serde_json::from_str(&text)
                .into_diagnostic()
                .wrap_err_with(|| format!("{} is not a fastcart state", file.display()))?;
            let to = state_backend(g, provider, g.stack(), g.env())?;
            let serial = fastcart_engine::backend::push(to.clone(), pushed, lock_wait(g))?;
            eprintln!(
                "Pushed {} to {} as serial {serial}.",
                file.display(),
                to.location()
            );
            return Ok(OK);
        }
        StateCommand::Migrate { to } => {
            let from = state_backend(g, provider, g.stack(), g.env())?;
            let shared = to.starts_with("s3://");
            let target = Global {
                backend: shared.then(|| to.clone()),
                state_dir: if shared {
                    g.state_dir.clone()
                } else {
                    PathBuf::from(&to)
                },
                ..g.clone()
            };
            let dest = state_backend(&target, provider, g.stack(), g.env())?;
            let serial =
                fastcart_engine::backend::migrate(from.clone(), dest.clone(), lock_wait(g))?;
            eprintln!(
                "Copied the state of {}-{} from {} to {} (serial {serial}). Use the new place \
                 from now on ({}), and remove the old copy once you have checked the new one.",
                g.stack(),
                g.env(),
                from.location(),
                dest.location(),
                if shared {
                    format!("--backend {to}")
                } else {
                    format!("--state-dir {to}")
                }
            );
            return Ok(OK);
        }
        _ => {}
    }
    let state = load_state(g, provider)?;
    match command {
        StateCommand::Pull => {
            println!(
                "{}",
                serde_json::to_string_pretty(&state).into_diagnostic()?
            );
        }
        StateCommand::Push { .. } | StateCommand::Migrate { .. } => unreachable!("handled above"),
        StateCommand::List => {
            let w = state.resources.keys().map(String::len).max().unwrap_or(0);
            let t = state
                .resources
                .values()
                .map(|r| r.type_name.len())
                .max()
                .unwrap_or(0);
            for (id, r) in &state.resources {
                println!("{id:w$}  {:t$}  {}", r.type_name, r.physical_id);
            }
            println!(
                "\n{} resources; lineage {}, serial {}.",
                state.resources.len(),
                state.lineage,
                state.serial
            );
        }
        StateCommand::Show { logical_id } => {
            let r = state.resources.get(&logical_id).ok_or_else(|| {
                miette!(
                    help = "`fastcart state list` shows what the state holds",
                    "{logical_id} is not in the state of {}-{}",
                    g.stack(),
                    g.env()
                )
            })?;
            println!("{}", serde_json::to_string_pretty(r).into_diagnostic()?);
        }
    }
    Ok(OK)
}

/// A type's wait deadlines as `fastcart schema` lists them.
fn waits(d: &fastcart_engine::Deadlines) -> String {
    let mut parts = Vec::new();
    if !d.ready.is_zero() {
        parts.push(format!("until ready at most {}", short_duration(d.ready)));
    }
    if !d.gone.is_zero() {
        parts.push(format!("until gone at most {}", short_duration(d.gone)));
    }
    if parts.is_empty() {
        "none (its calls take effect at once)".to_string()
    } else {
        parts.join(", ")
    }
}

fn short_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn schema(provider: &dyn Provider, json: bool) -> Result<u8> {
    let schemas: Vec<_> = provider.registry().schemas().collect();
    if json {
        let doc = serde_json::json!({ "types": schemas });
        println!("{}", serde_json::to_string_pretty(&doc).into_diagnostic()?);
        return Ok(OK);
    }
    if schemas.is_empty() {
        println!("No resource types: this build has no drivers.");
    }
    for s in schemas {
        println!("{}", s.type_name);
        for (name, p) in &s.properties {
            let mut flags = Vec::new();
            if p.required {
                flags.push("required");
            }
            if p.create_only {
                flags.push("replaces");
            }
            if p.sensitive {
                flags.push("secret");
            } else if p.write_only {
                flags.push("write-only");
            }
            println!("  {name:32} {}", flags.join(", "));
        }
        if !s.attributes.is_empty() {
            println!("  attributes: {}", s.attributes.join(", "));
        }
        println!("  waits: {}", waits(&s.deadlines));
        println!();
    }
    Ok(OK)
}
