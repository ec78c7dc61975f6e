//! Where an API field of an experiment sits in the TOML file it came from, so `chaosctl run`
//! names the file's line, not a position in the JSON it generated. The file is read as people
//! write experiments (`[[faults]]` sections, `key = value` lines, inline tables); a field in a
//! form it does not follow (a `faults = [{…}]` array) gets the line of its nearest known
//! parent, or none.

/// One step of a field path: `faults[2]` is ("faults", Some(2)).
fn steps(field: &str) -> Vec<(&str, Option<usize>)> {
    field
        .split('.')
        .map(|s| match s.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
            None => (s, None),
        })
        .collect()
}

/// The table header a line opens: (`faults`, true) for `[[faults]]`, (`steady_state`, false)
/// for `[steady_state]`.
fn header(line: &str) -> Option<(&str, bool)> {
    let t = line.trim();
    if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split_once("]]")) {
        return Some((name.0.trim(), true));
    }
    let name = t.strip_prefix('[')?.split_once(']')?.0.trim();
    Some((name, false))
}

/// Whether `line` assigns `key` (`key = …`, `"key" = …`).
fn assigns(line: &str, key: &str) -> bool {
    let Some((k, _)) = line.split_once('=') else {
        return false;
    };
    k.trim().trim_matches('"') == key
}

/// The 1-based line of `field` (`duration`, `faults[0].action.percent`,
/// `steady_state.before[0]`) in `text`.
pub fn line_of(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let steps = steps(field);
    let (first, index) = *steps.first()?;
    let key = steps.get(1).map(|s| s.0);
    // The section the first step names: the index-th `[[first]]`, or `[first]`.
    let mut seen = 0;
    let mut section = None;
    for (i, l) in lines.iter().enumerate() {
        if let Some((name, array)) = header(l)
            && name == first
        {
            match index {
                Some(n) if array => {
                    if seen == n {
                        section = Some(i);
                        break;
                    }
                    seen += 1;
                }
                None if !array => {
                    section = Some(i);
                    break;
                }
                _ => {}
            }
        }
    }
    if let Some(start) = section {
        let end = lines[start + 1..]
            .iter()
            .position(|l| header(l).is_some())
            .map_or(lines.len(), |p| start + 1 + p);
        let within = key.and_then(|k| (start + 1..end).find(|&i| assigns(lines[i], k)));
        return Some(within.unwrap_or(start) + 1);
    }
    // A top-level key (before the first table).
    lines
        .iter()
        .take_while(|l| header(l).is_none())
        .position(|l| assigns(l, first))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"name = "cache"
duration = 5

[[probes]]
id = "health"
http = { url = "http://x/" }

[steady_state]
before = ["health"]

[[faults]]
name = "a"
match = { cidr = "10.0.0.1" }

[[faults]]
name = "b"
match = { cidr = "10.0.0.2" }
action = { kind = "loss", percent = 150 }
"#;

    #[test]
    fn fields_map_to_the_lines_that_hold_them() {
        assert_eq!(line_of(FILE, "duration"), Some(2));
        assert_eq!(line_of(FILE, "faults[1].action.percent"), Some(18));
        assert_eq!(line_of(FILE, "faults[1].match"), Some(17));
        assert_eq!(line_of(FILE, "faults[0]"), Some(11));
        assert_eq!(line_of(FILE, "faults[0].action"), Some(11), "the section");
        assert_eq!(line_of(FILE, "steady_state.before[0]"), Some(9));
        assert_eq!(line_of(FILE, "probes[0].http.url"), Some(6));
        assert_eq!(line_of(FILE, "faults[5]"), None);
        assert_eq!(line_of(FILE, "hypothesis"), None);
    }
}
