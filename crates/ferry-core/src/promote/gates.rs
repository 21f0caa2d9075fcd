//! Gates of a promotion: deployment windows and freezes, and the command and http gates that
//! run before or after the deploy actions.

use serde_json::json;

use super::{Outcome, Promotion};
use crate::audit::EventKind;
use crate::error::Result;
use crate::pipeline::{Gate, When, Window};
use crate::ports::CommandSpec;
use crate::state::Step;

impl Promotion<'_> {
    /// The stage's windows, and the organization's freezes unless the stage opts out.
    pub(super) fn check_windows(&self) -> Result<Option<Outcome>> {
        let (mut windows, org) = self.pipeline.windows_of(self.stage)?;
        let always = Window { timezone: "UTC".into(), days: Vec::new(), hours: None, freezes: Vec::new() };
        if windows.is_empty() && !org.is_empty() {
            windows.push(&always);
        }
        for w in windows {
            if let Some(closed) = crate::window::check(w, &org, self.now())? {
                let details =
                    json!({"gate": "window", "window": w.describe(), "reason": closed.reason, "next_allowed": closed.next_allowed});
                self.audit(EventKind::GateFailed, details)?;
                let (release, stage) = (self.req.release.clone(), self.stage.name.clone());
                return Ok(Some(Outcome::Blocked { release, stage, reason: closed.reason, next_allowed: closed.next_allowed }));
            }
            self.audit(EventKind::GatePassed, json!({"gate": "window", "window": w.describe()}))?;
        }
        Ok(None)
    }

    /// Where gate `i` of the stage is written.
    pub(super) fn gate_origin(&self, i: usize) -> Option<crate::Origin> {
        self.pipeline.stage_origin(&self.stage.name, &format!("gates[{i}]"))
    }

    /// Runs gate `i` (command, http, alarm); a failure fails the promotion, recorded:
    /// `Ok(Some(why))`. (`Err`: stopped, or the gate could not run.)
    pub(super) fn run_gate(&self, i: usize) -> Result<Option<String>> {
        let gate = &self.stage.gates[i];
        let phase = gate.when();
        if let Gate::Window(_) = gate {
            return Ok(None);
        }
        {
            self.check_stop(&format!("gate {i}"))?;
            if phase == When::After {
                self.step(Step::CheckGate { index: i })?;
            }
            // What was decided so far is on record before the gate probes anything.
            self.commit()?;
            let (passed, why, details) = match gate {
                Gate::Window(_) => return Ok(None),
                Gate::Command { run, timeout, .. } => {
                    let spec = CommandSpec {
                        run: run.clone(),
                        dir: self.pipeline.dir().to_owned(),
                        env: self.base_env(),
                        timeout: *timeout,
                        label: format!("gate {}[{i}]", self.stage.name),
                        target: Some(self.target()),
                        clear_env: Vec::new(),
                        stop: Some(self.stop.clone()),
                    };
                    let out = self.svc.exec.run(&spec).map_err(|e| e.at(self.gate_origin(i)))?;
                    let code = out.exit_code.map_or("none".into(), |c| c.to_string());
                    let details = json!({"exit_code": out.exit_code, "timed_out": out.timed_out, "output": out.output_tail});
                    (out.success, format!("exit code {code}"), details)
                }
                Gate::Http(h) => match crate::health::check(h, self.svc.http.as_ref(), self.svc.clock.as_ref(), &self.stop) {
                    Ok(summary) => (true, summary.clone(), json!({"result": summary})),
                    Err(why) => (false, why.clone(), json!({"result": why})),
                },
                Gate::Alarm(a) => {
                    match crate::health::check_alarms(a, &self.target(), self.svc.alarms.as_ref(), self.svc.clock.as_ref(), &self.stop) {
                        Ok(summary) => (true, summary.clone(), json!({"result": summary})),
                        Err(why) => (false, why.clone(), json!({"result": why, "reason": why})),
                    }
                }
            };
            if !passed && self.stop.is_raised() {
                // Stopped (SIGINT/SIGTERM, a lost lock) before the gate could decide.
                self.check_stop(&format!("gate {i} decided"))?;
            }
            let mut details = details;
            details["gate"] = json!(gate.summary());
            details["index"] = json!(i);
            details["when"] = json!(phase);
            if passed {
                self.audit(EventKind::GatePassed, details)?;
            } else {
                self.audit(EventKind::GateFailed, details)?;
                let detail = format!("`{}`: {why}", gate.summary());
                self.step(match phase {
                    When::Before => Step::GateFailedBeforeDeploy { index: i, detail },
                    When::After => Step::GateFailedAfterDeploy { index: i, detail },
                })?;
                return Ok(Some(format!("gate `{}` of stage `{}` failed: {why}", gate.summary(), self.stage.name)));
            }
        }
        Ok(None)
    }
}
