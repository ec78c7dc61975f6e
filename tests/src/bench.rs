//! Helpers shared by the benchmark drivers (`chaos-bench` on the host, `chaos-vmbench` in a VM).

use std::fs;

use anyhow::Result;
use serde_json::{Value, json};

use crate::netns::{B4, NsPair};

/// The value at quantile `p` (0..=1) of an ascending slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Mean, median, 99th percentile and standard deviation of a sample (ms, in the benches).
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Population standard deviation.
    pub sd: f64,
}

impl Spread {
    /// The spread of `ms` (not empty).
    pub fn of(mut ms: Vec<f64>) -> Spread {
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        let sd = (ms.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / ms.len() as f64).sqrt();
        Spread {
            mean,
            p50: percentile(&ms, 0.5),
            p99: percentile(&ms, 0.99),
            sd,
        }
    }

    /// As results.json keeps it, to the microsecond.
    pub fn json(&self) -> Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        json!({"mean_ms": r(self.mean), "p50_ms": r(self.p50), "p99_ms": r(self.p99), "stdev_ms": r(self.sd)})
    }
}

/// RTTs in ms of `n` pings from A to B, 50 ms apart.
pub fn rtts_to_b(p: &NsPair, n: u32) -> Vec<f64> {
    p.ping_replies(&p.a, B4, n, "0.05")
        .into_iter()
        .map(|(_, ms)| ms)
        .collect()
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
