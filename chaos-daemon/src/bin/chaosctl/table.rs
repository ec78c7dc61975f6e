//! The fault table `chaosctl ls` prints.

use std::time::Duration;

use chaos_daemon::spec::Fault;

const HEADER: [&str; 9] = [
    "ID", "NAME", "IFACE", "KIND", "MATCH", "ACTION", "TTL LEFT", "MATCHED", "AFFECTED",
];
const WIDE: [&str; 6] = ["PERCENT", "BYTES", "LABELS", "CREATED", "EXPIRES", "BY"];

/// Who made a fault, in one cell: "uid 0 (chaosctl)".
pub fn by(f: &Fault) -> String {
    match &f.created_by {
        None => "daemon".into(),
        Some(c) => {
            let uid = c.uid.map_or_else(|| "?".into(), |u| u.to_string());
            match &c.process {
                Some(p) => format!("uid {uid} ({})", p.escape_default()),
                None => format!("uid {uid}"),
            }
        }
    }
}

/// `k=v,k=v`.
pub fn labels(f: &Fault) -> String {
    let l: Vec<String> = f
        .spec
        .labels
        .iter()
        .map(|(k, v)| format!("{}={}", k.escape_default(), v.escape_default()))
        .collect();
    if l.is_empty() {
        "-".into()
    } else {
        l.join(",")
    }
}

/// One row per fault, columns padded to their widest cell; `wide` adds the effective percent,
/// bytes, labels, times and creator. Names are escaped, so no cell can move the cursor or
/// hide text.
pub fn render(faults: &[Fault], wide: bool) -> String {
    let header: Vec<String> = HEADER
        .iter()
        .chain(if wide { &WIDE[..] } else { &[] })
        .map(|h| h.to_string())
        .collect();
    let mut rows: Vec<Vec<String>> = vec![header];
    for f in faults {
        let left = Duration::from_secs(f.remaining_ms.div_ceil(1000));
        let mut row = vec![
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
        ];
        if wide {
            row.extend([
                format!("{}%", f.spec.effective_percent()),
                f.counters.matched_bytes.to_string(),
                labels(f),
                f.created_at.clone(),
                f.expires_at.clone(),
                by(f),
            ]);
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
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
