//! The HTTP client of http gates (reqwest, rustls): a GET with a timeout, reading at most
//! 1 MiB of the body. Used by both backends; gates probe the deployed service, not AWS. Also
//! fetches a CI's OpenID Connect token (GitHub Actions' token endpoint).

use std::io::Read;
use std::time::Duration;

use ferry_core::ports::HttpProbe;
use ferry_core::{Error, Result};

const MAX_BODY: u64 = 1024 * 1024;

#[derive(Debug, Default)]
pub struct ReqwestProbe;

impl HttpProbe for ReqwestProbe {
    fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String)> {
        let client =
            reqwest::blocking::Client::builder().timeout(timeout).build().map_err(|e| Error::failed(format!("http client: {e}")))?;
        let resp = client.get(url).send().map_err(|e| Error::failed(format!("GET {url}: {e}")))?;
        let status = resp.status().as_u16();
        let mut body = String::new();
        resp.take(MAX_BODY).read_to_string(&mut body).map_err(|e| Error::failed(format!("reading the body of {url}: {e}")))?;
        Ok((status, body))
    }
}

/// Asks GitHub Actions' token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`, authorised by
/// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`) for an OIDC token with the given audience.
pub fn github_oidc_token(request_url: &str, request_token: &str, audience: &str) -> Result<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::failed(format!("http client: {e}")))?;
    let resp = client
        .get(request_url)
        .query(&[("audience", audience)])
        .bearer_auth(request_token)
        .send()
        .map_err(|e| Error::failed(format!("requesting the GitHub OIDC token: {}", e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::failed(format!("the GitHub OIDC token endpoint answered HTTP {}", status.as_u16()))
            .hint("the job needs `permissions: id-token: write`"));
    }
    let body: serde_json::Value =
        resp.json().map_err(|e| Error::failed(format!("the GitHub OIDC token response is not JSON: {}", e.without_url())))?;
    body["value"].as_str().map(str::to_owned).ok_or_else(|| Error::failed("the GitHub OIDC token response has no `value`"))
}
