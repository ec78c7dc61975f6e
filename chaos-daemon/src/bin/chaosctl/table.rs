//! The fault table `chaosctl ls` prints.

use std::time::Duration;

use chaos_daemon::spec::Fault;

const HEADER: [&str; 9] = [
    "ID", "NAME", "IFACE", "KIND", "MATCH", "ACTION", "TTL LEFT", "MATCHED", "AFFECTED",
];

/// One row per fault, columns padded to their widest cell. Names are escaped, so no cell can
/// move the cursor or hide text.
pub fn render(faults: &[Fault]) -> String {
    let mut rows: Vec<[String; 9]> = vec![HEADER.map(String::from)];
    for f in faults {
        let left = Duration::from_secs(f.remaining_ms.div_ceil(1000));
        rows.push([
            f.id.escape_default().to_string(),
            f.spec
                .name
                .as_deref()
                .map_or_else(|| "-".into(), |n| n.escape_default().to_string()),
            f.spec
                .interface
                .clone()
                .unwrap_or_default()
                .escape_default()
                .to_string(),
            f.spec.action.kind().into(),
            f.spec.matches.describe(f.spec.direction),
            f.spec.action.describe(f.spec.percent),
            humantime::format_duration(left).to_string(),
            f.counters.matched.to_string(),
            f.counters.affected.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
