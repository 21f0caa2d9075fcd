//! The `ferry-gatekeeper` Lambda function (`cargo lambda build --release --arm64
//! --output-format zip -p ferry-gatekeeper`): the runtime loop around `Gatekeeper::handle`.
//! The gatekeeper blocks on its own AWS runtime, so each invocation runs on a blocking thread.

use std::sync::Arc;

use ferry_core::gatekeeper::wire;
use ferry_gatekeeper::{Config, Gatekeeper};
use lambda_runtime::{Error, LambdaEvent, service_fn};

fn main() -> Result<(), Error> {
    let gatekeeper = Arc::new(Gatekeeper::connect(&Config::from_env()?)?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let shared = gatekeeper.clone();
    let served = rt.block_on(lambda_runtime::run(service_fn(move |event: LambdaEvent<wire::Request>| {
        let gatekeeper = shared.clone();
        async move {
            let answer = tokio::task::spawn_blocking(move || gatekeeper.handle(&event.payload)).await?;
            answer.map_err(Error::from)
        }
    })));
    // The gatekeeper's own runtime is dropped here, outside any async context.
    drop(rt);
    drop(gatekeeper);
    served
}
