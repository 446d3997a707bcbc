//! The page's attacks, as the URL states them (`attack=&eps=&steps=&target=&seed=&stepsize=`),
//! resolved by `advlens_shared::attack::AttackChoice` into the `AttackSpec` the worker runs —
//! the rules `advlens perturb` follows too.

use advlens_shared::attack::{AttackChoice, AttackSpec};

/// The attack as the URL gives it; `None` fields take the model's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttackParams {
    pub choice: AttackChoice,
    pub epsilon: Option<f32>,
    pub steps: Option<usize>,
    /// Aim at this class instead of away from the true one.
    pub target: Option<usize>,
    /// Seed of a random start in the ball (none: start at the image).
    pub seed: Option<u64>,
    /// Step size (none: the attack's usual one for its budget and steps).
    pub step_size: Option<f32>,
    /// The ensemble attack: the page's other models attacked together with the explored one
    /// (catalog ids; the models of the same data left out judge whether the image transfers).
    pub with: Vec<String>,
}

/// The most steps a page attack may take.
pub const MAX_STEPS: usize = 200;

impl AttackParams {
    /// Reads one `key=value` of the URL; `Ok(false)` when the key is not an attack's, an error
    /// sentence when the value cannot be used (the default stays).
    pub fn read(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let bad = |what: &str| Err(format!("?{key}={value} is not {what}: using the default"));
        match key {
            "attack" => match AttackChoice::parse(value) {
                Some(c) => self.choice = c,
                None => return bad(&format!("an attack ({})", AttackChoice::names())),
            },
            "eps" => match value.parse::<f32>() {
                Ok(e) if e > 0.0 && e.is_finite() => self.epsilon = Some(e),
                _ => return bad("a positive budget"),
            },
            "steps" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_STEPS).contains(&n) => self.steps = Some(n),
                _ => return bad(&format!("a number of steps from 1 to {MAX_STEPS}")),
            },
            "target" => match value.parse::<usize>() {
                Ok(t) => self.target = Some(t),
                _ => return bad("a class number"),
            },
            "stepsize" => match value.parse::<f32>() {
                Ok(s) if s > 0.0 && s.is_finite() => self.step_size = Some(s),
                _ => return bad("a positive step size"),
            },
            "seed" => match value.parse::<u64>() {
                Ok(s) => self.seed = Some(s),
                _ => return bad("a seed (a whole number)"),
            },
            "with" => {
                let ids: Vec<String> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                if ids.iter().any(|id| !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
                    return bad("a list of model ids (letters, digits, - and _, separated by commas)");
                }
                self.with = ids;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The URL parts of the values that differ from the defaults.
    pub fn query_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if self.choice != AttackChoice::Pgd {
            parts.push(format!("attack={}", self.choice.as_str()));
        }
        if let Some(e) = self.epsilon {
            parts.push(format!("eps={e}"));
        }
        if let Some(n) = self.steps {
            parts.push(format!("steps={n}"));
        }
        if let Some(t) = self.target {
            parts.push(format!("target={t}"));
        }
        if let Some(s) = self.seed {
            parts.push(format!("seed={s}"));
        }
        if let Some(s) = self.step_size {
            parts.push(format!("stepsize={s}"));
        }
        if self.choice == AttackChoice::Ensemble && !self.with.is_empty() {
            parts.push(format!("with={}", self.with.join(",")));
        }
        parts
    }

    /// Every number decided, as the worker runs it: `default_epsilon` and `default_steps` where
    /// the URL is silent, the rest by [`AttackChoice::spec`].
    pub fn resolve(&self, default_epsilon: f32, default_steps: usize) -> AttackSpec {
        let mut spec = self.choice.spec(self.epsilon.unwrap_or(default_epsilon), self.steps.unwrap_or(default_steps), self.target, self.seed);
        if let Some(s) = self.step_size {
            spec.step_size = s;
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_values_round_trip_and_bad_ones_are_named() {
        let mut p = AttackParams::default();
        for (k, v) in [("attack", "mi-fgsm"), ("eps", "0.1"), ("steps", "20"), ("target", "3"), ("seed", "7"), ("stepsize", "0.02"), ("with", "b-1, c_2,")] {
            assert_eq!(p.read(k, v), Ok(true));
        }
        assert_eq!(p.query_parts(), ["attack=mi-fgsm", "eps=0.1", "steps=20", "target=3", "seed=7", "stepsize=0.02"], "the ensemble's models only for the ensemble");
        let ensemble = AttackParams { choice: AttackChoice::Ensemble, ..p.clone() };
        assert_eq!(ensemble.query_parts().last().map(String::as_str), Some("with=b-1,c_2"));
        assert_eq!(p.read("model", "x"), Ok(false));
        for (k, v) in [("attack", "cw"), ("eps", "-1"), ("eps", "NaN"), ("steps", "0"), ("steps", "1000"), ("target", "x"), ("seed", "-2"), ("stepsize", "0"), ("stepsize", "inf"), ("with", "a/../b")] {
            assert!(p.read(k, v).unwrap_err().contains(&format!("?{k}={v}")), "{k}={v}");
        }
        assert_eq!(AttackParams::default().query_parts(), Vec::<String>::new());
    }

    #[test]
    fn resolving_fills_in_the_models_defaults() {
        assert_eq!(AttackParams::default().resolve(0.2, 10), AttackSpec::pgd(0.2, 10), "the page's default is shared's PGD");
        let given = AttackParams { choice: AttackChoice::MiFgsm, epsilon: Some(0.05), steps: Some(20), target: Some(4), seed: Some(9), step_size: None, with: Vec::new() };
        assert_eq!(given.resolve(0.2, 10), AttackChoice::MiFgsm.spec(0.05, 20, Some(4), Some(9)));
        let stepped = AttackParams { step_size: Some(0.01), ..given };
        assert_eq!(stepped.resolve(0.2, 10), AttackSpec { step_size: 0.01, ..AttackChoice::MiFgsm.spec(0.05, 20, Some(4), Some(9)) });
    }
}
