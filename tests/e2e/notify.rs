//! Reaching approvers: Slack, Teams and generic webhooks hear that an approval is needed, with
//! the digests and the exact approve command; a webhook that keeps failing is retried, never
//! fails the promotion, and is audited. Webhook URLs are secrets and never sit in the file. On
//! the aws backend a URL may come from SSM, and an SNS topic hears too.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::aws::{AwsWorld, TOOLING, boto, unique};
use crate::support::{Project, TWO_APPROVERS, pipeline};

const CHANNELS: &str = "notifications:
  - {type: slack, url_env: SLACK_URL, on: [approval_needed]}
  - {type: teams, url_env: TEAMS_URL, on: [approval_needed]}
  - {type: webhook, url_env: HOOK_URL}
  - {type: webhook, url_env: BROKEN_URL, stages: [prod]}
";

#[test]
fn approvers_hear_of_an_approval_on_slack_teams_and_a_webhook_and_a_failing_hook_changes_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        for ok in ["/slack", "/teams", "/hook"] {
            Mock::given(method("POST")).and(path(ok)).respond_with(ResponseTemplate::new(200)).mount(&server).await;
        }
        Mock::given(method("POST")).and(path("/broken")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
        server
    });
    let p = Project::new(&format!("{}{CHANNELS}", pipeline(TWO_APPROVERS)));
    let id = p.build();
    let with_hooks = |actor: &str, args: &[&str]| {
        let mut c = p.command(actor, args);
        for (var, at) in [("SLACK_URL", "/slack"), ("TEAMS_URL", "/teams"), ("HOOK_URL", "/hook"), ("BROKEN_URL", "/broken")] {
            c.env(var, format!("{}{at}", server.uri()));
        }
        crate::support::Run::from(c.output().unwrap())
    };
    with_hooks("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    // Exit 3 (waiting) as always: the broken hook does not change the outcome.
    let waiting = with_hooks("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    assert!(!waiting.stderr.contains(&server.uri()), "webhook URLs are never printed: {}", waiting.stderr);

    let received = rt.block_on(server.received_requests()).unwrap();
    let bodies = |at: &str| -> Vec<serde_json::Value> {
        received.iter().filter(|r| r.url.path() == at).map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    };
    let approve = format!("ferry approve pipeline.yaml --release {id} --stage prod");
    let app_sha = p.manifest(&id)["artifacts"][0]["sha256"].as_str().unwrap().to_owned();

    let slack = bodies("/slack");
    assert_eq!(slack.len(), 1, "slack hears of the approval only: {slack:#?}");
    assert_eq!(slack[0]["blocks"][0]["type"], "header");
    assert_eq!(slack[0]["blocks"][0]["text"]["text"], format!("Approval needed: shop {id} → prod"));
    let text = slack[0].to_string();
    assert!(text.contains(&approve) && text.contains(&app_sha) && text.contains("deployer"), "{text}");

    let teams = bodies("/teams");
    assert_eq!(teams.len(), 1);
    let card = &teams[0]["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(card.to_string().contains(&approve), "{card:#}");

    // The generic hook hears everything it subscribed to: staging succeeded, prod needs approval.
    let hook = bodies("/hook");
    let events: Vec<&str> = hook.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["promotion_succeeded", "approval_needed"]);
    let needed = &hook[1];
    assert_eq!(needed["version"], 1);
    assert_eq!(needed["release"], id.as_str());
    assert_eq!(needed["stage"], "prod");
    assert_eq!(needed["requested_by"], "deployer");
    assert_eq!(needed["approve_command"], approve.as_str());
    assert_eq!(needed["artifacts"][0], serde_json::json!(["app", app_sha]));
    assert!(needed["approval_expires_at"].is_string());

    // The broken hook was tried three times, then given up on, in the audit log.
    assert_eq!(bodies("/broken").len(), 3);
    let events = p.audit_events();
    let failed: Vec<&serde_json::Value> = events.iter().filter(|e| e["kind"] == "notification_failed").collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["details"]["attempts"], 3);
    assert_eq!(failed[0]["details"]["channel"], "webhook (env BROKEN_URL)");
    assert!(failed[0]["details"]["error"].as_str().unwrap().contains("HTTP 503"));
    let sent = events.iter().filter(|e| e["kind"] == "notification_sent").count();
    assert_eq!(sent, 4, "hook (staging), slack, teams, hook (prod)");
    // Waiting again does not notify again.
    with_hooks("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    assert_eq!(rt.block_on(server.received_requests()).unwrap().len(), received.len());
}

#[test]
fn a_webhook_url_written_into_the_pipeline_is_refused() {
    let p = Project::new(&format!(
        "{}notifications:\n  - {{type: slack, url: \"https://hooks.slack.com/services/T0/B0/secret\"}}\n",
        pipeline(TWO_APPROVERS)
    ));
    let r = p.ferry("dev", &["validate", "pipeline.yaml"]).expect(2);
    assert!(r.stderr.contains("notifications[0].url: a webhook URL is a secret and does not belong in the pipeline file"), "{}", r.stderr);
}

#[test]
fn notifications_reach_a_webhook_whose_url_is_in_ssm_and_an_sns_topic() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hook = rt.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST")).respond_with(wiremock::ResponseTemplate::new(200)).mount(&server).await;
        server
    });
    let w = AwsWorld::new();
    w.write_project("");
    let (param, topic_name) = (format!("/ferry/{}", unique("hook")), unique("ferry-shop"));
    // In the tooling account, where the orchestrator reads and publishes: the secret URL, a
    // topic, and a queue subscribed to it (to see what was published).
    let topic = boto(
        &w,
        TOOLING,
        &format!(
            "ssm=boto3.client('ssm',**kw); sns=boto3.client('sns',**kw); sqs=boto3.client('sqs',**kw)\n\
             ssm.put_parameter(Name='{param}',Value='{url}/teams',Type='SecureString')\n\
             t=sns.create_topic(Name='{topic_name}')['TopicArn']\n\
             q=sqs.create_queue(QueueName='{topic_name}')['QueueUrl']\n\
             qa=sqs.get_queue_attributes(QueueUrl=q,AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
             sns.subscribe(TopicArn=t,Protocol='sqs',Endpoint=qa)\n\
             print(t)",
            url = hook.uri()
        ),
    );
    let topic = topic.trim();
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap();
    let yaml = yaml.replace(
        "audit:\n",
        &format!("notifications:\n  - {{type: teams, url_ssm: \"{param}\", on: [approval_needed]}}\n  - {{type: sns, topic: \"{topic}\"}}\naudit:\n"),
    );
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let ci = w.role(TOOLING, "ci", "github-run-10");
    let id = w.at_prod_gate(&ci);

    let received = rt.block_on(hook.received_requests()).unwrap();
    assert_eq!(received.len(), 1, "the Teams webhook from SSM heard of the approval once");
    let card: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert!(card.to_string().contains(&format!("ferry approve pipeline.yaml --release {id} --stage prod")), "{card:#}");

    let messages = boto(
        &w,
        TOOLING,
        &format!(
            "sqs=boto3.client('sqs',**kw); q=sqs.get_queue_url(QueueName='{topic_name}')['QueueUrl']\n\
             out=[]\n\
             for _ in range(5):\n    out+=sqs.receive_message(QueueUrl=q,MaxNumberOfMessages=10).get('Messages',[])\n\
             print(json.dumps([json.loads(json.loads(m['Body'])['Message'])['event'] for m in out]))"
        ),
    );
    let events: Vec<String> = serde_json::from_str(messages.trim()).unwrap();
    let mut events = events;
    events.sort();
    assert_eq!(events, ["approval_needed", "promotion_succeeded"], "SNS got staging's success and prod's approval request");
}
