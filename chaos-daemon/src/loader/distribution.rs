//! Inverse-CDF tables of the jitter distributions, as netem's `.dist` files: entry `i` is the
//! `(i + ½)/N` quantile of the standardised distribution (mean 0, standard deviation 1), in
//! units of 1/`DIST_SCALE`, clamped to ±4σ. The programs add `jitter × table[r >> 20]` to the
//! delay for a uniform random `r`.

use chaos_common::{DIST_SCALE, DIST_TABLE_SIZE};

/// Which distribution the jitter follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distribution {
    /// `delay ± jitter`, every value equally likely (computed, no table).
    #[default]
    Uniform,
    /// Normal, standard deviation `jitter`.
    Normal,
    /// Pareto (a = 3), standardised: a long tail of late packets.
    Pareto,
    /// netem's paretonormal: (normal + 3 · pareto) / 4 of the same quantile.
    ParetoNormal,
}

impl Distribution {
    /// The largest multiple of the jitter this distribution adds to the delay (its table's
    /// largest entry; 1 for uniform): `delay + largest_sample × jitter` is the longest a packet
    /// can be held, which must stay inside fq's horizon.
    pub fn largest_sample(self) -> f64 {
        static TABLES: std::sync::OnceLock<[Table; 3]> = std::sync::OnceLock::new();
        let t = TABLES.get_or_init(tables);
        let table = match self {
            Distribution::Uniform => return 1.0,
            Distribution::Normal => &t[0],
            Distribution::Pareto => &t[1],
            Distribution::ParetoNormal => &t[2],
        };
        table.iter().copied().max().unwrap_or(0) as f64 / DIST_SCALE as f64
    }

    /// The `DIST_*` code the programs read.
    pub fn code(self) -> u8 {
        match self {
            Distribution::Uniform => chaos_common::DIST_UNIFORM,
            Distribution::Normal => chaos_common::DIST_NORMAL,
            Distribution::Pareto => chaos_common::DIST_PARETO,
            Distribution::ParetoNormal => chaos_common::DIST_PARETONORMAL,
        }
    }
}

/// Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation, relative error < 1.2e-9).
fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549671338718864,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The standardised Pareto (a = 3, x_m = 1: mean 3/2, standard deviation √3/2) quantile.
fn inverse_pareto(p: f64) -> f64 {
    const A: f64 = 3.0;
    let x = (1.0 - p).powf(-1.0 / A);
    (x - 1.5) / (3.0f64.sqrt() / 2.0)
}

fn quantiles(f: impl Fn(f64) -> f64) -> Vec<f64> {
    (0..DIST_TABLE_SIZE)
        .map(|i| f((i as f64 + 0.5) / DIST_TABLE_SIZE as f64))
        .collect()
}

/// One table as the `DIST` map holds it.
pub type Table = [i16; DIST_TABLE_SIZE as usize];

fn scaled(values: &[f64]) -> Table {
    let mut t = [0; DIST_TABLE_SIZE as usize];
    for (out, v) in t.iter_mut().zip(values) {
        *out = (v.clamp(-4.0, 4.0) * DIST_SCALE as f64)
            .round()
            .clamp(-32768.0, 32767.0) as i16;
    }
    t
}

/// The three tables the `DIST` map holds, in `DIST_*` order: normal, pareto, paretonormal.
pub fn tables() -> [Table; 3] {
    let normal = quantiles(inverse_normal);
    let pareto = quantiles(inverse_pareto);
    let paretonormal: Vec<f64> = normal
        .iter()
        .zip(&pareto)
        .map(|(n, p)| (n + 3.0 * p) / 4.0)
        .collect();
    [scaled(&normal), scaled(&pareto), scaled(&paretonormal)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(t: &[i16]) -> (f64, f64) {
        let v: Vec<f64> = t.iter().map(|x| *x as f64 / DIST_SCALE as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn the_largest_samples_are_the_tables_tails() {
        let normal = Distribution::Normal.largest_sample();
        assert!((3.6..3.7).contains(&normal), "{normal}");
        let pareto = Distribution::Pareto.largest_sample();
        assert!(
            (3.999..=4.0).contains(&pareto),
            "clamped at 4 σ (the i16 cap): {pareto}"
        );
        let pn = Distribution::ParetoNormal.largest_sample();
        assert!((3.5..=4.0).contains(&pn), "{pn}");
        assert_eq!(Distribution::Uniform.largest_sample(), 1.0);
    }

    #[test]
    fn tables_are_standardised_and_sorted() {
        let [normal, pareto, paretonormal] = tables();
        let (m, sd) = moments(&normal);
        assert!(
            m.abs() < 0.01 && (sd - 1.0).abs() < 0.02,
            "normal: {m} {sd}"
        );
        // Clamping the tail at 4σ trims some of Pareto's spread.
        let (m, sd) = moments(&pareto);
        assert!(
            m.abs() < 0.1 && (0.6..1.01).contains(&sd),
            "pareto: {m} {sd}"
        );
        for t in [&normal, &pareto, &paretonormal] {
            assert!(t.windows(2).all(|w| w[0] <= w[1]), "quantiles ascend");
            assert_eq!(t.len(), DIST_TABLE_SIZE as usize);
        }
        assert!((inverse_normal(0.975) - 1.959964).abs() < 1e-6);
    }
}
