//! The page's attacks, as the URL states them (`attack=&eps=&steps=&target=&seed=`), resolved
//! into `advlens_shared::attack::AttackSpec` — what the worker runs. One place for the page's
//! step-size rules.

use advlens_shared::attack::{AttackKind, AttackSpec, Norm};

/// Which attack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttackChoice {
    /// Projected gradient descent in the L-inf ball (Madry et al.).
    #[default]
    Pgd,
    /// Projected gradient descent in the L2 ball.
    PgdL2,
    /// One signed-gradient step (Goodfellow et al.).
    Fgsm,
    /// Iterative least-likely class: towards the class the model finds least likely (Kurakin et al.).
    LeastLikely,
    /// Momentum iterative FGSM (Dong et al. 2018), the attack that transfers best between models.
    MiFgsm,
}

impl AttackChoice {
    pub const ALL: [AttackChoice; 5] = [AttackChoice::Pgd, AttackChoice::PgdL2, AttackChoice::Fgsm, AttackChoice::LeastLikely, AttackChoice::MiFgsm];

    /// Its name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            AttackChoice::Pgd => "pgd",
            AttackChoice::PgdL2 => "pgd-l2",
            AttackChoice::Fgsm => "fgsm",
            AttackChoice::LeastLikely => "least-likely",
            AttackChoice::MiFgsm => "mi-fgsm",
        }
    }

    /// Its name for people.
    pub fn title(self) -> &'static str {
        match self {
            AttackChoice::Pgd => "PGD (L∞: every pixel changes by at most ε)",
            AttackChoice::PgdL2 => "PGD (L2: the total change is at most ε)",
            AttackChoice::Fgsm => "FGSM (one step)",
            AttackChoice::LeastLikely => "least-likely class (towards the least likely class)",
            AttackChoice::MiFgsm => "MI-FGSM (with momentum)",
        }
    }

    pub fn parse(s: &str) -> Option<AttackChoice> {
        AttackChoice::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn norm(self) -> Norm {
        if self == AttackChoice::PgdL2 {
            Norm::L2
        } else {
            Norm::Linf
        }
    }
}

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
                None => return bad("an attack (pgd, pgd-l2, fgsm, least-likely, mi-fgsm)"),
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
            "seed" => match value.parse::<u64>() {
                Ok(s) => self.seed = Some(s),
                _ => return bad("a seed (a whole number)"),
            },
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
        parts
    }

    /// Every number decided, as the worker runs it: `default_epsilon` and `default_steps` where
    /// the URL is silent, the usual step size (2.5 epsilon / steps for PGD and least-likely,
    /// epsilon / steps for MI-FGSM, epsilon for FGSM), a target only for the attacks that take one.
    pub fn resolve(&self, default_epsilon: f32, default_steps: usize) -> AttackSpec {
        let epsilon = self.epsilon.unwrap_or(default_epsilon);
        let steps = if self.choice == AttackChoice::Fgsm { 1 } else { self.steps.unwrap_or(default_steps) };
        let step_size = match self.choice {
            AttackChoice::Fgsm => epsilon,
            AttackChoice::MiFgsm => epsilon / steps as f32,
            _ => 2.5 * epsilon / steps as f32,
        };
        let kind = match self.choice {
            AttackChoice::Pgd | AttackChoice::PgdL2 => AttackKind::Pgd,
            AttackChoice::Fgsm => AttackKind::Fgsm,
            AttackChoice::LeastLikely => AttackKind::LeastLikely,
            AttackChoice::MiFgsm => AttackKind::MiFgsm { decay: 1.0 },
        };
        let target = if self.choice == AttackChoice::LeastLikely { None } else { self.target };
        AttackSpec { kind, norm: self.choice.norm(), epsilon, step_size, steps, target, random_start: self.seed }
    }
}

impl AttackChoice {
    /// The page's name for an attack of the shared library.
    pub fn of(spec: &AttackSpec) -> AttackChoice {
        match (spec.kind, spec.norm) {
            (AttackKind::Pgd, Norm::L2) => AttackChoice::PgdL2,
            (AttackKind::Pgd, Norm::Linf) => AttackChoice::Pgd,
            (AttackKind::Fgsm, _) => AttackChoice::Fgsm,
            (AttackKind::LeastLikely, _) => AttackChoice::LeastLikely,
            (AttackKind::MiFgsm { .. }, _) => AttackChoice::MiFgsm,
        }
    }
}

/// A sentence for people: "10 steps of PGD (L∞ …) with ε = 0.2, aimed at “3”".
pub fn describe(spec: &AttackSpec, class_name: impl Fn(usize) -> String) -> String {
    let steps = if spec.steps == 1 { "one step".to_string() } else { format!("{} steps", spec.steps) };
    let mut s = format!("{steps} of {} with ε = {}", AttackChoice::of(spec).title(), spec.epsilon);
    if let Some(t) = spec.target {
        s += &format!(", aimed at “{}”", class_name(t));
    }
    if let Some(seed) = spec.random_start {
        s += &format!(", random start (seed {seed})");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_values_round_trip_and_bad_ones_are_named() {
        let mut p = AttackParams::default();
        for (k, v) in [("attack", "mi-fgsm"), ("eps", "0.1"), ("steps", "20"), ("target", "3"), ("seed", "7")] {
            assert_eq!(p.read(k, v), Ok(true));
        }
        assert_eq!(p.query_parts(), ["attack=mi-fgsm", "eps=0.1", "steps=20", "target=3", "seed=7"]);
        assert_eq!(p.read("model", "x"), Ok(false));
        for (k, v) in [("attack", "cw"), ("eps", "-1"), ("eps", "NaN"), ("steps", "0"), ("steps", "1000"), ("target", "x"), ("seed", "-2")] {
            assert!(p.read(k, v).unwrap_err().contains(&format!("?{k}={v}")), "{k}={v}");
        }
        assert_eq!(AttackParams::default().query_parts(), Vec::<String>::new());
    }

    #[test]
    fn resolving_applies_the_defaults_and_step_rules() {
        let pgd = AttackParams::default().resolve(0.2, 10);
        assert_eq!(pgd, AttackSpec::pgd(0.2, 10), "the page's default is shared's PGD");
        let fgsm = AttackParams { choice: AttackChoice::Fgsm, steps: Some(50), ..Default::default() }.resolve(0.1, 10);
        assert_eq!(fgsm, AttackSpec::fgsm(0.1));
        let ll = AttackParams { choice: AttackChoice::LeastLikely, target: Some(3), ..Default::default() }.resolve(0.1, 10);
        assert_eq!(ll.target, None, "least-likely picks its own target");
        let l2 = AttackParams { choice: AttackChoice::PgdL2, epsilon: Some(2.0), seed: Some(1), ..Default::default() }.resolve(0.1, 10);
        assert_eq!((l2.norm, l2.random_start), (Norm::L2, Some(1)));
        let mi = AttackParams { choice: AttackChoice::MiFgsm, target: Some(4), ..Default::default() }.resolve(0.2, 10);
        assert!((mi.step_size - 0.02).abs() < 1e-7);
        assert_eq!(describe(&mi, |c| format!("#{c}")), "10 steps of MI-FGSM (with momentum) with ε = 0.2, aimed at “#4”");
        for choice in AttackChoice::ALL {
            assert_eq!(AttackChoice::of(&AttackParams { choice, ..Default::default() }.resolve(0.1, 5)), choice);
        }
    }
}
