//! A Lambda function under cargo-lambda's local emulator (`cargo lambda watch
//! --only-lambda-apis`, from the test venv): the emulator serves Lambda's `Invoke` API and the
//! runtime API on a free 127.0.0.1 port, and the function's binary, started here with the
//! environment Lambda would give it, polls the runtime API for its invocations. Callers reach it
//! with the real SDK (`AWS_ENDPOINT_URL_LAMBDA`). Both processes are killed on drop.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{repo_root, venv_bin};

pub struct Emulator {
    emulator: Child,
    function: Child,
    pub port: u16,
}

impl Emulator {
    /// Serves `binary` as the function `name` (a binary of the workspace: the emulator only
    /// routes invocations to those), with `env` (credentials, region, configuration).
    pub fn start(binary: &Path, name: &str, env: &BTreeMap<String, String>) -> Emulator {
        assert!(binary.exists(), "`{}` is missing: build it with `cargo build -p {name}`", binary.display());
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let emulator = Command::new(venv_bin("cargo-lambda"))
            .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "the Lambda emulator did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let function = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/{name}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the function");
        Emulator { emulator, function, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
