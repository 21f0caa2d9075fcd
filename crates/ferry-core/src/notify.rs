//! Telling people: what a notification says (pipeline, release, digests, stage, requester,
//! expiry, the exact approve command), rendered for Slack (Block Kit), Microsoft Teams
//! (an Adaptive Card for a Workflows webhook), a generic JSON webhook, SNS, and what a dispatch
//! hands the run it starts (a GitHub workflow's inputs, a CodeBuild build's environment); and sending it
//! to every channel that wants the event, with retries and backoff. A delivery failure never
//! fails a promotion: each outcome is written to the audit log instead.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{Draft, EventKind};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{Actor, ReleaseId, Sha256Digest, StageName};
use crate::manifest::ReleaseManifest;
use crate::pipeline::{Channel, ChannelTarget, Dispatch, Notification, NotifyEvent, Pipeline};
use crate::ports::Services;

/// The version of the generic webhook payload's shape.
pub const PAYLOAD_VERSION: u32 = 1;
const ATTEMPTS: u32 = 3;

/// What happened, with everything a person needs to act on it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub event: NotifyEvent,
    pub pipeline: String,
    pub release: ReleaseId,
    pub stage: StageName,
    pub manifest_sha256: Option<Sha256Digest>,
    /// `name` → `sha256` of each artifact, and `REPOSITORY@sha256:…` of each image.
    pub artifacts: Vec<(String, String)>,
    pub images: Vec<String>,
    pub requested_by: Actor,
    /// Until when an approval given now stays valid (approval_needed).
    pub approval_expires_at: Option<Timestamp>,
    pub approve_command: Option<String>,
    /// What happened, in one line (why it failed, what was deployed).
    pub detail: String,
}

impl Message {
    pub fn new(event: NotifyEvent, pipeline: &Pipeline, release: &ReleaseId, stage: &StageName, actor: &Actor, detail: String) -> Self {
        Message {
            event,
            pipeline: pipeline.name.to_string(),
            release: release.clone(),
            stage: stage.clone(),
            manifest_sha256: None,
            artifacts: Vec::new(),
            images: Vec::new(),
            requested_by: actor.clone(),
            approval_expires_at: None,
            approve_command: None,
            detail,
        }
    }

    #[must_use]
    pub fn with_manifest(mut self, manifest: &ReleaseManifest, digest: &Sha256Digest) -> Self {
        self.manifest_sha256 = Some(digest.clone());
        self.artifacts = manifest.artifacts.iter().map(|a| (a.name.clone(), a.sha256.to_string())).collect();
        self.images = manifest.images.iter().map(crate::manifest::ManifestImage::reference).collect();
        self
    }

    pub fn title(&self) -> String {
        let (p, r, s) = (&self.pipeline, &self.release, &self.stage);
        match self.event {
            NotifyEvent::ApprovalNeeded => format!("Approval needed: {p} {r} → {s}"),
            NotifyEvent::Approved => format!("Approved: {p} {r} → {s}"),
            NotifyEvent::Rejected => format!("Rejected: {p} {r} → {s}"),
            NotifyEvent::PromotionSucceeded => format!("Promoted: {p} {r} → {s}"),
            NotifyEvent::PromotionFailed => format!("Promotion failed: {p} {r} → {s}"),
            NotifyEvent::VerificationFailed => format!("Verification failed: {p} {r} → {s}"),
        }
    }

    /// Plain text (SNS, logs).
    pub fn text(&self) -> String {
        let mut t = format!("{}\n{}\nrequested by {}\n", self.title(), self.detail, self.requested_by);
        if let Some(d) = &self.manifest_sha256 {
            t.push_str(&format!("manifest sha256 {d}\n"));
        }
        for (name, sha) in &self.artifacts {
            t.push_str(&format!("artifact {name} sha256 {sha}\n"));
        }
        for i in &self.images {
            t.push_str(&format!("image {i}\n"));
        }
        if let Some(e) = &self.approval_expires_at {
            t.push_str(&format!("an approval given now is valid until {e}\n"));
        }
        if let Some(c) = &self.approve_command {
            t.push_str(&format!("approve with: {c}\n"));
        }
        t
    }

    fn facts(&self) -> Vec<(String, String)> {
        let mut f = vec![
            ("Pipeline".to_owned(), self.pipeline.clone()),
            ("Release".to_owned(), self.release.to_string()),
            ("Stage".to_owned(), self.stage.to_string()),
            ("Requested by".to_owned(), self.requested_by.to_string()),
        ];
        if let Some(d) = &self.manifest_sha256 {
            f.push(("Manifest sha256".into(), d.to_string()));
        }
        for (name, sha) in &self.artifacts {
            f.push((format!("Artifact {name}"), format!("sha256 {sha}")));
        }
        for i in &self.images {
            f.push(("Image".into(), i.clone()));
        }
        if let Some(e) = &self.approval_expires_at {
            f.push(("Approval valid until".into(), e.to_string()));
        }
        f
    }

