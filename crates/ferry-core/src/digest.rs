//! Streaming sha256 of files and readers: artifacts are hashed in fixed-size chunks and are
//! never loaded into memory whole.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::ids::Sha256Digest;

const CHUNK: usize = 64 * 1024;

/// Hashes everything `reader` yields, copying it to `sink` on the way; returns digest and size.
pub fn hash_copy(mut reader: impl Read, mut sink: impl Write) -> std::io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])?;
        size += n as u64;
    }
    sink.flush()?;
    Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
}

/// Hashes what is written through it, passing it on to `inner`.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), size: 0 }
    }
    /// The digest and size of what went through, and the inner writer.
    pub fn finish(self) -> (Sha256Digest, u64, W) {
        (Sha256Digest::from_bytes(self.hasher.finalize().into()), self.size, self.inner)
    }
}

/// A file writer that writes on a thread of its own, so the caller's hashing and the writing
/// overlap: a large artifact is copied and hashed in about the time one of them takes. Bytes go over in 1 MiB blocks (at most eight
/// in flight: memory stays bounded). `finish` waits for the last block and returns the file.
pub struct Background {
    block: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<std::io::Result<std::fs::File>>>,
}

const BLOCK: usize = 1 << 20;

impl Background {
    pub fn new(mut file: std::fs::File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let handle = std::thread::spawn(move || {
            for block in rx {
                file.write_all(&block)?;
            }
            Ok(file)
        });
        Self { block: Vec::with_capacity(BLOCK), tx: Some(tx), handle: Some(handle) }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        match &self.tx {
            Some(tx) if tx.send(block).is_ok() => Ok(()),
            // The writer stopped: its error comes out of `finish`.
            _ => Err(std::io::Error::other("the writer thread stopped")),
        }
    }

    /// Waits for every byte to be written; the writer's first error.
    pub fn finish(mut self) -> std::io::Result<std::fs::File> {
        let sent = self.send();
        self.tx = None;
        let written = self.handle.take().map_or_else(
            || Err(std::io::Error::other("finished twice")),
            |h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked"))),
        );
        let file = written?;
        sent?;
        Ok(file)
    }
}

impl Write for Background {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.send()?;
        }
        Ok(n)
    }
    /// Hands over what is buffered (`finish` waits for it to be written).
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Hashes a file by streaming it.
pub fn hash_file(path: &Path) -> Result<(Sha256Digest, u64)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, &e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let task = format!("hashing {}", path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()));
    hash_reporting(std::io::BufReader::new(file), &task, total).map_err(|e| Error::io("read", path, &e))
}

/// Hashes what `reader` yields (`total` bytes expected), reporting progress as `task` (a bar
/// on a terminal): hashing at build time, re-hashing before a promotion.
pub fn hash_reporting(reader: impl Read, task: &str, total: u64) -> std::io::Result<(Sha256Digest, u64)> {
    let result = hash_copy(Progress { inner: reader, task, done: 0, total }, std::io::sink());
    crate::hooks::progress_done(task);
    result
}

/// Reports how much of a reader was consumed (progress bars on a terminal).
struct Progress<'a, R> {
    inner: R,
    task: &'a str,
    done: u64,
    total: u64,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        crate::hooks::progress(self.task, self.done, self.total, true);
        Ok(n)
    }
}

/// Canonical JSON as securesystemslib defines it: sorted keys, no whitespace, and only `\`
/// and `"` escaped in strings. Used for key ids.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    sorted_json(value, string)
}

/// Canonical JSON that is also valid JSON on one line: sorted keys, no whitespace, strings
/// escaped as JSON requires (control characters included). The stored form of audit events.
pub fn json_canonical(value: &serde_json::Value) -> String {
    fn string(out: &mut String, s: &str) {
        match serde_json::to_string(s) {
            Ok(quoted) => out.push_str(&quoted),
            Err(_) => out.push_str("\"\""),
        }
    }
    sorted_json(value, string)
}

/// JSON with sorted keys and no whitespace, strings written by `string`.
fn sorted_json(value: &serde_json::Value, string: fn(&mut String, &str)) -> String {
    use serde_json::Value;
    fn walk(out: &mut String, v: &Value, string: fn(&mut String, &str)) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => string(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(out, item, string);
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(out, k);
                    out.push(':');
                    walk(out, &map[k], string);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    walk(&mut out, value, string);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_in_chunks_like_a_whole() {
        let data = vec![7u8; CHUNK * 3 + 5];
        let mut copy = Vec::new();
        let (d, n) = hash_copy(&data[..], &mut copy).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Sha256Digest::of(&data));
        assert_eq!(copy, data);
    }

    #[test]
    fn json_canonical_sorts_and_stays_on_one_line() {
        let v = serde_json::json!({"b": "x\ny", "a": ["\"q\\"], "c": {"z": 1, "y": null}});
        assert_eq!(json_canonical(&v), "{\"a\":[\"\\\"q\\\\\"],\"b\":\"x\\ny\",\"c\":{\"y\":null,\"z\":1}}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json_canonical(&v)).unwrap(), v);
    }

    #[test]
    fn canonical_json_sorts_and_escapes_only_quote_and_backslash() {
        let v = serde_json::json!({"b": "x\ny", "a": ["\"q\\"], "c": {"z": 1, "y": null}});
        assert_eq!(canonical_json(&v), "{\"a\":[\"\\\"q\\\\\"],\"b\":\"x\ny\",\"c\":{\"y\":null,\"z\":1}}");
    }
}
