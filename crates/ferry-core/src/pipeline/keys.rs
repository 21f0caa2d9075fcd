//! The keys each mapping of a pipeline file accepts, with their descriptions. The parser
//! rejects any other key and the JSON Schema is built from the same tables, so the two agree.

pub type Keys = &'static [(&'static str, &'static str)];

pub const TOP: Keys = &[
    ("version", "Format version of this file; must be 1."),
    ("name", "Pipeline name: lowercase letters, digits, - or _."),
    ("description", "Free text shown in plans."),
    ("backend", "Where releases, state, locks and audit live: local or aws."),
    ("accounts", "Account aliases mapped to 12-digit account ids (quote them)."),
    ("signing", "How releases are signed and which public key is pinned."),
    ("build", "How the release is built and which artifacts it contains."),
    ("stages", "Stages in promotion order."),
    ("audit", "Where the audit log is kept."),
    ("aws", "Settings of the aws backend: region, entry role, the central store."),
    ("tags", "Cost-allocation tags every deployed thing carries (with ferry:pipeline, ferry:release, ferry:stage)."),
    ("policy", "Guardrails: allowed regions, the management account, required tags, protected stages."),
    (
        "notifications",
        "Where approvers and owners hear about approvals needed, given or refused, promotions and failed verifications; and what starts the run that carries a promotion on once its approvals are complete (github, codebuild).",
    ),
    ("approvers", "The people who may approve, by name, each with the public key their approvals are signed with."),
    (
        "approvers_file",
        "YAML file of approvers shared by several pipelines ({approvers: {NAME: {public_key, identities}}}), relative to this file; its key paths are relative to it.",
    ),
];

pub const APPROVER: Keys = &[
    (
        "public_key",
        "PEM file of the approver's public key (ed25519 or ECDSA P-256), relative to this file: only approvals it verifies count.",
    ),
    (
        "identities",
        "Who this person is when they act (FERRY_ACTOR on the local backend, STS ARNs or role ARNs on AWS): for separation of duties and for `ferry approve` to find their key (default: the name itself).",
    ),
    (
        "kms_key",
        "ARN of the approver's own ECC_NIST_P256 KMS key (aws backend): `ferry approve` signs with it as the caller, when this machine holds no local key of that name; `public_key` is its exported public key. Its key policy lets only that person `kms:Sign` (bootstrap/approver-key.yaml).",
    ),
];

pub const NOTIFICATION: Keys = &[
    (
        "type",
        "slack (incoming webhook, Block Kit), teams (Workflows webhook, Adaptive Card), webhook (generic JSON), sns, github (starts a workflow: workflow_dispatch or repository_dispatch) or codebuild (starts a build).",
    ),
    ("url_env", "Environment variable holding the webhook URL."),
    ("url_ssm", "SSM parameter (SecureString) holding the webhook URL, read with the orchestrator role (aws backend)."),
    ("url", "Not allowed: a webhook URL is a secret; use url_env or url_ssm."),
    ("topic", "SNS topic ARN (type sns; published with the orchestrator role)."),
    ("repository", "OWNER/REPO whose workflow a github notification starts."),
    (
        "workflow",
        "Workflow file (or id) a github notification starts with workflow_dispatch, inputs `release` and `stage` (it must declare both).",
    ),
    ("ref", "Branch or tag the dispatched workflow runs on (default main)."),
    ("event_type", "repository_dispatch event type a github notification sends instead (release and stage in client_payload)."),
    ("token_env", "Environment variable holding the GitHub token (actions: write, or contents: write for repository_dispatch)."),
    ("token_ssm", "SSM parameter (SecureString) holding the GitHub token, read with the orchestrator role (aws backend)."),
    ("api_url", "GitHub API base URL (default https://api.github.com; https://HOST/api/v3 for GitHub Enterprise Server)."),
    (
        "project",
        "CodeBuild project (name or ARN) a codebuild notification starts with the orchestrator role, with FERRY_PIPELINE, FERRY_RELEASE and FERRY_STAGE set.",
    ),
    (
        "on",
        "Events: approval_needed, approved (the last approval a stage needs landed), rejected, promotion_succeeded, promotion_failed, verification_failed (default: all; github and codebuild: approved).",
    ),
    ("stages", "Only these stages (default: all)."),
];

