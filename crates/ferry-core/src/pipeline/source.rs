//! Reading an input file (a pipeline, an organization's freeze file) as text, safely: only a
//! regular file (a FIFO or a device would block or never end), and only up to a size a real
//! one never reaches; any failure is one diagnostic naming the file.

use std::path::Path;

use crate::yaml::Diagnostic;

/// The largest pipeline or freeze file ferry reads (a real one is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a file as text; a failure is one diagnostic naming the file. Only a regular file is
/// read (a FIFO or a device would block or never end), and only up to `MAX_FILE_BYTES`.
pub(super) fn read_source(path: &Path, what: &str) -> Result<String, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let problem = |message: String, hint: Option<String>| {
        vec![Diagnostic { file: file.clone(), line: 0, column: 0, field: "(file)".into(), message, hint }]
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(format!("cannot read {what}`{file}`: {e}"), None))?;
    if !meta.is_file() {
        return Err(problem(format!("{what}`{file}` is not a regular file"), Some("pass the path of a YAML file".into())));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(problem(
            format!("{what}`{file}` is {} bytes; ferry reads files of at most {MAX_FILE_BYTES}", meta.len()),
            Some("a pipeline file is a few KiB: is this the right file?".into()),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read {what}`{file}`: {e}"), None))
}
