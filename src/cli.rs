//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "fastcart",
    version,
    about = "Plan, apply and check AWS infrastructure declared in Rust",
    long_about = "fastcart declares AWS stacks in Rust as data, reads what really exists, \
                  prints a plan a person can trust, applies it concurrently in dependency \
                  order, and reports drift.\n\n\
                  Exit codes: 0 success (and no changes or drift where that is asked), \
                  1 error, 2 changes (plan --detailed-exitcode) or drift (drift-check), \
                  3 drift that weakens security (drift-check)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Directory holding the state of every stack (one folder per stack and environment)
    #[arg(long, global = true, default_value = ".fastcart", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Keep state, journal and lock in S3 instead of --state-dir, shared by every machine
    /// that uses the same URL: s3://BUCKET/PREFIX (the bucket must exist)
    #[arg(long, global = true, env = "FASTCART_BACKEND", value_name = "URL")]
    pub backend: Option<String>,
    /// How long a lock in a shared backend lasts without renewal: a run that died holding it
    /// is taken over after this
    #[arg(long, global = true, value_name = "SECONDS",
          default_value_t = fastcart_drivers::s3_backend::DEFAULT_LEASE.as_secs())]
    pub lock_lease: u64,
    /// How long to wait for a lock another run holds before giving up (0: fail at once, naming
    /// the holder). A run that died holding a shared lock is taken over once its lease runs out
    #[arg(long, global = true, default_value_t = 0, value_name = "SECONDS")]
    pub lock_timeout: u64,
    /// Use this existing Secrets Manager secret for the database credentials
    /// instead of one managed by RDS; read at apply time, never stored
    #[arg(long, global = true, value_name = "ARN")]
    pub db_secret_arn: Option<String>,
    /// Print more about what is happening (state files, refresh notes)
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Log to standard error at this level (error, warn, info, debug, trace) or with a
    /// tracing filter (`info,aws_smithy_runtime=debug`): fastcart's AWS calls at debug, the
    /// SDK's own request logs (operation, attempt, status) at debug; never secrets
    #[arg(long, global = true, env = "FASTCART_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Where a successful apply writes the stack's outputs (flat-outputs.json for the order
    /// stack, <stack>-flat-outputs.json for the others)
    #[arg(long, global = true, default_value = "cfn-outputs", value_name = "DIR")]
    pub outputs_dir: PathBuf,
    /// Stack to work on [default: fastcart; `apply FILE`: the plan's]
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// Environment suffix carried by every name and tag [default: dev; `apply FILE`: the plan's]
    #[arg(long, global = true, env = "ENVIRONMENT_SUFFIX")]
    pub env: Option<String>,
    /// AWS region [default: the stack's: eu-central-1, flask-api eu-south-1; `apply FILE`: the
    /// plan's]
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
}

impl Global {
    pub fn stack(&self) -> &str {
        self.stack.as_deref().unwrap_or("fastcart")
    }

    pub fn env(&self) -> &str {
        self.env.as_deref().unwrap_or("dev")
    }

    pub fn region(&self) -> &str {
        self.region
            .as_deref()
            .unwrap_or_else(|| fastcart_stacks::home_region(self.stack()))
    }

