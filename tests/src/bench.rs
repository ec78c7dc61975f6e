//! Helpers shared by the benchmark drivers (`chaos-bench` on the host, `chaos-vmbench` in a VM).

use std::fs;

use anyhow::Result;
use serde_json::{Value, json};

/// The value at quantile `p` (0..=1) of an ascending slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A command's trimmed stdout, or "" if it cannot run.
pub fn cmd_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Writes `value`'s keys into the JSON object at `path`, keeping keys other benches wrote.
pub fn merge_json(path: &str, value: &Value) -> Result<()> {
    let mut current: Value = fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| json!({}));
    if let (Some(obj), Some(new)) = (current.as_object_mut(), value.as_object()) {
        for (k, v) in new {
            obj.insert(k.clone(), v.clone());
        }
    }
    fs::write(path, serde_json::to_string_pretty(&current)?)?;
    Ok(())
}
