//! Proving who calls, to a service that cannot see it: Lambda tells a function nothing about
//! the principal that invoked it, so the caller signs an `sts:GetCallerIdentity` request with
//! its own credentials and sends only the signed headers; the verifier (the gatekeeper) sends
//! that request to STS itself and reads the ARN STS answers. This is how Vault's AWS IAM auth
//! method works. The signature covers a binding header the verifier sets from what it was asked,
//! so a proof made for one request does not verify for another, and STS refuses a signature
//! older than 15 minutes. Nothing in the proof is a secret a caller could not mint, but it only
//! verifies with credentials of the principal it names.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials as _;
use ferry_core::ids::Actor;
use ferry_core::{Error, Result};

/// The one request a proof can stand for.
pub const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The headers of a proof the verifier passes on; any other is dropped.
const PROOF_HEADERS: &[&str] = &["authorization", "x-amz-date", "x-amz-security-token"];

/// Where STS is for `region`: the endpoint override of `config` (`AWS_ENDPOINT_URL`, in
/// tests), else the regional endpoint. Prover and verifier must agree: the host is signed.
pub fn sts_endpoint(config: &SdkConfig, region: &str) -> String {
    match config.endpoint_url() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("https://sts.{region}.amazonaws.com"),
    }
}

fn host_of(endpoint: &str) -> Result<String> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(Error::invalid(format!("STS endpoint `{endpoint}` has no host")));
    }
    Ok(host.to_owned())
}

/// Signs `GetCallerIdentity` for `endpoint` in `region` with `caller`'s credentials, bound to
/// `binding` (sent as `binding_header`); returns the headers that prove who signed.
pub async fn prove(
    caller: &SdkConfig,
    region: &str,
    endpoint: &str,
    binding_header: &str,
    binding: &str,
) -> Result<BTreeMap<String, String>> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let provider = caller.credentials_provider().ok_or_else(|| Error::failed("no AWS credentials to prove who is asking"))?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        Error::failed(format!(
            "cannot load the caller's credentials: {}",
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
        ))
    })?;
    let identity = creds.into();
    let now = caller.time_source().map_or_else(SystemTime::now, |t| t.now());
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::failed(format!("cannot sign the identity proof: {e}")))?
        .into();
    let host = host_of(endpoint)?;
    let headers = [("host", host.as_str()), ("content-type", CONTENT_TYPE), (binding_header, binding)];
    let url = format!("{endpoint}/");
    let request = SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(BODY.as_bytes()))
        .map_err(|e| Error::failed(format!("cannot sign the identity proof: {e}")))?;
    let (instructions, _) = sign(request, &params).map_err(|e| Error::failed(format!("cannot sign the identity proof: {e}")))?.into_parts();
    Ok(instructions
        .headers()
        .filter(|(name, _)| PROOF_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect())
}

/// Sends the proof to STS at `endpoint` (the verifier's own, never one the caller names),
/// with `binding` set as the verifier computed it; the ARN STS answers, or why not.
pub async fn verify(endpoint: &str, proof: &BTreeMap<String, String>, binding_header: &str, binding: &str) -> Result<Actor> {
    let mut request =
        reqwest::Client::new().post(format!("{endpoint}/")).header("content-type", CONTENT_TYPE).header(binding_header, binding).body(BODY);
    for name in PROOF_HEADERS {
        if let Some(value) = proof.get(*name) {
            request = request.header(*name, value);
        }
    }
    if !proof.contains_key("authorization") {
        return Err(Error::verification("the request carries no signed proof of who is asking"));
    }
    let (status, body) = async {
        let response = request.send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.text().await?))
    }
    .await
    .map_err(|e| Error::failed(format!("cannot reach STS at {endpoint} to check who is asking: {e}")))?;
    if !status.is_success() {
        let code = between(&body, "<Code>", "</Code>").unwrap_or("no error code");
        let message = between(&body, "<Message>", "</Message>").unwrap_or_default();
        return Err(Error::verification(format!("STS does not accept the caller's identity proof (HTTP {status}, {code}): {message}"))
            .hint("the proof is bound to one pipeline, release, stage and duration, and lasts 15 minutes"));
    }
    let arn = between(&body, "<Arn>", "</Arn>").ok_or_else(|| Error::failed("STS answered GetCallerIdentity without an ARN"))?;
    arn.parse().map_err(|e: ferry_core::ids::IdError| Error::failed(e.to_string()))
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(s[start..start + len].trim())
}
