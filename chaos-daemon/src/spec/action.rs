//! The `action` part of a fault: what happens to the packets it matches.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How latency jitter is distributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributionSpec {
    /// Every value in `delay ± jitter` equally likely.
    Uniform,
    /// Normal, standard deviation `jitter`.
    Normal,
    /// Pareto: a long tail of late packets.
    Pareto,
    /// netem's mix of normal and Pareto.
    Paretonormal,
}

/// What a fault does. Tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ActionSpec {
    /// Drop every matching packet, silently.
    Blackhole {},
    /// Drop `percent` % of matching packets at random.
    Loss {
        /// Loss probability, 0 < percent ≤ 100.
        percent: f64,
    },
    /// Delay matching packets (EDT + fq; egress only).
    Latency {
        /// Added delay.
        #[serde(with = "humantime_serde")]
        delay: Duration,
        /// Variation of the delay: half-width (uniform) or standard deviation (the others).
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        jitter: Option<Duration>,
        /// `uniform` (default), `normal`, `pareto` or `paretonormal`, as netem.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distribution: Option<DistributionSpec>,
        /// Correlation of successive jitter samples in percent (0–100), as netem.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlation: Option<f64>,
        /// Let jitter reorder the packets of a flow, as netem does (default: a flow stays in
        /// order, each packet leaving no earlier than the one before it).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reorder: bool,
    },
    /// Hold matching traffic to a rate: paced on egress (EDT + fq), policed (dropped above
    /// the rate) on ingress.
    Bandwidth {
        /// Rate in bits ("10mbit", "1.5gbit") or bytes ("1.25MB/s") per second.
        rate: String,
    },
    /// Answer DNS queries for a domain with an error (or drop them), egress only; `match.cidr`
    /// and `match.port` (default 53) name the resolvers.
    Dns {
        /// Exact name or `*.suffix` (names strictly below the suffix); echoed lowercase.
        domain: String,
        /// `nxdomain`, `servfail`, `refused` or `drop` (no answer: the client times out).
        response: String,
    },
}

impl ActionSpec {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::Blackhole {} => "blackhole",
            ActionSpec::Loss { .. } => "loss",
            ActionSpec::Latency { .. } => "latency",
            ActionSpec::Bandwidth { .. } => "bandwidth",
            ActionSpec::Dns { .. } => "dns",
        }
    }

    /// "drop 30%", "delay 300ms"…, with the percent of packets affected when below 100.
    pub fn describe(&self, percent: f64) -> String {
        let a = match self {
            ActionSpec::Blackhole {} => "drop all".to_string(),
            ActionSpec::Loss { percent } => format!("drop {percent}%"),
            ActionSpec::Latency {
                delay,
                jitter,
                distribution,
                ..
            } => match jitter {
                Some(j) if !j.is_zero() => format!(
                    "delay {} ± {}{}",
                    humantime::format_duration(*delay),
                    humantime::format_duration(*j),
                    distribution
                        .filter(|d| *d != DistributionSpec::Uniform)
                        .map(|d| format!(" {d:?}").to_lowercase())
                        .unwrap_or_default()
                ),
                _ => format!("delay {}", humantime::format_duration(*delay)),
            },
            ActionSpec::Bandwidth { rate } => format!("limit {rate}"),
            ActionSpec::Dns { domain, response } => format!("{response} for {domain}"),
        };
        if percent < 100.0 {
            format!("{a} on {percent}% of packets")
        } else {
            a
        }
    }
}
