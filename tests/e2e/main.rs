//! End-to-end tests: they run the real `ferry` binary against a fresh `$FERRY_HOME` and
//! project directory per test, and read like the product's specification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod approvals;
mod audit;
mod aws;
mod aws_actions;
mod beyond_ci;
mod bootstrap;
mod browser;
mod build_verify;
mod codebuild;
mod conformance;
mod crash;
mod dispatch;
mod enforced;
mod evidence;
mod faults;
mod forgery;
mod gatekeeper;
mod gates;
mod github;
mod install;
mod leases;
mod load;
mod locks;
mod notify;
mod origins;
mod protected;
mod quickstart;
mod rollback;
mod secrets;
mod streams;
mod support;
mod trust;
pub mod ui;
mod validate;
