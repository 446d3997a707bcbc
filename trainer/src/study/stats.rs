//! Deciding a claim from noisy measurements: bootstrap confidence intervals over replicates
//! and neurons, and the verdict rule the reports state before their numbers.
//!
//! The rule (issue 16): a claim says an effect (e.g. "CS1 drops after consistent training")
//! is larger than a margin written down beforehand. With the effect's 95% interval [lo, hi]:
//! **held** when lo > margin, **did not hold** when hi < margin, **undecided** otherwise — an
//! interval that straddles the margin (with margin 0: one that includes zero) cannot decide.
//! A missing or non-finite effect is undecided with its reason, never "did not hold".

use advlens_shared::rng::SplitMix;
use serde::Serialize;

/// A point estimate and its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    /// The coverage, e.g. 0.95.
    pub level: f64,
}

/// The `q`-quantile (0..=1) of `sorted` by linear interpolation between order statistics
/// (numpy's default): position q (n - 1).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] + frac * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The mean over all values of `groups` (replicates, each a list of neurons' values).
pub fn pooled_mean(groups: &[Vec<f64>]) -> f64 {
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    mean(&all)
}

/// One hierarchical resample: replicates drawn with replacement, then neurons with
/// replacement within each drawn replicate; the pooled mean.
fn resample_mean(groups: &[Vec<f64>], rng: &mut SplitMix) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for _ in 0..groups.len() {
        let g = &groups[(rng.next_u64() % groups.len() as u64) as usize];
        for _ in 0..g.len() {
            sum += g[(rng.next_u64() % g.len() as u64) as usize];
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// The percentile-bootstrap interval of `mean(after) - mean(before)`, each side a list of
/// replicates holding per-neuron values; replicates and neurons are resampled
/// (hierarchically) on both sides independently. Deterministic for a given `seed`.
/// `None` when a side has no values.
pub fn bootstrap_difference(before: &[Vec<f64>], after: &[Vec<f64>], resamples: usize, level: f64, seed: u64) -> Option<Interval> {
    let usable = |g: &[Vec<f64>]| g.iter().any(|r| !r.is_empty());
    if !usable(before) || !usable(after) {
        return None;
    }
    let (before, after): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
        (before.iter().filter(|r| !r.is_empty()).cloned().collect(), after.iter().filter(|r| !r.is_empty()).cloned().collect());
    let mut rng = SplitMix::new(seed, 0);
    let mut diffs: Vec<f64> = (0..resamples.max(1)).map(|_| resample_mean(&after, &mut rng) - resample_mean(&before, &mut rng)).collect();
    diffs.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some(Interval { estimate: pooled_mean(&after) - pooled_mean(&before), lo: quantile(&diffs, tail), hi: quantile(&diffs, 1.0 - tail), level })
}

/// What the evidence says about a claim.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Held,
    DidNotHold,
    Undecided { why: String },
}

impl Verdict {
    /// The rule of the module docs: `effect` is oriented so that the claim predicts it to be
    /// above `margin`.
    pub fn decide(effect: Option<Interval>, margin: f64) -> Verdict {
        match effect {
            None => Verdict::Undecided { why: "no measurements".into() },
            Some(i) if !(i.lo.is_finite() && i.hi.is_finite()) => Verdict::Undecided { why: format!("the interval [{}, {}] is not finite", i.lo, i.hi) },
            Some(i) if i.lo > margin => Verdict::Held,
            Some(i) if i.hi < margin => Verdict::DidNotHold,
            Some(i) => Verdict::Undecided { why: format!("the {:.0}% interval [{:.3}, {:.3}] contains the margin {margin}", 100.0 * i.level, i.lo, i.hi) },
        }
    }

    /// The word the reports print.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::DidNotHold => "did not hold",
            Verdict::Undecided { .. } => "undecided",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&v, 0.25) - 1.75).abs() < 1e-12);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn a_clear_shift_is_held_and_its_interval_covers_it() {
        // Three replicates of 30 neurons each; "after" is "before" + 0.2 exactly.
        let before: Vec<Vec<f64>> = (0..3).map(|r| (0..30).map(|i| ((i * 7 + r * 3) % 10) as f64 / 20.0).collect()).collect();
        let after: Vec<Vec<f64>> = before.iter().map(|r| r.iter().map(|v| v + 0.2).collect()).collect();
        let i = bootstrap_difference(&before, &after, 2000, 0.95, 1).unwrap();
        assert!((i.estimate - 0.2).abs() < 1e-12);
        assert!(i.lo < 0.2 && 0.2 < i.hi && i.lo > 0.1, "{i:?}");
        assert_eq!(Verdict::decide(Some(i), 0.0), Verdict::Held);
        assert_eq!(Verdict::decide(Some(i), 0.5), Verdict::DidNotHold);
    }

    #[test]
    fn an_effect_inside_the_noise_is_undecided() {
        // The same spread of values on both sides, shuffled: no effect.
        let before: Vec<Vec<f64>> = (0..3).map(|r| (0..40).map(|i| ((i * 13 + r) % 17) as f64).collect()).collect();
        let after: Vec<Vec<f64>> = (0..3).map(|r| (0..40).map(|i| ((i * 5 + r + 3) % 17) as f64).collect()).collect();
        let i = bootstrap_difference(&before, &after, 2000, 0.95, 7).unwrap();
        assert!(i.lo < 0.0 && i.hi > 0.0, "{i:?}");
        assert!(matches!(Verdict::decide(Some(i), 0.0), Verdict::Undecided { .. }));
    }

    #[test]
    fn the_interval_is_reproducible_and_missing_data_is_undecided() {
        let a = vec![vec![1.0, 2.0, 3.0]];
        let b = vec![vec![2.0, 3.0, 5.0]];
        assert_eq!(bootstrap_difference(&a, &b, 500, 0.95, 3), bootstrap_difference(&a, &b, 500, 0.95, 3));
        assert_eq!(bootstrap_difference(&a, &[vec![]], 500, 0.95, 3), None);
        assert_eq!(Verdict::decide(None, 0.0).word(), "undecided");
        let nan = Interval { estimate: f64::NAN, lo: f64::NAN, hi: f64::NAN, level: 0.95 };
        assert_eq!(Verdict::decide(Some(nan), 0.0).word(), "undecided");
    }

    #[test]
    fn one_replicate_still_resamples_neurons() {
        // With one replicate the interval reflects neuron-to-neuron spread only.
        let before = vec![(0..50).map(|i| (i % 5) as f64).collect::<Vec<_>>()];
        let after = vec![(0..50).map(|i| (i % 5) as f64 + 1.0).collect::<Vec<_>>()];
        let i = bootstrap_difference(&before, &after, 1000, 0.95, 2).unwrap();
        assert!(i.hi - i.lo > 0.1 && i.lo > 0.4 && i.hi < 1.6, "{i:?}");
    }
}
