//! `ferry trust publish | show | diff`: a pipeline's trust root, published by an administrator
//! where the automation cannot write (on AWS with the security account's trust-admin role,
//! assumed with the administrator's own credentials; locally under `$FERRY_HOME/trust`).

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::pipeline::{Backend, Pipeline};
use ferry_core::ports::TrustStore;
use ferry_core::trust::{Published, TrustRoot, diff as root_diff};
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id, pinned_key};
use crate::env;
use crate::exit::Exit;
use crate::output::{Failure, Report};

fn proposed(p: &Pipeline) -> Result<TrustRoot, Failure> {
    Ok(TrustRoot::of(p, &pinned_key(p)?)?)
}

fn describe(p: &Published) -> String {
    let mut h =
        format!("trust root of `{}`, serial {}, published by {} at {}\n", p.root.pipeline, p.serial, p.published_by, p.published_at);
    for l in p.root.lines() {
        let _ = writeln!(h, "  {l}");
    }
    h
}

pub fn publish(home: &Home, path: &Path, role: Option<&str>) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let root = proposed(&p)?;
    let (store, by): (Box<dyn TrustStore>, ferry_core::ids::Actor) = match p.backend {
        Backend::Local => (home.services().trust, env::actor()?),
        Backend::Aws => {
            let role = role.map(parse_id).transpose()?;
            super::aws::trust_admin(&p, role.as_ref(), home.clock.clone())?
        }
    };
    let before = store.current(&p.name)?;
    let (published, new) = store.publish(&root, &by, home.clock.now())?;
    let mut h = String::new();
    if !new {
        let _ = writeln!(
            h,
            "the published trust root of `{}` (serial {}) already says exactly this; nothing published",
            p.name, published.serial
        );
        return Ok(Report::ok(h, json!({"published": false, "root": published})));
    }
    let _ = writeln!(h, "published trust root {} of `{}` to {}", published.serial, p.name, store.location());
    match &before {
        Some(b) => {
            let _ = writeln!(h, "changes from serial {}:", b.serial);
            for l in root_diff(&b.root, &root) {
                let _ = writeln!(h, "  {l}");
            }
        }
        None => h.push_str(&describe(&published)),
    }
    Ok(Report::ok(h, json!({"published": true, "root": published})))
}

pub fn show(home: &Home, path: &Path, history: bool) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let ctx = Ctx::connect(home, &p, "trust")?;
    let store = &ctx.svc().trust;
    let roots = if history { store.history(&p.name)? } else { store.current(&p.name)?.into_iter().collect() };
    if roots.is_empty() {
        return Err(ferry_core::Error::failed(format!("no trust root is published for `{}` at {}", p.name, store.location()))
            .hint(format!("an administrator publishes one with `ferry trust publish {}`", path.display()))
            .into());
    }
    let h: String = roots.iter().map(describe).collect();
    Ok(Report::ok(h, json!({"roots": roots})))
}

pub fn diff(home: &Home, path: &Path) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let ctx = Ctx::connect(home, &p, "trust")?;
    let root = proposed(&p)?;
    let Some(published) = ctx.svc().trust.current(&p.name)? else {
        let h = format!(
            "no trust root is published for `{}`; the pipeline file says:\n{}",
            p.name,
            root.lines().iter().map(|l| format!("  + {l}\n")).collect::<String>()
        );
        return Ok(Report { human: h, json: json!({"published": null, "changes": root.lines()}), exit: Exit::VerificationFailed });
    };
    let changes = root_diff(&published.root, &root);
    if changes.is_empty() {
        return Ok(Report::ok(
            format!("`{}` agrees with its published trust root (serial {})\n", path.display(), published.serial),
            json!({"published": published.serial, "changes": changes}),
        ));
    }
    let mut h = format!(
        "`{}` disagrees with the published trust root (serial {}); `-` published, `+` the file:\n",
        path.display(),
        published.serial
    );
    for l in &changes {
        let _ = writeln!(h, "  {l}");
    }
    Ok(Report { human: h, json: json!({"published": published.serial, "changes": changes}), exit: Exit::VerificationFailed })
}
