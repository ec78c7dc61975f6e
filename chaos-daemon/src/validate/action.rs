//! Checks of the `action` part and of the share of packets affected (`percent`).

use super::ValidationError;
use crate::{
    loader::{Action, Direction},
    spec::{ActionSpec, FaultSpec},
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

/// The loader action for `spec` in `direction`.
pub fn check(spec: &FaultSpec, direction: Direction) -> Result<Action, ValidationError> {
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
        ActionSpec::Latency { .. } | ActionSpec::Bandwidth { .. }
            if direction == Direction::Ingress =>
        {
            Err(ValidationError::invalid(
                "direction",
                format!("{} faults work on egress only", spec.action.kind()),
            ))
        }
        other => Err(ValidationError::invalid(
            "action.kind",
            format!(
                "{} faults are not supported by this version yet (supported: blackhole, loss)",
                other.kind()
            ),
        )),
    }
}
