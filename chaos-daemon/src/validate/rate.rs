//! Bandwidth rates as users write them: bits ("10mbit", "1.5gbit", "800kbit/s") or bytes
//! ("1.25MB/s", "500kB/s") per second, SI prefixes (k = 1000). "mbps"-style units are refused:
//! tc reads "mbps" as megabytes, most people as megabits.

/// Slowest rate accepted: an MTU-sized packet must fit in the pacing horizon (2 s).
pub const MIN_BYTES_PER_SEC: u64 = 1_000;
/// Fastest rate accepted (100 gbit/s); keeps the policer's arithmetic inside a u64.
pub const MAX_BYTES_PER_SEC: u64 = 12_500_000_000;

fn prefix(p: &str) -> Option<f64> {
    Some(match p {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return None,
    })
}

/// Bytes per second for `text`, or a message that says what is wrong and how to write it.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let hint = "write bits per second (\"10mbit\", \"1gbit\") or bytes per second (\"1.25MB/s\")";
    let value: f64 = number
        .parse()
        .map_err(|_| format!("rate {text:?} does not start with a number: {hint}"))?;
    let lower = unit.to_ascii_lowercase();
    let bits = lower
        .strip_suffix("/s")
        .unwrap_or(&lower)
        .strip_suffix("bit")
        .and_then(prefix);
    let bytes = unit
        .strip_suffix("B/s")
        .and_then(|p| prefix(&p.to_ascii_lowercase()));
    let per_sec = match (bits, bytes) {
        (Some(m), _) => value * m / 8.0,
        (None, Some(m)) => value * m,
        _ if unit.is_empty() => return Err(format!("rate {text:?} has no unit: {hint}")),
        _ if lower.ends_with("bps") || lower.ends_with("b/s") => {
            return Err(format!(
                "rate {text:?} is ambiguous (tc reads \"mbps\" as megabytes per second, most people as megabits): {hint}"
            ));
        }
        _ => return Err(format!("rate {text:?}: unknown unit {unit:?}: {hint}")),
    };
    let min = MIN_BYTES_PER_SEC as f64;
    let max = MAX_BYTES_PER_SEC as f64;
    if !(min..=max).contains(&per_sec) {
        return Err(format!(
            "rate {text:?} is {per_sec} bytes/s; it must be between 8kbit (1kB/s) and 100gbit"
        ));
    }
    Ok(per_sec.round() as u64)
}

/// The ingress policer's bucket for `bytes_per_sec`: 20 ms of traffic, at least 64 KiB, so a
/// TCP flow's bursts are not cut below the rate.
pub fn burst_for(bytes_per_sec: u64) -> u32 {
    (bytes_per_sec / 50).clamp(64 * 1024, u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_bytes_per_second() {
        for (text, bytes) in [
            ("10mbit", 1_250_000),
            ("10Mbit", 1_250_000),
            ("10mbit/s", 1_250_000),
            ("1gbit", 125_000_000),
            ("1.5gbit", 187_500_000),
            ("800kbit", 100_000),
            ("8000bit", 1_000),
            ("1.25MB/s", 1_250_000),
            ("500kB/s", 500_000),
            ("500KB/s", 500_000),
            (" 2 GB/s ", 2_000_000_000),
            ("100gbit", MAX_BYTES_PER_SEC),
        ] {
            assert_eq!(parse_rate(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn ambiguous_unknown_and_absurd_rates_say_why() {
        for (text, says) in [
            ("10mbps", "ambiguous"),
            ("10Mbps", "ambiguous"),
            ("10mb/s", "ambiguous"),
            ("10", "no unit"),
            ("fast", "number"),
            ("1.2.3mbit", "number"),
            ("10furlongs", "unknown unit"),
            ("0mbit", "between"),
            ("1kbit", "between"),
            ("101gbit", "between"),
            ("1e9mbit", "unknown unit"),
            ("", "number"),
        ] {
            let e = parse_rate(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn bursts_cover_twenty_ms_and_a_tcp_window() {
        assert_eq!(burst_for(1_250_000), 64 * 1024);
        assert_eq!(burst_for(125_000_000), 2_500_000);
        assert_eq!(burst_for(MAX_BYTES_PER_SEC), 250_000_000);
    }
}
