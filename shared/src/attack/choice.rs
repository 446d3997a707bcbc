//! The attacks by name — `pgd`, `pgd-l2`, `fgsm`, `least-likely`, `mi-fgsm`, `ensemble` — and the one set of
//! rules that turns a name, a budget and a number of steps into an [`AttackSpec`]. The explorer's
//! URLs and `advlens perturb` both go through here, so a page and a command given the same
//! name, numbers and seed run the same attack.

use super::{AttackKind, AttackSpec, Norm, ENSEMBLE_LEARNING_RATE};

/// Steps of an attack when none are given.
pub const DEFAULT_STEPS: usize = 10;
/// Budget of an attack on a model that states none (no training or evaluation epsilon).
pub const DEFAULT_EPSILON: f32 = 0.2;

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
    /// The paper's ensemble-optimisation attack (Liu et al. 2017): Adam on several models at
    /// once, aimed at a class; what it makes is then shown to models left out of the ensemble.
    Ensemble,
}

impl AttackChoice {
    pub const ALL: [AttackChoice; 6] =
        [AttackChoice::Pgd, AttackChoice::PgdL2, AttackChoice::Fgsm, AttackChoice::LeastLikely, AttackChoice::MiFgsm, AttackChoice::Ensemble];

    /// Its name in URLs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            AttackChoice::Pgd => "pgd",
            AttackChoice::PgdL2 => "pgd-l2",
            AttackChoice::Fgsm => "fgsm",
            AttackChoice::LeastLikely => "least-likely",
            AttackChoice::MiFgsm => "mi-fgsm",
            AttackChoice::Ensemble => "ensemble",
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
            AttackChoice::Ensemble => "ensemble (the paper's: several models at once, aimed at a class)",
        }
    }

    pub fn parse(s: &str) -> Option<AttackChoice> {
        AttackChoice::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The names, for messages: "pgd, pgd-l2, fgsm, least-likely, mi-fgsm, ensemble".
    pub fn names() -> String {
        AttackChoice::ALL.map(AttackChoice::as_str).join(", ")
    }

    pub fn norm(self) -> Norm {
        if self == AttackChoice::PgdL2 {
            Norm::L2
        } else {
            Norm::Linf
        }
    }

    /// The usual step size for `steps` steps within `epsilon`: 2.5 epsilon / steps for PGD and
    /// least-likely (Madry et al.'s rule, enough to cross the ball and come back), epsilon / steps
    /// for MI-FGSM (Dong et al.), epsilon for FGSM; the ensemble attack's is Adam's learning
    /// rate, [`ENSEMBLE_LEARNING_RATE`] whatever the budget.
    pub fn step_size(self, epsilon: f32, steps: usize) -> f32 {
        match self {
            AttackChoice::Fgsm => epsilon,
            AttackChoice::Ensemble => ENSEMBLE_LEARNING_RATE,
            AttackChoice::MiFgsm => epsilon / steps.max(1) as f32,
            _ => 2.5 * epsilon / steps.max(1) as f32,
        }
    }

    /// Every number decided: FGSM takes one step; a target only for the attacks that take one
    /// (least-likely picks its own); `seed` starts at a random point of the ball (not for the
    /// ensemble attack, which always starts at the image; its distance penalty is 0, as in
    /// `advlens attack`).
    pub fn spec(self, epsilon: f32, steps: usize, target: Option<usize>, seed: Option<u64>) -> AttackSpec {
        let steps = if self == AttackChoice::Fgsm { 1 } else { steps };
        let kind = match self {
            AttackChoice::Pgd | AttackChoice::PgdL2 => AttackKind::Pgd,
            AttackChoice::Fgsm => AttackKind::Fgsm,
            AttackChoice::LeastLikely => AttackKind::LeastLikely,
            AttackChoice::MiFgsm => AttackKind::MiFgsm { decay: 1.0 },
            AttackChoice::Ensemble => AttackKind::Ensemble { lambda: 0.0 },
        };
        let target = if self == AttackChoice::LeastLikely { None } else { target };
        let random_start = if self == AttackChoice::Ensemble { None } else { seed };
        AttackSpec { kind, norm: self.norm(), epsilon, step_size: self.step_size(epsilon, steps), steps, target, random_start }
    }

    /// The name of an attack of this library.
    pub fn of(spec: &AttackSpec) -> AttackChoice {
        match (spec.kind, spec.norm) {
            (AttackKind::Pgd, Norm::L2) => AttackChoice::PgdL2,
            (AttackKind::Pgd, Norm::Linf) => AttackChoice::Pgd,
            (AttackKind::Fgsm, _) => AttackChoice::Fgsm,
            (AttackKind::LeastLikely, _) => AttackChoice::LeastLikely,
            (AttackKind::MiFgsm { .. }, _) => AttackChoice::MiFgsm,
            (AttackKind::Ensemble { .. }, _) => AttackChoice::Ensemble,
        }
    }
}

impl AttackSpec {
    /// A sentence for people: "10 steps of PGD (L∞ …) with ε = 0.2, aimed at “3”".
    pub fn describe(&self, class_name: impl Fn(usize) -> String) -> String {
        let steps = if self.steps == 1 { "one step".to_string() } else { format!("{} steps", self.steps) };
        let mut s = format!("{steps} of {} with ε = {}", AttackChoice::of(self).title(), self.epsilon);
        if let Some(t) = self.target {
            s += &format!(", aimed at “{}”", class_name(t));
        }
        if let Some(seed) = self.random_start {
            s += &format!(", random start (seed {seed})");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_step_rules_hold() {
        for choice in AttackChoice::ALL {
            assert_eq!(AttackChoice::parse(choice.as_str()), Some(choice));
            assert_eq!(AttackChoice::of(&choice.spec(0.1, 5, None, None)), choice);
        }
        assert_eq!(AttackChoice::parse("cw"), None);
        assert_eq!(AttackChoice::Pgd.spec(0.2, 10, None, None), AttackSpec::pgd(0.2, 10), "the default is the usual PGD");
        assert_eq!(AttackChoice::Fgsm.spec(0.1, 50, None, None), AttackSpec::fgsm(0.1));
        assert_eq!(AttackChoice::LeastLikely.spec(0.1, 10, Some(3), None).target, None, "least-likely picks its own target");
        let l2 = AttackChoice::PgdL2.spec(2.0, 10, None, Some(1));
        assert_eq!((l2.norm, l2.random_start), (Norm::L2, Some(1)));
        let mi = AttackChoice::MiFgsm.spec(0.2, 10, Some(4), None);
        assert!((mi.step_size - 0.02).abs() < 1e-7);
        assert_eq!(mi.describe(|c| format!("#{c}")), "10 steps of MI-FGSM (with momentum) with ε = 0.2, aimed at “#4”");
        let ens = AttackChoice::Ensemble.spec(0.1, 30, None, Some(5));
        assert_eq!((ens.kind, ens.step_size, ens.random_start), (AttackKind::Ensemble { lambda: 0.0 }, ENSEMBLE_LEARNING_RATE, None), "Adam's rate, no random start");
    }
}
