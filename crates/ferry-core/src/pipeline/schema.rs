//! The JSON Schema (draft-07) of the pipeline format, for editors (yaml-language-server).
//! It is built from the same key tables the parser enforces.

use serde_json::{Map, Value, json};

use super::NotifyEvent;
use super::keys::{self, Keys};

fn object(keys: Keys, props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut properties = Map::new();
    for (key, description) in keys {
        let mut schema = props.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| json!({"type": "string"}));
        if let Value::Object(m) = &mut schema {
            m.insert("description".into(), Value::String((*description).into()));
        }
        properties.insert((*key).into(), schema);
    }
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

fn duration() -> Value {
    json!({"type": "string", "pattern": "^[0-9]+\\s*[a-z]+(\\s*[0-9]+\\s*[a-z]+)*$"})
}

fn tags() -> Value {
    json!({"type": "object", "propertyNames": {"not": {"pattern": "^(aws|ferry):"}}, "additionalProperties": {"type": "string", "maxLength": 256}})
}

fn env() -> Value {
    json!({"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "additionalProperties": {"type": "string"}})
}

const NAME: &str = "^[a-z][a-z0-9_-]{0,62}$";

/// `v` with every object's keys in sorted order, whether or not serde_json preserves insertion
/// order in this build (a dependency can turn that on), so the printed schema is stable.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The schema as a JSON value.
pub fn pipeline_schema() -> Value {
    sorted(build_schema())
}

/// The pipeline reference as a markdown table (`ferry schema --markdown`), one row per key,
/// walked from the schema so the README's reference cannot drift from what ferry accepts.
pub fn reference_markdown() -> String {
    fn type_of(v: &Value) -> String {
        if let Some(c) = v.get("const") {
            return format!("`{c}`");
        }
        if let Some(e) = v.get("enum").and_then(Value::as_array) {
            return e
                .iter()
                .map(|x| format!("`{}`", x.as_str().map_or_else(|| x.to_string(), str::to_owned)))
                .collect::<Vec<_>>()
                .join(" \\| ");
        }
        match v.get("type").and_then(Value::as_str) {
            Some("array") => format!("list of {}", v.get("items").map_or_else(|| "values".to_owned(), type_of)),
            Some("object") if v.get("properties").is_some() => "mapping".into(),
            Some("object") if v.pointer("/additionalProperties/properties").is_some() => "mapping of names to mappings".into(),
            Some("object") => "mapping of strings".into(),
            Some(t) => t.to_owned(),
            None if v.get("oneOf").is_some() => "one of the types below".into(),
            None => "any".into(),
        }
    }
    fn walk(rows: &mut Vec<(String, String, String)>, path: &str, v: &Value) {
        let required: Vec<&str> =
            v.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            let mut keys: Vec<&String> = props.keys().collect();
            keys.sort();
            for k in keys {
                let p = &props[k];
                let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                let desc = p.get("description").and_then(Value::as_str).unwrap_or("").replace('|', "\\|");
                let req = if required.contains(&k.as_str()) { " (required)" } else { "" };
                rows.push((format!("`{full}`"), format!("{}{req}", type_of(p)), desc));
                walk(rows, &full, p);
            }
        }
        // A mapping of names to mappings (the approvers): its entries' keys, under `NAME`.
        if let Some(entry) = v.get("additionalProperties").filter(|e| e.get("properties").is_some()) {
            walk(rows, &format!("{path}.NAME"), entry);
        }
        if let Some(items) = v.get("items") {
            if let Some(alts) = items.get("oneOf").and_then(Value::as_array) {
                for alt in alts {
                    let t = alt.pointer("/properties/type/const").and_then(Value::as_str).unwrap_or("?");
                    walk(rows, &format!("{path}[type={t}]"), alt);
                }
            } else {
                walk(rows, &format!("{path}[]"), items);
            }
        }
    }
    let mut rows = Vec::new();
    walk(&mut rows, "", &pipeline_schema());
    let mut out = String::from("| Key | Type | Meaning |\n|---|---|---|\n");
    for (k, t, d) in rows {
        out.push_str(&format!("| {k} | {t} | {d} |\n"));
    }
    out
}

fn build_schema() -> Value {
    let artifact = {
        let mut a = object(keys::ARTIFACT, &[], &["name"]);
        a["oneOf"] = json!([{"required": ["path"]}, {"required": ["glob"]}]);
        a
    };
    let approval = object(
        keys::APPROVAL,
        &[
            ("required", json!({"type": "integer", "minimum": 1})),
            ("approvers", json!({"type": "array", "items": {"type": "string"}})),
            ("expires", duration()),
            ("allow_self_approval", json!({"type": "boolean"})),
        ],
        &[],
    );
    let typed = |keys: Keys, props: &[(&str, Value)]| {
        let mut props = props.to_vec();
        props.push(("type", json!({"const": "command"})));
        object(keys, &props, &["type", "run"])
    };
    let command_gate =
        typed(keys::COMMAND_GATE, &[("timeout", duration()), ("when", json!({"enum": ["before", "after"], "default": "before"}))]);
    let freeze = object(
        keys::FREEZE,
        &[("from", json!({"type": "string", "format": "date-time"})), ("to", json!({"type": "string", "format": "date-time"}))],
        &["from", "to"],
    );
    let window_gate = object(
        keys::WINDOW_GATE,
        &[
            ("type", json!({"const": "window"})),
            ("days", json!({"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}})),
            ("hours", json!({"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$"})),
            ("freeze", json!({"type": "array", "items": freeze})),
        ],
        &["type"],
    );
    let http_gate = object(
        keys::HTTP_GATE,
        &[
            ("type", json!({"const": "http"})),
            ("url", json!({"type": "string", "pattern": "^https?://"})),
            ("status", json!({"type": "integer", "minimum": 100, "maximum": 599, "default": 200})),
            ("interval", duration()),
            ("soak", duration()),
            ("timeout", duration()),
            ("when", json!({"enum": ["before", "after"], "default": "before"})),
        ],
        &["type", "url"],
    );
    let alarm_gate = object(
        keys::ALARM_GATE,
        &[
            ("type", json!({"const": "alarm"})),
            ("alarms", json!({"type": "array", "minItems": 1, "items": {"type": "string"}})),
            ("insufficient_data", json!({"enum": ["fail", "ok"], "default": "fail"})),
            ("soak", duration()),
            ("interval", duration()),
            ("when", json!({"enum": ["before", "after"], "default": "before"})),
        ],
        &["type", "alarms"],
    );
    let gate = json!({"oneOf": [command_gate, window_gate, http_gate, alarm_gate]});
    let command_action = typed(keys::COMMAND_ACTION, &[("env", env()), ("timeout", duration())]);
    let s3_action = object(
        keys::S3_ACTION,
        &[("type", json!({"const": "s3"})), ("artifacts", json!({"type": "array", "items": {"type": "string"}}))],
        &["type", "bucket"],
    );
    let cfn_action = object(
        keys::CFN_ACTION,
        &[
            ("type", json!({"const": "cloudformation"})),
            ("parameters", json!({"type": "object", "additionalProperties": {"type": "string"}})),
            (
                "capabilities",
                json!({"type": "array", "items": {"enum": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]}}),
            ),
        ],
        &["type", "stack", "template"],
    );
    let ecr_action = object(
        keys::ECR_ACTION,
        &[("type", json!({"const": "ecr"})), ("tags", json!({"type": "array", "items": {"type": "string", "maxLength": 128}}))],
        &["type", "image"],
    );
    let codepipeline_action = object(
        keys::CODEPIPELINE_ACTION,
        &[
            ("type", json!({"const": "codepipeline"})),
            ("variables", json!({"type": "object", "additionalProperties": {"type": "string"}})),
            ("approve", object(keys::APPROVE_REF, &[], &["stage", "action"])),
            ("timeout", duration()),
        ],
        &["type", "pipeline"],
    );
    let action = json!({"oneOf": [command_action, s3_action, cfn_action, ecr_action, codepipeline_action]});
    let stage = object(
        keys::STAGE,
        &[
            ("name", json!({"type": "string", "pattern": NAME})),
            ("region", json!({"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)+-[0-9]+$"})),
            ("requires", json!({"type": "array", "items": {"type": "string", "pattern": NAME}})),
            ("approval", approval),
            ("gates", json!({"type": "array", "items": gate})),
            ("deploy", json!({"type": "array", "items": action})),
            ("tags", tags()),
            ("on_failure", json!({"enum": ["fail", "rollback"], "default": "fail"})),
            ("ignore_org_freeze", json!({"type": "boolean"})),
        ],
        &["name", "account"],
    );
    let mut root = object(
        keys::TOP,
        &[
            ("version", json!({"const": 1})),
            ("name", json!({"type": "string", "pattern": NAME})),
            ("backend", json!({"enum": ["local", "aws"], "default": "local"})),
            ("accounts", json!({"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9]{12}$"}})),
            ("signing", {
                let mut s = object(
                    keys::SIGNING,
                    &[("kms_key", json!({"type": "string", "pattern": "^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$"}))],
                    &["public_key"],
                );
                s["oneOf"] = json!([{"required": ["key"]}, {"required": ["kms_key"]}]);
                s
            }),
            (
                "build",
                object(
                    keys::BUILD,
                    &[
                        ("env", env()),
                        ("artifacts", json!({"type": "array", "minItems": 1, "items": artifact})),
                        ("images", json!({"type": "array", "items": object(keys::IMAGE, &[], &["name", "repository", "tag"])})),
                    ],
                    &["account", "artifacts"],
                ),
            ),
            ("stages", json!({"type": "array", "minItems": 1, "items": stage})),
            (
                "notifications",
                json!({"type": "array", "items": object(
                    keys::NOTIFICATION,
                    &[
                        ("type", json!({"enum": ["slack", "teams", "webhook", "sns", "github", "codebuild"]})),
                        ("url", json!({"not": {}})),
                        ("repository", json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"})),
                        ("on", json!({"type": "array", "items": {"enum": NotifyEvent::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>()}})),
                        ("stages", json!({"type": "array", "items": {"type": "string", "pattern": NAME}})),
                    ],
                    &["type"],
                )}),
            ),
            ("audit", object(keys::AUDIT, &[], &[])),
            (
                "approvers",
                json!({"type": "object", "additionalProperties": object(
                    keys::APPROVER,
                    &[
                        ("identities", json!({"type": "array", "items": {"type": "string"}})),
                        ("kms_key", json!({"type": "string", "pattern": "^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$"})),
                    ],
                    &["public_key"],
                )}),
            ),
            ("tags", tags()),
            (
                "policy",
                object(
                    keys::POLICY,
                    &[
                        ("allowed_regions", json!({"type": "array", "items": {"type": "string"}})),
                        ("required_tags", json!({"type": "array", "items": {"type": "string"}})),
                        ("protected_stages", json!({"type": "array", "items": {"type": "string", "pattern": NAME}})),
                        ("allow_rollback_without_approval", json!({"type": "boolean"})),
                    ],
                    &[],
                ),
            ),
            (
                "aws",
                object(
                    keys::AWS,
                    &[
                        ("orchestrator", object(keys::ROLE_REF, &[], &["account"])),
                        ("session_duration", duration()),
                        ("store", object(keys::STORE, &[], &["account", "bucket"])),
                        (
                            "gatekeeper",
                            json!({"type": "string", "pattern": "^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:)?[A-Za-z0-9_-]{1,64}$"}),
                        ),
                    ],
                    &["region", "orchestrator", "store"],
                ),
            ),
        ],
        &["version", "name", "signing", "build", "stages"],
    );
    root["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    root["$id"] = json!("https://ferry.invalid/schema/pipeline-v1.json");
    root["title"] = json!("ferry pipeline (version 1)");
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapping_lists_exactly_the_keys_the_parser_accepts() {
        let s = pipeline_schema();
        let keys_of = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v["properties"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            k.sort();
            k
        };
        let table = |t: Keys| -> Vec<String> {
            let mut k: Vec<String> = t.iter().map(|(k, _)| (*k).to_owned()).collect();
            k.sort();
            k
        };
        assert_eq!(keys_of(&s), table(keys::TOP));
        assert_eq!(keys_of(&s["properties"]["build"]), table(keys::BUILD));
        assert_eq!(keys_of(&s["properties"]["stages"]["items"]), table(keys::STAGE));
        assert_eq!(keys_of(&s["properties"]["stages"]["items"]["properties"]["approval"]), table(keys::APPROVAL));
        let stage = &s["properties"]["stages"]["items"]["properties"];
        assert_eq!(keys_of(&stage["deploy"]["items"]["oneOf"][0]), table(keys::COMMAND_ACTION));
        assert_eq!(keys_of(&stage["deploy"]["items"]["oneOf"][1]), table(keys::S3_ACTION));
        assert_eq!(keys_of(&stage["deploy"]["items"]["oneOf"][2]), table(keys::CFN_ACTION));
        assert_eq!(keys_of(&stage["deploy"]["items"]["oneOf"][3]), table(keys::ECR_ACTION));
        assert_eq!(keys_of(&stage["deploy"]["items"]["oneOf"][4]), table(keys::CODEPIPELINE_ACTION));
        assert_eq!(keys_of(&s["properties"]["build"]["properties"]["images"]["items"]), table(keys::IMAGE));
        assert_eq!(keys_of(&stage["gates"]["items"]["oneOf"][0]), table(keys::COMMAND_GATE));
        assert_eq!(keys_of(&stage["gates"]["items"]["oneOf"][1]), table(keys::WINDOW_GATE));
        assert_eq!(keys_of(&stage["gates"]["items"]["oneOf"][2]), table(keys::HTTP_GATE));
        assert_eq!(keys_of(&stage["gates"]["items"]["oneOf"][3]), table(keys::ALARM_GATE));
        assert_eq!(keys_of(&s["properties"]["policy"]), table(keys::POLICY));
        assert_eq!(keys_of(&s["properties"]["aws"]), table(keys::AWS));
        assert_eq!(s["additionalProperties"], json!(false));
    }
}
