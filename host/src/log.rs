//! The host's own output on stderr: one JSON object per line (request lines, warnings, errors), each with
//! the time it was written.

use std::io::Write;

use serde_json::{Map, Value};

/// Writes `record` (a JSON object) as one line, with a `time` field added.
pub fn write(record: Value) {
    let mut line = Map::new();
    line.insert(
        "time".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    if let Value::Object(fields) = record {
        line.extend(fields);
    }
    // One `write` per line: stderr is unbuffered, and formatting straight into it would issue a system
    // call per JSON token (and let lines from concurrent requests interleave).
    let mut bytes = Value::Object(line).to_string().into_bytes();
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}