pub const POLICY: Keys = &[
    ("allowed_regions", "Regions stages and the store may use."),
    ("management_account", "The organization's management account id; no stage or build may target it."),
    ("required_tags", "Tag keys every stage must carry (pipeline tags and stage tags together)."),
    ("protected_stages", "Prod-class stages: they must require approvals."),
    ("allow_rollback_without_approval", "Let `ferry rollback` skip approvals (default false)."),
    ("freeze_file", "YAML file of organization-wide freezes ({freezes: [{from, to, reason}]}), relative to this file."),
    ("org_policy", "YAML file with the organization's `policy:` block, merged with this one (the stricter wins)."),
];

pub const SIGNING: Keys = &[
    ("key", "Name of a local signing key in $FERRY_HOME/keys (created by `ferry keygen`)."),
    ("kms_key", "ARN of an asymmetric ECDSA P-256 KMS key (aws backend)."),
    ("role", "Role assumed in the KMS key's account to sign (default ferry-signer)."),
    ("public_key", "Path of the pinned public key (PEM), relative to this file."),
];

pub const BUILD: Keys = &[
    ("account", "Account alias the build runs in."),
    ("role", "Role the build command runs as in that account (aws backend; default aws.deploy_role)."),
    ("command", "Shell command that produces the artifacts."),
    ("working_dir", "Directory the command runs in and artifact paths are relative to (relative to this file)."),
    ("env", "Extra environment variables for the build command."),
    ("artifacts", "Files that make up the release."),
    ("images", "Container images the build pushed to the central ECR repository (aws backend); recorded by digest."),
];

pub const IMAGE: Keys = &[
    ("name", "Image name, unique in the build; ecr actions refer to it."),
    ("repository", "Repository in the artifacts account's ECR registry (aws.region), e.g. shop/web."),
    ("tag", "The tag the build pushed; ferry resolves it to a digest once. ${commit} is the source commit."),
];

pub const ARTIFACT: Keys = &[
    ("name", "Artifact name, unique in the build."),
    ("path", "One file, relative to working_dir."),
    ("glob", "A glob pattern relative to working_dir; each match becomes NAME/PATH."),
];

pub const STAGE: Keys = &[
    ("name", "Stage name, unique in the pipeline."),
    ("description", "Free text shown in plans."),
    ("account", "Account alias this stage deploys into."),
    ("role", "Role assumed in that account to deploy (aws backend; default aws.deploy_role)."),
    ("region", "AWS region of the stage, e.g. eu-west-1."),
    ("requires", "Stages that must have succeeded for the same release first (default: the previous stage)."),
    ("approval", "Approvals needed before deploying."),
    ("gates", "Checks that must pass before deploying."),
    ("deploy", "Deploy actions, run in order."),
    ("tags", "Tags of this stage, added to the pipeline's."),
    ("on_failure", "fail (default), or rollback: re-deploy the previous good release when a post-deploy gate fails."),
    ("ignore_org_freeze", "This stage is not stopped by the policy's freeze file (default false)."),
];

pub const APPROVAL: Keys = &[
    ("required", "Number of distinct approvers needed."),
    ("approvers", "Names (from the top-level `approvers:`) whose signed approvals count here; empty means every pinned approver."),
    ("expires", "How long an approval stays valid, e.g. 24h."),
    ("allow_self_approval", "Let the release's builder or requester approve (default false)."),
];

pub const COMMAND_GATE: Keys = &[
    ("type", "Gate type: command."),
    ("run", "Shell command; exit status 0 passes."),
    ("timeout", "Maximum run time, e.g. 5m."),
    ("when", "before (default) the deploy actions, or after them (a failure then fails the promotion)."),
];

pub const HTTP_GATE: Keys = &[
    ("type", "Gate type: http."),
    ("url", "URL to GET."),
    ("status", "Expected HTTP status (default 200)."),
    ("body_contains", "Text the response body must contain."),
    ("json_field", "Dotted path of a field in a JSON body, e.g. status or checks.db."),
    ("json_equals", "The value that field must have (compared as text)."),
    ("interval", "Time between probes (default 10s)."),
    ("soak", "How long the check must pass without interruption (default: one pass)."),
    ("timeout", "Give up after this long (default 5m)."),
    ("when", "before (default) the deploy actions, or after them."),
];

pub const WINDOW_GATE: Keys = &[
    ("type", "Gate type: window."),
    ("timezone", "IANA time zone of days and hours, e.g. Europe/Berlin (default UTC)."),
    ("days", "Weekdays deploys may start: mon, tue, wed, thu, fri, sat, sun."),
    ("hours", "Hours deploys may start, e.g. 09:00-16:00."),
    ("freeze", "Freeze periods: [{from, to, reason}] with RFC 3339 times."),
];

