//! The `fastcart` command line: argument parsing ([`cli`]) and the commands
//! ([`run`]), over a [`run::Provider`] of drivers and stacks.

pub mod cli;
pub mod demo;
pub mod log;
pub mod progress;
pub mod run;
