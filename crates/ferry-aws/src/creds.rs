//! Credentials for the commands ferry runs, refreshed for as long as they run: a
//! container-credentials endpoint on 127.0.0.1 (what ECS and CodeBuild give their tasks), one
//! per command. The command gets `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN` — which the AWS CLI and every current SDK read — and no
//! static keys: each time its SDK refreshes, the endpoint answers with the stage role's current
//! credentials (the role chain renews them before they expire), so a command that runs past
//! one session's life keeps working. Requests without the random token are refused; the
//! endpoint stops when the command ends.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use ferry_core::{Error, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::chain::Aws;

/// A running endpoint; stops when dropped.
pub struct Endpoint {
    pub url: String,
    pub token: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    /// The variables a command finds its credentials with.
    pub fn env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(), self.url.clone()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(), self.token.clone()),
        ])
    }
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    ferry_core::clock::Timestamp::from_unix(i64::try_from(secs).unwrap_or(i64::MAX)).to_string()
}

/// Serves `provider`'s credentials on 127.0.0.1 to holders of a fresh random token.
pub fn serve(aws: &Aws, provider: SharedCredentialsProvider, role: String) -> Result<Endpoint> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::failed(format!("cannot open the credentials endpoint: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| Error::failed(format!("credentials endpoint: {e}")))?;
    let port = listener.local_addr().map_err(|e| Error::failed(format!("credentials endpoint: {e}")))?.port();
    let token = ferry_core::storage::token();
    ferry_core::hooks::secret(&token);
    let expected = token.clone();
    let task = aws.rt.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
        while let Ok((mut conn, _)) = listener.accept().await {
            let (provider, expected, role) = (provider.clone(), expected.clone(), role.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let authorized = text.lines().skip(1).any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("authorization") && v.trim() == expected)
                });
                let (status, body) = if !authorized {
                    ("403 Forbidden", r#"{"message":"missing or wrong authorization token"}"#.to_owned())
                } else {
                    match provider.provide_credentials().await {
                        Ok(c) => (
                            "200 OK",
                            serde_json::json!({
                                "AccessKeyId": c.access_key_id(),
                                "SecretAccessKey": c.secret_access_key(),
                                "Token": c.session_token(),
                                "Expiration": c.expiry().map(rfc3339),
                            })
                            .to_string(),
                        ),
                        Err(e) => {
                            let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
                            tracing::error!("a command asked for the credentials of `{role}`, which could not be assumed: {why}");
                            ("500 Internal Server Error", serde_json::json!({"message": why}).to_string())
                        }
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(Endpoint { url: format!("http://127.0.0.1:{port}/ferry/credentials"), token, task })
}
