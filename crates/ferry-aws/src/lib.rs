//! ferry's AWS backend, on the real AWS SDK for Rust: credential chains and STS role
//! assumption (`chain`), the ports of ferry-core on S3 (`s3`) and ECR (`ecr`), and the deploy
//! actions (`deploy`, `cloudformation`, `ecr`, `codepipeline`). Every SDK call goes through
//! `error::map`, so failures name the role, the action and the resource.

pub mod alarms;
pub mod backend;
pub mod chain;
pub mod cloudformation;
pub mod codepipeline;
pub mod creds;
pub mod deploy;
pub mod doctor;
pub mod ecr;
pub mod error;
pub mod exec;
pub mod gatekeeper;
pub mod identity;
pub mod kms;
pub mod s3;
mod wait;
