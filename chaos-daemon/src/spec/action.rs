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

    /// The action's own probability (loss's `percent`), if it has one.
    pub fn own_percent(&self) -> Option<f64> {
        match self {
            ActionSpec::Loss { percent } => Some(*percent),
            _ => None,
        }
    }

    /// "drop 30%", "delay 300ms"…, with the percent of packets affected when below 100. A
    /// drop shows the one figure that happens to packets, `share` × loss's own percent: the
    /// netem user's `loss 10%`, not "drop 20% on 50%".
    pub fn describe(&self, percent: f64) -> String {
        let a = match self {
            ActionSpec::Blackhole {} | ActionSpec::Loss { .. } => {
                let p = effective_percent(self, percent);
                return if p >= 100.0 {
                    "drop all".to_string()
                } else {
                    format!("drop {}%", round_percent(p))
                };
            }
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

/// The percent of matching packets `action` acts on when `share` percent of them are chosen.
pub fn effective_percent(action: &ActionSpec, share: f64) -> f64 {
    action.own_percent().map_or(share, |p| p * share / 100.0)
}

/// A percent at the daemon's resolution (0.0001 %), without float noise (`0.30000000000000004`).
fn round_percent(p: f64) -> f64 {
    (p * 10_000.0).round() / 10_000.0
}
