//! Checks of the `action` part and of the share of packets affected (`percent`).

use super::{
    ValidationError,
    rate::{burst_for, parse_rate},
};
use crate::{
    loader::{Action, Direction, Distribution, DnsResponse, injector::MAX_DELAY},
    spec::{ActionSpec, DistributionSpec, FaultSpec},
};

/// Parts per million in one percent.
const PPM_PER_PERCENT: f64 = 10_000.0;

fn check_percent(field: &str, p: f64) -> Result<f64, ValidationError> {
    if !(p > 0.0 && p <= 100.0) {
        return Err(ValidationError::invalid(
            field,
            format!("{field} must be > 0 and ≤ 100, got {p}"),
        ));
    }
    Ok(p)
}

/// A probability in ppm, refused where it would round to zero (a fault that never acts).
fn ppm(field: &str, fraction_percent: f64) -> Result<u32, ValidationError> {
    let ppm = (fraction_percent * PPM_PER_PERCENT).round();
    if ppm < 1.0 {
        return Err(ValidationError::invalid(
            field,
            format!(
                "{field} {fraction_percent} rounds to 0: the resolution is 0.0001 % (1 packet in a million)"
            ),
        ));
    }
    Ok(ppm as u32)
}

/// The loader action for `spec` in `direction`; `fq` says whether this kernel has `sch_fq`.
pub fn check(spec: &FaultSpec, direction: Direction, fq: bool) -> Result<Action, ValidationError> {
    // The top-level `percent`: of the matching packets, how many the action applies to.
    let percent = check_percent("percent", spec.percent)?;
    match &spec.action {
        ActionSpec::Blackhole {} if percent >= 100.0 => Ok(Action::Blackhole),
        ActionSpec::Blackhole {} => Ok(Action::Loss {
            ppm: ppm("percent", percent)?,
        }),
        ActionSpec::Loss { percent: p } => {
            let p = check_percent("action.percent", *p)?;
            let field = if spec.percent < 100.0 {
                "percent"
            } else {
                "action.percent"
            };
            Ok(Action::Loss {
                ppm: ppm(field, p * percent / 100.0)?,
            })
        }
        ActionSpec::Latency { .. } if direction == Direction::Ingress => {
            Err(ValidationError::invalid(
                "direction",
                "latency works on egress only: a received packet cannot be held back (the delay is a \
             departure time that fq honours on the way out). Delay the other direction instead: \
             a latency fault on the peer's egress, or on this host's egress to the peer, which \
             delays the requests the replies answer",
            ))
        }
        ActionSpec::Bandwidth { .. } if percent < 100.0 => Err(ValidationError::invalid(
            "percent",
            "percent does not apply to bandwidth: the rate holds for all matching traffic",
        )),
        ActionSpec::Bandwidth { rate } => {
            let bytes_per_sec =
                parse_rate(rate).map_err(|m| ValidationError::invalid("action.rate", m))?;
            if direction == Direction::Egress && !fq {
                return Err(ValidationError::invalid(
                    "action.kind",
                    "bandwidth on egress paces packets with departure times, which need the \
                     sch_fq qdisc (with sch_prio and sch_netem); this kernel does not have them \
                     (GET /v1/health shows features.fq=false). On ingress bandwidth is a policer and works without fq",
                ));
            }
            Ok(Action::Bandwidth {
                bytes_per_sec,
                burst_bytes: burst_for(bytes_per_sec),
            })
        }
        ActionSpec::Latency { .. } if !fq => Err(ValidationError::invalid(
            "action.kind",
            "latency needs the sch_fq qdisc (with sch_prio and sch_netem), which this kernel does \
             not have (GET /v1/health shows features.fq=false): without fq a departure time is \
             ignored and nothing is delayed",
        )),
        ActionSpec::Latency {
            delay,
            jitter,
            distribution,
            correlation,
            reorder,
        } => {
            let jitter = jitter.unwrap_or_default();
            let correlation = match correlation {
                None => 0,
                Some(c) if (0.0..=100.0).contains(c) => {
                    ((c / 100.0) * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
                }
                Some(c) => {
                    return Err(ValidationError::invalid(
                        "action.correlation",
                        format!("correlation must be 0-100 (percent), got {c}"),
                    ));
                }
            };
            if delay.is_zero() {
                return Err(ValidationError::invalid(
                    "action.delay",
                    "delay must be positive",
                ));
            }
            if jitter > *delay {
                return Err(ValidationError::invalid(
                    "action.jitter",
                    format!(
                        "jitter {} exceeds the delay {}: a packet cannot leave before it was sent",
                        humantime::format_duration(jitter),
                        humantime::format_duration(*delay)
                    ),
                ));
            }
            let distribution = match distribution.unwrap_or(DistributionSpec::Uniform) {
                DistributionSpec::Uniform => Distribution::Uniform,
                DistributionSpec::Normal => Distribution::Normal,
                DistributionSpec::Pareto => Distribution::Pareto,
                DistributionSpec::Paretonormal => Distribution::ParetoNormal,
            };
            // The longest a packet can be held is the delay plus the distribution's largest
            // sample (3.66 σ for normal, 4 σ for the Pareto kinds): past fq's horizon it would
            // be dropped, not delayed.
            let factor = distribution.largest_sample();
            let longest = delay.as_secs_f64() + factor * jitter.as_secs_f64();
            if longest > MAX_DELAY.as_secs_f64() {
                let what = if distribution == Distribution::Uniform {
                    "delay + jitter".to_string()
                } else {
                    format!("with {distribution:?} jitter, delay + {factor:.2} × jitter (its largest sample)")
                        .to_lowercase()
                };
                return Err(ValidationError::invalid(
                    if jitter.is_zero() || *delay > MAX_DELAY {
                        "action.delay"
                    } else {
                        "action.jitter"
                    },
                    format!(
                        "{what} must be at most {} (a packet held longer would be dropped), got {:.1}s",
                        humantime::format_duration(MAX_DELAY),
                        longest
                    ),
                ));
            }
            Ok(Action::Latency {
                delay_ns: delay.as_nanos() as u64,
                jitter_ns: jitter.as_nanos() as u64,
                distribution,
                correlation,
                ppm: ppm("percent", percent)?,
                reorder: *reorder,
            })
        }
        ActionSpec::Dns { .. } if direction == Direction::Ingress => Err(ValidationError::invalid(
            "direction",
            "DNS faults answer the queries this host sends: egress only",
        )),
        ActionSpec::Dns { response, .. } => Ok(Action::Dns {
            response: match response.as_str() {
                "nxdomain" => DnsResponse::NxDomain,
                "servfail" => DnsResponse::ServFail,
                "refused" => DnsResponse::Refused,
                "drop" => DnsResponse::Drop,
                other => {
                    return Err(ValidationError::invalid(
                        "action.response",
                        format!(
                            "{:?} is not a response: nxdomain, servfail, refused or drop (no answer, the client times out)",
                            other.escape_default().to_string()
                        ),
                    ));
                }
            },
            ppm: ppm("percent", percent)?,
        }),
    }
}
