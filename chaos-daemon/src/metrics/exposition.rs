//! The two Prometheus exposition formats, written from one description of the families.
//!
//! prometheus-client (0.25) writes only OpenMetrics and walks a family's series in hash order;
//! a classic scraper (text format 0.0.4, what `curl` and most tooling expect unless they ask
//! for OpenMetrics) needs the `_total` suffix on the counter's own `# TYPE` line, and diffs of
//! two scrapes need a stable order. Both are a matter of a few lines here.

use std::fmt::Write;

/// Which format the scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Classic,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only when it names it (with a
    /// non-zero quality), as the Prometheus server does; the classic text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic; the samples are `NAME_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Constant labels worth 1 (`NAME_info`; a gauge in the classic format).
    Info,
}

/// One metric family: its name without suffix, help, type and series.
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    series: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            series: Vec::new(),
        }
    }

    /// Adds one series.
    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) -> &mut Self {
        self.series.push((labels, value));
        self
    }

    /// The number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// No series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Gauge => self.name.to_string(),
            Kind::Info => format!("{}_info", self.name),
        }
    }
}

/// Writes `families` (sorted by name, each family's series by label values) in `format`.
pub fn encode(families: &mut [Family], format: Format) -> String {
    families.sort_by_key(|f| f.name);
    let mut out = String::new();
    for f in families.iter_mut() {
        f.series.sort_by(|a, b| a.0.cmp(&b.0));
        let sample = f.sample_name();
        let (family_name, kind) = match (format, f.kind) {
            (Format::Classic, Kind::Counter) => (sample.as_str(), "counter"),
            (Format::Classic, Kind::Gauge | Kind::Info) => (sample.as_str(), "gauge"),
            (Format::OpenMetrics, Kind::Counter) => (f.name, "counter"),
            (Format::OpenMetrics, Kind::Gauge) => (f.name, "gauge"),
            (Format::OpenMetrics, Kind::Info) => (f.name, "info"),
        };
        let _ = writeln!(out, "# HELP {family_name} {}", escape_help(f.help));
        let _ = writeln!(out, "# TYPE {family_name} {kind}");
        for (labels, value) in &f.series {
            out.push_str(&sample);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(*value));
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Family> {
        let mut c = Family::new("chaos_api_requests", Kind::Counter, "API requests");
        c.push(vec![("status", "500".into())], 1.0)
            .push(vec![("status", "200".into())], 7.0);
        let mut i = Family::new("chaos_build", Kind::Info, "Build");
        i.push(vec![("version", "a\"b\\c\nd".into())], 1.0);
        let mut g = Family::new("chaos_age_seconds", Kind::Gauge, "Age\nin s");
        g.push(vec![], 0.25);
        vec![c, i, g]
    }

    #[test]
    fn classic_names_counters_with_total_and_sorts() {
        let text = encode(&mut sample(), Format::Classic);
        assert_eq!(
            text,
            "# HELP chaos_age_seconds Age\\nin s\n# TYPE chaos_age_seconds gauge\n\
             chaos_age_seconds 0.25\n\
             # HELP chaos_api_requests_total API requests\n# TYPE chaos_api_requests_total counter\n\
             chaos_api_requests_total{status=\"200\"} 7\nchaos_api_requests_total{status=\"500\"} 1\n\
             # HELP chaos_build_info Build\n# TYPE chaos_build_info gauge\n\
             chaos_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_names_families_without_suffix_and_ends_with_eof() {
        let text = encode(&mut sample(), Format::OpenMetrics);
        assert!(
            text.contains("# TYPE chaos_api_requests counter\n"),
            "{text}"
        );
        assert!(text.contains("chaos_api_requests_total{status=\"200\"} 7\n"));
        assert!(text.contains("# TYPE chaos_build info\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn accept_picks_openmetrics_only_when_named() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Classic
        );
    }
}
