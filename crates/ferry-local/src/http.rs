//! The HTTP client of http gates (reqwest, rustls): a GET with a timeout, reading at most
//! 1 MiB of the body. Used by both backends; gates probe the deployed service, not AWS.

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
