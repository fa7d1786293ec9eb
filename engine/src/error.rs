use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

use crate::driver::DriverError;
use crate::validate::ValidationErrors;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] ValidationErrors),

    #[error("cannot {action} {}: {source}", path.display())]
    #[diagnostic(
        code(fastcart::io),
        help("check that the directory exists and is writable by this user")
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("state file {} is unreadable: {message}", path.display())]
    #[diagnostic(
        code(fastcart::corrupt_state),
        help("fastcart left the file untouched. Restore it from a backup, or move it aside to start over: the next plan then adopts this stack's resources by their ownership tags")
    )]
    CorruptState { path: PathBuf, message: String },

    #[error("state {} is locked by {holder} since {since}", path.display())]
    #[diagnostic(
        code(fastcart::locked),
        help("wait for that run to finish, or run again with --lock-timeout SECONDS to wait for it. If it is no longer running (the process died), run again with --force-unlock")
    )]
    Locked {
        path: PathBuf,
        holder: String,
        since: String,
    },

    #[error("the lock on the state in {location} was taken over; it is held by {now}")]
    #[diagnostic(
        code(fastcart::lock_lost),
        help("this run's writes are refused so that it cannot overwrite the new holder's; what it sent is in the journal. Let the other run finish, then run again")
    )]
    LockLost { location: String, now: String },

    #[error("state backend {location}: {message}")]
    #[diagnostic(code(fastcart::backend), help("{help}"))]
    Backend {
        location: String,
        message: String,
        help: String,
    },

    #[error("the saved plan is stale: {reason}")]
    #[diagnostic(
        code(fastcart::stale_plan),
        help("nothing was changed. Run `fastcart plan --out FILE` again and apply the new plan")
    )]
    StalePlan { reason: String },

    #[error(
        "the plan replaces {}, which hold{} data a replacement loses",
        ids.join(", "),
        if ids.len() == 1 { "s" } else { "" }
    )]
    #[diagnostic(
        code(fastcart::replaces_data),
        help(
            "nothing was changed. The plan says which property forces each replacement: \
             change the stack so it does not, or, if losing the data is intended, apply \
             again with --allow-replace {}",
            ids.join(" --allow-replace ")
        )
    )]
    ReplacesData { ids: Vec<String> },

    #[error("plan file {} is unreadable: {message}", path.display())]
    #[diagnostic(
        code(fastcart::bad_plan),
        help("pass a file written by `fastcart plan --out`")
    )]
    BadPlan { path: PathBuf, message: String },

    #[error("failed to read {type_name} resources: {source}")]
    #[diagnostic(
        code(fastcart::refresh),
        help("nothing was changed; check credentials, region and network, then retry")
    )]
    Refresh {
        type_name: String,
        source: DriverError,
    },

    #[error("no driver for type {type_name}, which the state holds for {logical_id}")]
    #[diagnostic(
        code(fastcart::no_driver),
        help("this build of fastcart cannot manage that type; use the build that created it")
    )]
    NoDriver {
        logical_id: String,
        type_name: String,
    },

    #[error("internal error: {message}")]
    #[diagnostic(
        code(fastcart::internal),
        help("this is a bug in fastcart and nothing was changed; please report it with the output of `fastcart plan --json`")
    )]
    Internal { message: String },

    #[error("cannot import: {message}")]
    #[diagnostic(
        code(fastcart::import),
        help(
            "nothing was imported or changed; fix the --id given, then run `fastcart import` again"
        )
    )]
    Import { message: String },

    #[error("cannot resolve {logical_id}: {message}")]
    #[diagnostic(code(fastcart::resolve))]
    Resolve { logical_id: String, message: String },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
