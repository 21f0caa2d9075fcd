//! `ferry keygen` and `ferry key export`.

use std::path::Path;

use ferry_core::Error;
use ferry_core::keys::Algorithm;
use ferry_local::Home;
use ferry_local::fsutil;
use serde_json::json;

use crate::output::{Failure, Report};

pub fn keygen(home: &Home, name: &str, algorithm: &str) -> Result<Report, Failure> {
    let algorithm: Algorithm = algorithm.parse()?;
    let keys = home.keys();
    let public = keys.generate(name, algorithm)?;
    let (private, pem) = (keys.private_path(name), keys.public_path(name));
    let h = format!(
        "created {algorithm} key `{name}` (keyid {})\n  private: {}\n  public:  {}\nexport it for a pipeline to pin: ferry key export --name {name} --out DIR\n",
        public.keyid(),
        private.display(),
        pem.display()
    );
    Ok(Report::ok(h, json!({"name": name, "algorithm": algorithm, "keyid": public.keyid(), "private_key": private, "public_key": pem})))
}

fn write_export(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if !fsutil::write_new(path, bytes)? && fsutil::read_opt(path)?.as_deref() != Some(bytes) {
        return Err(Error::invalid(format!("`{}` already exists with different content", path.display()))
            .hint("remove it first if you really mean to replace a pinned key"));
    }
    Ok(())
}

pub fn export(home: &Home, name: &str, out: &Path, kms: Option<&str>) -> Result<Report, Failure> {
    let key = match kms {
        Some(arn) => super::aws::kms_public_key(arn)?,
        None => home.keys().load(name)?.public_key(),
    };
    let pem_path = out.join(format!("{name}.pem"));
    let json_path = out.join(format!("{name}.json"));
    let mut sslib = serde_json::to_vec_pretty(&key.to_sslib_json()).map_err(|e| Error::failed(e.to_string()))?;
    sslib.push(b'\n');
    write_export(&pem_path, key.to_pem()?.as_bytes())?;
    write_export(&json_path, &sslib)?;
    let h = format!(
        "wrote {} and {} (keyid {})\npin it: point `signing.public_key` of the pipeline at {} (relative to the pipeline file)\n",
        pem_path.display(),
        json_path.display(),
        key.keyid(),
        pem_path.display()
    );
    Ok(Report::ok(h, json!({"keyid": key.keyid(), "pem": pem_path, "json": json_path})))
}