    /// Slack incoming-webhook payload with Block Kit blocks (and `text` as the fallback).
    pub fn slack(&self) -> Value {
        let fields: Vec<Value> = self.facts().iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")})).collect();
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": self.title()}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": self.detail}}),
        ];
        // Slack allows at most 10 fields per section.
        for chunk in fields.chunks(10) {
            blocks.push(json!({"type": "section", "fields": chunk}));
        }
        if let Some(c) = &self.approve_command {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("Approve with:\n```{c}```")}}));
        }
        json!({"text": self.title(), "blocks": blocks})
    }

    /// A message with an Adaptive Card attachment, as Teams Workflows webhooks take it.
    pub fn teams(&self) -> Value {
        let facts: Vec<Value> = self.facts().iter().map(|(k, v)| json!({"title": k, "value": v})).collect();
        let mut body = vec![
            json!({"type": "TextBlock", "size": "Large", "weight": "Bolder", "text": self.title(), "wrap": true}),
            json!({"type": "TextBlock", "text": self.detail, "wrap": true}),
            json!({"type": "FactSet", "facts": facts}),
        ];
        if let Some(c) = &self.approve_command {
            body.push(json!({"type": "TextBlock", "text": "Approve with:", "weight": "Bolder"}));
            body.push(json!({"type": "TextBlock", "text": c, "fontType": "Monospace", "wrap": true}));
        }
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body},
            }],
        })
    }

    /// The generic webhook payload: this message as JSON, with a version.
    pub fn generic(&self) -> Value {
        let mut v = json!(self);
        v["version"] = json!(PAYLOAD_VERSION);
        v["title"] = json!(self.title());
        v
    }

    /// What a dispatch hands the run it starts: the release and stage to carry on with.
    fn dispatch(&self, n: &Notification) -> Value {
        let (pipeline, release, stage) = (&self.pipeline, self.release.as_str(), self.stage.as_str());
        match &n.target {
            ChannelTarget::GitHub(g) => match &g.dispatch {
                Dispatch::Workflow { git_ref, .. } => json!({"ref": git_ref, "inputs": {"release": release, "stage": stage}}),
                // At most 10 top-level properties in client_payload.
                Dispatch::Repository { event_type } => json!({"event_type": event_type, "client_payload": {
                    "version": PAYLOAD_VERSION, "event": self.event, "pipeline": pipeline, "release": release, "stage": stage,
                    "manifest_sha256": self.manifest_sha256, "detail": self.detail,
                }}),
            },
            _ => json!({"environmentVariablesOverride": [
                {"name": "FERRY_PIPELINE", "value": pipeline, "type": "PLAINTEXT"},
                {"name": "FERRY_RELEASE", "value": release, "type": "PLAINTEXT"},
                {"name": "FERRY_STAGE", "value": stage, "type": "PLAINTEXT"},
                {"name": "FERRY_EVENT", "value": self.event.name(), "type": "PLAINTEXT"},
            ]}),
        }
    }

    pub fn payload(&self, n: &Notification) -> Value {
        match n.channel {
            Channel::Slack => self.slack(),
            Channel::Teams => self.teams(),
            Channel::Webhook | Channel::Sns => self.generic(),
            Channel::Github | Channel::Codebuild => self.dispatch(n),
        }
    }
}

/// Sends `message` to every channel of `pipeline` that wants it; failures are retried with
/// backoff, then audited, and never returned.
pub fn notify(svc: &Services, pipeline: &Pipeline, actor: &Actor, message: &Message) {
    for (i, n) in pipeline.notifications.iter().enumerate().filter(|(_, n)| n.wants(message.event, &message.stage)) {
        let (attempts, result) = send_with_retries(svc, n, message);
        let (kind, details) = match &result {
            Ok(()) => (EventKind::NotificationSent, json!({"channel": n.describe(), "event": message.event, "attempts": attempts})),
            Err(e) => {
                let at = pipeline.origin(&format!("notifications[{i}]")).map_or(String::new(), |o| format!(" (set at {o})"));
                tracing::warn!("could not notify {}{at}: {}", n.describe(), e.message);
                (
                    EventKind::NotificationFailed,
                    json!({"channel": n.describe(), "event": message.event, "attempts": attempts, "error": e.message}),
                )
            }
        };
        let draft = Draft::new(kind, actor, &pipeline.name).release(&message.release).stage(&message.stage).details(details);
        if let Err(e) = svc.audit.append(draft) {
            tracing::warn!("could not audit the notification: {}", e.message);
        }
    }
}

fn send_with_retries(svc: &Services, n: &Notification, message: &Message) -> (u32, Result<()>) {
    let payload = message.payload(n);
    let mut wait = svc.notify_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match svc.notifier.send(n, &payload, &message.title()) {
            Ok(()) => return (attempt, Ok(())),
            Err(e) if attempt >= ATTEMPTS => return (attempt, Err(e)),
            Err(e) => {
                tracing::info!("notification to {} failed (attempt {attempt}): {}; retrying", n.describe(), e.message);
                svc.clock.sleep(wait);
                wait = wait.saturating_mul(2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            event: NotifyEvent::ApprovalNeeded,
            pipeline: "shop".into(),
            release: "r0123456789abcdef".parse().unwrap(),
            stage: "prod".parse().unwrap(),
            manifest_sha256: Some(Sha256Digest::of(b"m")),
            artifacts: vec![("app".into(), Sha256Digest::of(b"a").to_string())],
            images: vec!["1.dkr.ecr.eu-west-1.amazonaws.com/web@sha256:ab".into()],
            requested_by: "deployer".parse().unwrap(),
            approval_expires_at: None,
            approve_command: Some("ferry approve p.yaml --release r0123456789abcdef --stage prod".into()),
            detail: "needs 2 approvals".into(),
        }
    }

    #[test]
    fn every_payload_carries_the_approve_command_and_the_digests() {
        let m = message();
        for v in [m.slack(), m.teams(), m.generic()] {
            let s = v.to_string();
            assert!(s.contains("ferry approve p.yaml --release r0123456789abcdef --stage prod"), "{s}");
            assert!(s.contains(Sha256Digest::of(b"a").as_str()), "{s}");
            assert!(s.contains("@sha256:ab"), "{s}");
        }
        assert_eq!(m.slack()["blocks"][0]["type"], "header");
        assert_eq!(m.teams()["attachments"][0]["content"]["type"], "AdaptiveCard");
        assert_eq!(m.generic()["version"], 1);
        assert_eq!(m.generic()["event"], "approval_needed");
    }
}
