//! The AWS drivers against moto server: for every type, create, read back
//! equal, update in place, replace on a create-only change, delete, and find
//! by ownership tags; batching by request counts; and conformance of every
//! schema with AWS's own resource schemas.
//!
//! One emulator serves the whole binary; each test works in its own
//! environment suffix, so tests never see each other's resources.

#[path = "../../../tests/support/fault_proxy.rs"]
mod fault_proxy;
#[path = "../../../tests/support/moto.rs"]
mod moto;

mod common;

mod balancing;
mod compute;
mod conformance;
mod data;
mod keys;
mod lost_answers;
mod network;
mod network_edge;
mod network_routing;
mod scaling;
mod security;
mod state_s3;
mod streams;
