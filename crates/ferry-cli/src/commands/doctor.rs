//! `ferry doctor`: a preflight table of everything a promotion will need, each failure with
//! a hint. On AWS every hop of every role chain is assumed and shows the resulting ARN.

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::pipeline::{Backend, Pipeline, SigningKey};
use ferry_core::preflight::Check;
use ferry_local::Home;
use serde_json::json;

use super::load_pipeline;
use crate::exit::Exit;
use crate::output::{Failure, Report};

fn local_checks(home: &Home, p: &Pipeline) -> Vec<Check> {
    let check = |check: &str, target: String, r| Check::of(check, &target, r);
    let probe = home.root.join(".doctor-probe");
    let writable = ferry_local::fsutil::write_replace(&probe, b"ok").map(|()| {
        let _ = std::fs::remove_file(&probe);
        "writable".to_owned()
    });
    let pinned = ferry_local::keys::read_public_key(&p.public_key_path());
    let mut out = vec![
        check("ferry home", home.root.display().to_string(), writable),
        check(
            "pinned public key",
            p.public_key_path().display().to_string(),
            pinned.as_ref().map(|k| format!("keyid {}", k.keyid())).map_err(Clone::clone),
        ),
    ];
    if let SigningKey::Local(name) = &p.signing.key {
        let r = home.keys().load(name).and_then(|k| match &pinned {
            Ok(pk) if &k.public_key() == pk => Ok("matches the pinned key".to_owned()),
            Ok(_) => Err(ferry_core::Error::invalid("does not match the pinned public key")
                .hint(format!("ferry key export --name {name} --out DIR"))),
            Err(_) => Ok("present".to_owned()),
        });
        out.push(check("signing key", home.keys().private_path(name).display().to_string(), r));
    }
    out
}

pub fn doctor(home: &Home, path: &Path) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let checks = match p.backend {
        Backend::Local => local_checks(home, &p),
        Backend::Aws => {
            let pinned = ferry_local::keys::read_public_key(&p.public_key_path()).ok();
            super::aws::doctor(&p, pinned.as_ref())?
        }
    };
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    let mut h = String::new();
    for c in &checks {
        let _ = writeln!(h, "{}  {:<width$}  {}  →  {}", if c.ok { "ok  " } else { "FAIL" }, c.check, c.target, c.detail);
        for hint in &c.hints {
            let _ = writeln!(h, "      hint: {hint}");
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    let _ = writeln!(h, "{} checks, {failed} failed", checks.len());
    let exit = if failed == 0 { Exit::Success } else { Exit::Failure };
    Ok(Report { human: h, json: json!({"pipeline": p.name, "ok": failed == 0, "checks": checks}), exit })
}
