//! fastcart-engine: the model, validation, graph, diff, plan, apply walker
//! and state of fastcart.
//!
//! **Architecture invariant:** this crate does no AWS I/O and depends on no
//! AWS SDK crate. It reaches a cloud only through the [`Driver`] trait.

pub mod apply;
pub mod backend;
pub mod cancel;
pub mod compare;
pub mod constraint;
pub mod drift;
pub mod driver;
pub mod elements;
pub mod error;
pub mod export;
#[cfg(feature = "fake")]
pub mod fake;
pub mod graph;
pub mod import;
pub mod journal;
pub mod lookup;
pub mod model;
pub mod plan;
pub mod refresh;
pub mod render;
pub mod resolve;
pub mod schema;
pub mod session;
pub mod state;
pub mod store;
pub mod validate;
pub mod walker;

pub use apply::{ApplyEvent, ApplyOptions, ApplyReport, Operation, Status, TaskResult};
pub use backend::{Fence, JournalSink, Lock, LockInfo, StateBackend};
pub use constraint::Constraints;
pub use drift::DriftReport;
pub use driver::{
    BatchFinder, Candidate, CreateRequest, Created, Driver, DriverError, ErrorKind, Found,
    KeyQuery, Observed, Ownership, Registry, ResourceHandle, UpdateRequest,
};
pub use error::{Error, Result};
pub use graph::StackGraph;
pub use lookup::lookup;
pub use model::{
    get_att, get_azs, join, r#ref, select, sub, tag_list, CloudContext, Properties, ResourceSpec,
    StackSpec, TAG_ENV, TAG_LOGICAL_ID, TAG_STACK,
};
pub use plan::{Action, After, Change, Plan, ReplaceOrder, Step, Summary};
pub use render::render_plan;
pub use schema::{Deadlines, Guard, PropertySchema, TypeSchema, ValueKind};
pub use session::Session;
pub use state::{State, Zones};
pub use store::StateStore;
pub use validate::{validate, Problem, ValidationErrors};
pub use walker::Limits;
