//! Turns AWS SDK errors into ferry errors that name who tried what on which resource, with a
//! hint. HTTP 403 is access denied even when the body cannot be decoded (moto's enforcement
//! answers that way). Messages never contain credentials.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use ferry_core::Error;

/// Who did it (a role ARN or "the caller") and what, on what.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub who: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
}

pub fn http_status<E, R: HasStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HasStatus::status_code)
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

pub fn map<E, R>(at: Attempt<'_>, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + std::fmt::Debug,
{
    let status = http_status(err);
    let (code, message) = match err {
        SdkError::ServiceError(e) => (e.err().code().map(str::to_owned), e.err().message().map(str::to_owned)),
        _ => (None, None),
    };
    let Attempt { who, action, resource } = at;
    let denied = status == Some(403) || code.as_deref().is_some_and(|c| c.contains("AccessDenied") || c == "UnauthorizedOperation");
    if denied {
        return Error::failed(format!("access denied: `{who}` is not allowed to `{action}` on `{resource}`"))
            .hint(format!("grant `{action}` on `{resource}` to that role (see bootstrap/), or check that the right role was assumed"));
    }
    if matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
        return Error::failed(format!("cannot reach AWS for `{action}` on `{resource}`: {}", DisplayErrorContext(err)))
            .hint("check the network, the region, and `AWS_ENDPOINT_URL` if you use a local endpoint");
    }
    let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
    // The service's own message when there is one; the full context (no credentials in it) otherwise.
    let detail = message.unwrap_or_else(|| DisplayErrorContext(err).to_string());
    Error::failed(format!("`{action}` on `{resource}` as `{who}` failed{code}: {detail}"))
}
