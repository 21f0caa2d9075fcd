//! ferry's AWS backend, on the real AWS SDK for Rust: credential chains and STS role
//! assumption (`chain`), and the ports of ferry-core on S3 (`s3`). Every SDK call goes through
//! `error::map`, so failures name the role, the action and the resource.

pub mod backend;
pub mod chain;
pub mod cloudformation;
pub mod deploy;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod kms;
pub mod s3;
