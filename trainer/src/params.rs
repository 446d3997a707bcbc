//! One set of rules for the numbers every command takes: perturbation budgets, step sizes,
//! counts. `train`, `eval`, `attack`, `analyze`, `perturb` and `reproduce` all check their flags
//! here, so the same value is accepted or refused, with the same words, everywhere.
//!
//! Each check names the flag, says what is allowed and shows what was given: a NaN lambda once
//! surfaced as a NaN loss that blamed `--lr`, and a negative epsilon made `eval` report 100%
//! robust accuracy.

use anyhow::{bail, Result};

use crate::attack::Norm;

/// A perturbation budget on the [0, 1] pixel scale: in (0, 1].
pub fn epsilon(flag: &str, value: f64) -> Result<f64> {
    if !(value > 0.0 && value <= 1.0) {
        bail!("{flag} must be in (0, 1] (pixels are on the [0, 1] scale), got {value}");
    }
    Ok(value)
}

/// A perturbation budget in `norm`: on the [0, 1] scale for L-inf, any positive length for L2
/// (an L2 ball of radius 3 is a usual MNIST budget).
pub fn budget(flag: &str, value: f64, norm: Norm) -> Result<f64> {
    match norm {
        Norm::Linf => epsilon(flag, value),
        Norm::L2 => positive(flag, value),
    }
}

/// A finite number above zero (step sizes, learning rates).
pub fn positive(flag: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{flag} must be a positive number, got {value}");
    }
    Ok(value)
}

/// A finite number of at least zero (loss weights).
pub fn non_negative(flag: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("{flag} must be a number >= 0, got {value}");
    }
    Ok(value)
}

/// A count of at least one (steps, epochs, batch sizes, image limits).
pub fn count(flag: &str, value: usize) -> Result<usize> {
    if value == 0 {
        bail!("{flag} must be at least 1");
    }
    Ok(value)
}

/// A fraction in [0, 1).
pub fn fraction(flag: &str, value: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&value) {
        bail!("{flag} must be in [0, 1), got {value}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_accepts_its_range_and_names_the_flag_otherwise() {
        assert_eq!(epsilon("--epsilon", 0.3).unwrap(), 0.3);
        assert_eq!(epsilon("--epsilon", 1.0).unwrap(), 1.0);
        for bad in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let m = epsilon("--epsilon", bad).unwrap_err().to_string();
            assert!(m.starts_with("--epsilon must be in (0, 1]"), "{m}");
        }
        assert!(budget("--epsilon", 3.0, Norm::L2).is_ok());
        assert!(budget("--epsilon", 3.0, Norm::Linf).is_err());
        assert!(budget("--epsilon", -3.0, Norm::L2).is_err());
        assert!(positive("--lr", 1e-3).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(positive("--lr", bad).unwrap_err().to_string().starts_with("--lr "));
        }
        assert!(non_negative("--lambda", 0.0).is_ok());
        for bad in [-1e-9, f64::NAN, f64::NEG_INFINITY] {
            assert!(non_negative("--lambda", bad).unwrap_err().to_string().starts_with("--lambda "));
        }
        assert_eq!(count("--steps", 3).unwrap(), 3);
        assert!(count("--steps", 0).unwrap_err().to_string().starts_with("--steps must be at least 1"));
        assert!(fraction("--val-fraction", 0.0).is_ok());
        assert!(fraction("--val-fraction", 1.0).is_err());
    }
}