    /// Takes stack, environment and region from a saved plan, for
    /// `apply FILE`: a value given (by flag or its environment variable)
    /// that contradicts the plan is an error that says so.
    pub fn from_plan(&mut self, stack: &str, env: &str, region: &str) -> Result<(), String> {
        let fields = [
            ("--stack", None, &mut self.stack, stack),
            ("--env", Some("ENVIRONMENT_SUFFIX"), &mut self.env, env),
            ("--region", Some("AWS_REGION"), &mut self.region, region),
        ];
        let mut wrong = Vec::new();
        for (flag, var, given, saved) in fields {
            match given.as_deref() {
                Some(g) if g != saved => wrong.push(format!(
                    "{flag}{} is {g}, the plan was made for {saved}",
                    var.map(|v| format!(" (or {v})")).unwrap_or_default()
                )),
                _ => *given = Some(saved.to_string()),
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what apply would change, without changing anything
    Plan {
        /// Save the plan to FILE, to apply exactly it later with `fastcart apply FILE`
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the plan as JSON
        #[arg(long)]
        json: bool,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the cloud match the stack
    ///
    /// Ctrl-C stops new changes and every wait at once, finishes the requests
    /// already sent and saves state; a second Ctrl-C exits at once (the journal
    /// records every request sent, and the next apply picks up from it).
    Apply {
        /// A plan saved by `fastcart plan --out`: applied to the stack, environment and region it
        /// was made for (a flag that says otherwise is an error); refused if the state or stack
        /// moved since
        #[arg(value_name = "PLAN_FILE")]
        plan_file: Option<PathBuf>,
        /// Apply without asking for confirmation
        #[arg(long)]
        auto_approve: bool,
        /// At most N cloud calls at once (default: no global cap; each service is still paced)
        #[arg(long, value_name = "N")]
        parallelism: Option<std::num::NonZeroUsize>,
        /// Remove a lock left behind by a run that died, then continue (asks first, unless
        /// --auto-approve)
        #[arg(long)]
        force_unlock: bool,
        /// Allow the plan to replace this resource although it holds data (a database, cache,
        /// stream, secret or key), which the replacement loses; repeat for each such resource
        #[arg(long, value_name = "LOGICAL_ID")]
        allow_replace: Vec<String>,
    },
    /// Delete every resource of the stack
    Destroy {
        /// Destroy without asking for confirmation
        #[arg(long)]
        auto_approve: bool,
        /// Remove a lock left behind by a run that died, then continue (asks first, unless
        /// --auto-approve)
        #[arg(long)]
        force_unlock: bool,
    },
    /// Take over objects that exist but that no state holds (made by Pulumi, say), found by
    /// their natural keys; exit 1 when a resource has two candidates
    ///
    /// Without --apply it changes nothing and prints, per resource, what it would adopt and
    /// what it found no match for. With --apply it records the matches in state and adds the
    /// ownership tags (removing none); it never creates, replaces or deletes anything. Run
    /// `fastcart plan` afterwards to see how the running objects differ from the stack.
    Import {
        /// Take over PHYSICAL_ID as LOGICAL_ID instead of searching for it; repeatable
        #[arg(long = "id", value_name = "LOGICAL_ID=PHYSICAL_ID", value_parser = parse_given_id)]
        ids: Vec<(String, String)>,
        /// Record the matches in state and tag them (otherwise nothing changes)
        #[arg(long)]
        apply: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Compare what was applied with what exists; exit 0 in sync, 2 drift, 3 drift that weakens
    /// security (ingress opened to the world, a policy widened to *, protection off, public
    /// access on), 1 error
    DriftCheck {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Also write a Markdown report to FILE
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Print the stack's outputs from the last apply
    Outputs {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the stack's dependency graph
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Inspect the state
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Write the stack as a template other tools can judge (cfn-lint, cfn-guard, checkov)
    Export {
        /// The template language
        #[arg(long, value_enum, default_value_t = ExportFormat::Cloudformation)]
        format: ExportFormat,
        /// Write it to FILE instead of standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the resource types fastcart supports and their properties
    Schema {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `fastcart completions bash > /etc/bash_completion.d/fastcart`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `fastcart man | man -l -`
    Man,
}

/// `LOGICAL_ID=PHYSICAL_ID`, split on the first `=`.
fn parse_given_id(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((l, p)) if !l.is_empty() && !p.is_empty() => Ok((l.to_string(), p.to_string())),
        _ => Err(format!(
            "{s:?} is not LOGICAL_ID=PHYSICAL_ID (for example --id Vpc=vpc-0abc)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the resources in state
    List,
    /// Show one resource in state (secrets appear only as salted hashes)
    Show {
        /// The resource's logical id
        logical_id: String,
    },
    /// Print the whole state as JSON, with the journal folded in (secrets as salted hashes)
    Pull,
    /// Replace the state with the one in FILE (as `state pull` printed it); refused for another
    /// lineage, a lower serial, or a journal the file has not caught up with
    Push {
        /// The state file to push
        file: PathBuf,
    },
    /// Copy the state, with what its journal holds, to another backend that holds none: a
    /// directory or s3://BUCKET/PREFIX; the old copy is left as it was
    Migrate {
        /// Where to: s3://BUCKET/PREFIX, or a local state directory
        #[arg(long, value_name = "BACKEND")]
        to: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// An AWS CloudFormation template (JSON)
    Cloudformation,
}