pub const ALARM_GATE: Keys = &[
    ("type", "Gate type: alarm."),
    ("alarms", "CloudWatch alarm names in the stage account (stage region); each must be OK."),
    ("insufficient_data", "How INSUFFICIENT_DATA counts: fail (default) or ok."),
    ("soak", "How long the alarms must stay OK (default: one check)."),
    ("interval", "Time between checks during the soak (default 30s)."),
    ("when", "before (default) the deploy actions, or after them."),
];

pub const FREEZE: Keys = &[("from", "Start (RFC 3339)."), ("to", "End (RFC 3339)."), ("reason", "Why, shown when a promotion is refused.")];

pub const COMMAND_ACTION: Keys = &[
    ("type", "Action type: command."),
    ("run", "Shell command run with the stage's environment."),
    ("env", "Extra environment variables."),
    ("timeout", "Maximum run time, e.g. 10m."),
];

pub const CFN_ACTION: Keys = &[
    ("type", "Action type: cloudformation."),
    ("stack", "Stack name in the stage account."),
    ("template", "Name of the release artifact holding the template."),
    (
        "parameters",
        "Stack parameters; values may use ${release}, ${stage}, ${pipeline}, ${account}, ${artifact.NAME.sha256}, ${image.NAME.digest}.",
    ),
    ("capabilities", "e.g. CAPABILITY_IAM, CAPABILITY_NAMED_IAM."),
];

pub const S3_ACTION: Keys = &[
    ("type", "Action type: s3."),
    ("bucket", "Bucket in the stage account."),
    ("prefix", "Key prefix; artifacts land at PREFIX/PATH."),
    ("artifacts", "Names of the artifacts to copy (default: all)."),
];

pub const ECR_ACTION: Keys = &[
    ("type", "Action type: ecr."),
    ("image", "Name of an image of the build."),
    ("repository", "Repository in the stage account (default: the central repository's name)."),
    ("tags", "Tags put on the copied image (default [${release}, ${stage}]); ${release}, ${stage}, ${pipeline}."),
];

pub const CODEPIPELINE_ACTION: Keys = &[
    ("type", "Action type: codepipeline."),
    ("pipeline", "Name of the CodePipeline pipeline in the stage account."),
    (
        "variables",
        "Pipeline variables (V2 pipelines); values may use ${release}, ${stage}, ${pipeline}, ${account}, ${artifact.NAME.sha256}, ${image.NAME.digest}.",
    ),
    ("approve", "A Manual approval action ferry answers (Approved) for this execution: {stage, action}."),
    ("timeout", "How long to wait for the execution to finish (default 1h)."),
];

pub const APPROVE_REF: Keys = &[("stage", "Stage of the CodePipeline pipeline."), ("action", "The Manual approval action in that stage.")];

pub const AUDIT: Keys = &[
    ("account", "Account alias that keeps the audit log (the security account)."),
    ("bucket", "S3 bucket of the audit log (aws backend)."),
    ("prefix", "Key prefix in that bucket."),
    ("role", "Role assumed in that account to write the log (default ferry-audit)."),
];

pub const AWS: Keys = &[
    ("region", "Region of the central store, the audit log and STS."),
    ("orchestrator", "The entry role every chain starts from: {account, role}."),
    ("external_id", "External id passed when assuming roles in member accounts."),
    ("session_duration", "Lifetime of assumed-role sessions, 15m to 1h (AWS limits role-chained sessions to 1h)."),
    ("deploy_role", "Default role name in build and stage accounts (default ferry-deploy)."),
    ("store", "The central artifact store: {account, bucket, prefix, role}."),
    (
        "gatekeeper",
        "The gatekeeper function (bootstrap/gatekeeper.yaml), by ARN (or name in the orchestrator's own account): protected stages get their credentials from it alone.",
    ),
];

pub const ROLE_REF: Keys = &[("account", "Account alias."), ("role", "Role name (with optional path).")];

pub const STORE: Keys = &[
    ("account", "Account alias of the artifacts account."),
    ("bucket", "S3 bucket of artifacts, releases, state, approvals and locks."),
    ("prefix", "Key prefix in that bucket."),
    ("role", "Role assumed in that account (default ferry-artifacts)."),
];

/// Types named here get "not available in this version" rather than "unknown".
pub const PLANNED_ACTIONS: &[&str] = &[];
pub const PLANNED_GATES: &[&str] = &[];
