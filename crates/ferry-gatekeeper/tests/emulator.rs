//! The function's binary under cargo-lambda's emulator, against a moto server: what it answers
//! a request that does not prove who sends it. (The whole flow, with IAM enforcement, is in the
//! end-to-end tests: tests/e2e/protected.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};

use ferry_testkit::Moto;
use ferry_testkit::lambda::Emulator;

fn invoke(port: u16, body: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "POST /2015-03-31/functions/ferry-gatekeeper/invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{out}");
    // The emulator may answer chunked.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body.split("\r\n").skip(1).step_by(2).collect::<String>()
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_request_without_a_proof_of_who_sends_it_is_refused_and_recorded() {
    let moto = Moto::start();
    let make = std::process::Command::new(ferry_testkit::venv_bin("python"))
        .args(["-c", &format!(
            "import boto3\ns3=boto3.client('s3',endpoint_url='{}',region_name='eu-west-1',aws_access_key_id='test',aws_secret_access_key='test')\nfor b in ('store','audit'): s3.create_bucket(Bucket=b,CreateBucketConfiguration={{'LocationConstraint':'eu-west-1'}})",
            moto.endpoint()
        )])
        .status()
        .unwrap();
    assert!(make.success());
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "eu-west-1"),
        ("FERRY_STORE_BUCKET", "store"),
        ("FERRY_AUDIT_BUCKET", "audit"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("AWS_ENDPOINT_URL".to_owned(), moto.endpoint())])
    .collect();
    let gatekeeper = Emulator::start(std::path::Path::new(env!("CARGO_BIN_EXE_ferry-gatekeeper")), "ferry-gatekeeper", &env);
    let request = r#"{"version":1,"pipeline":"shop","release":"r0123456789abcdef","stage":"prod","duration_seconds":900,"identity":{}}"#;
    let answer = invoke(gatekeeper.port, request);
    assert_eq!(answer["decision"], "refuse", "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("who is asking could not be proven"), "{answer}");
    assert!(answer["credentials"].is_null(), "{answer}");
    assert_eq!(answer["audit_seq"], 1, "the refusal is the first event of its log: {answer}");
}
