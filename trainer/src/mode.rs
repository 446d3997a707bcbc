//! Training modes: the loss of one batch in each.
//!
//! - standard:   CE(f(x), y)
//! - pgd:        CE(f(x_pgd), y)                                   (Madry et al.)
//! - trades:     CE(f(x), y) + beta * KL(f(x) || f(x'))            (Zhang et al.)
//! - consistent: CE(f(x), y) + CE(f(x*), y) + lambda * mean((phi(x) - phi(x*))^2)   (Dong et al.;
//!   with `Distance::Sum`, the paper's squared norm: summed over each image's features)
//!
//! Adversarial images are generated from the current weights in inference mode and held constant.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::attack::{trades_perturb, Attack, BatchPart};
use crate::net::Net;
use crate::precision::Precision;

/// How a model is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Mode {
    Standard,
    Pgd { attack: Attack },
    Trades { beta: f64, attack: Attack },
    Consistent {
        lambda: f64,
        feature_layer: String,
        attack: Attack,
        /// How the feature-map difference is reduced (runs saved before it existed: the mean).
        #[serde(default)]
        distance: Distance,
    },
}

/// The consistent loss's feature distance between a real image and its adversarial version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// The mean squared difference over the batch and the features: the term's scale does not
    /// grow with the layer's size, so one lambda suits every architecture.
    #[default]
    Mean,
    /// The paper's ||phi(x) - phi(x*)||^2: summed over each image's features, averaged over the
    /// batch — the mean times the feature size (thousands for our layers).
    Sum,
}

impl Distance {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "mean" => Ok(Distance::Mean),
            "sum" => Ok(Distance::Sum),
            other => bail!("unknown --distance `{other}`: use mean (the default) or sum (the paper's squared norm)"),
        }
    }
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Standard => "standard",
            Mode::Pgd { .. } => "pgd",
            Mode::Trades { .. } => "trades",
            Mode::Consistent { .. } => "consistent",
        }
    }

    pub fn attack(&self) -> Option<&Attack> {
        match self {
            Mode::Standard => None,
            Mode::Pgd { attack } | Mode::Trades { attack, .. } | Mode::Consistent { attack, .. } => Some(attack),
        }
    }

    /// The same mode with its attack's epsilon and step size multiplied by `factor` (epsilon
    /// warm-up); the standard mode is unchanged.
    pub fn scaled_epsilon(&self, factor: f64) -> Mode {
        let mut mode = self.clone();
        if let Mode::Pgd { attack } | Mode::Trades { attack, .. } | Mode::Consistent { attack, .. } = &mut mode {
            attack.epsilon *= factor;
            attack.step_size *= factor;
        }
        mode
    }

    /// Checks the mode against the network (the feature layer must exist and be a feature map)
    /// and its attack against what the batched attacks run (a run's saved configuration is
    /// checked again when it resumes).
    pub fn check(&self, net: &Net) -> Result<()> {
        if let Some(attack) = self.attack() {
            crate::attack::check_batched(attack.kind)?;
        }
        if let Mode::Consistent { feature_layer, .. } = self {
            let spec = net.spec();
            let Some(node) = spec.nodes.iter().find(|n| &n.name == feature_layer) else {
                let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
                bail!("--feature-layer `{feature_layer}` is not a node of this architecture; nodes: {}", names.join(", "));
            };
            if node.name == spec.output {
                bail!("--feature-layer must be an inner layer, not the logits `{}`", spec.output);
            }
        }
        Ok(())
    }
}

/// The loss of one batch and what it saw.
pub struct StepLoss {
    pub loss: Tensor,
    /// Logits of the clean images, when the mode computed them (for training accuracy).
    pub clean_logits: Option<Tensor>,
    /// Logits of the adversarial images, when the mode computed them.
    pub adversarial_logits: Option<Tensor>,
}

/// The loss of batch `(x, y)` under `mode`, in training mode (batch norm updates its statistics).
pub fn step_loss(net: &Net, mode: &Mode, x: &Tensor, y: &Tensor) -> StepLoss {
    step_loss_part(net, mode, x, y, BatchPart::whole(x))
}

/// [`step_loss`] of the rows `part` of a larger batch (one rank's share in distributed
/// training): the loss is this part's mean, and attack starts are drawn as for the whole batch.
pub fn step_loss_part(net: &Net, mode: &Mode, x: &Tensor, y: &Tensor, part: BatchPart) -> StepLoss {
    match mode {
        Mode::Standard => {
            let logits = net.forward_t(x, true);
            StepLoss { loss: logits.cross_entropy_for_logits(y), clean_logits: Some(logits), adversarial_logits: None }
        }
        Mode::Pgd { attack } => {
            let x_adv = attack.perturb_part(net, x, y, part);
            let logits = net.forward_t(&x_adv, true);
            StepLoss { loss: logits.cross_entropy_for_logits(y), clean_logits: None, adversarial_logits: Some(logits) }
        }
        Mode::Trades { beta, attack } => {
            let x_adv = trades_perturb(net, x, attack.epsilon, attack.step_size, attack.steps, part);
            let b = x.size()[0];
            let logits = net.forward_t(&Tensor::cat(&[x, &x_adv], 0), true);
            let (clean, adv) = (logits.narrow(0, 0, b), logits.narrow(0, b, b));
            let loss = trades_loss(&clean, &adv, y, *beta);
            StepLoss { loss, clean_logits: Some(clean), adversarial_logits: Some(adv) }
        }
        Mode::Consistent { lambda, feature_layer, attack, distance } => {
            let x_adv = attack.perturb_part(net, x, y, part);
            let (loss, clean, adv) = consistent_loss(net, x, &x_adv, y, *lambda, *distance, feature_layer, true);
            StepLoss { loss, clean_logits: Some(clean), adversarial_logits: Some(adv) }
        }
    }
}

/// `CE(clean, y) + beta * KL(softmax(clean) || softmax(adv))`, the KL averaged over the batch.
pub fn trades_loss(clean: &Tensor, adv: &Tensor, y: &Tensor, beta: f64) -> Tensor {
    let b = clean.size()[0] as f64;
    let kl = adv.log_softmax(-1, Kind::Float).kl_div(&clean.softmax(-1, Kind::Float), Reduction::Sum, false) / b;
    clean.cross_entropy_for_logits(y) + kl * beta
}

/// The paper's consistent loss for images `x` and their fixed adversarial versions `x_adv`.
/// Both go through the network as one batch. Returns the loss and the clean and adversarial logits.
pub fn consistent_loss(
    net: &Net,
    x: &Tensor,
    x_adv: &Tensor,
    y: &Tensor,
    lambda: f64,
    distance: Distance,
    feature_layer: &str,
    train: bool,
) -> (Tensor, Tensor, Tensor) {
    let b = x.size()[0];
    let acts = net.forward_all_t(&Tensor::cat(&[x, &x_adv.detach()], 0), train);
    // In f32 whatever precision the products ran in.
    let logits = &Precision::for_loss(&acts[&net.spec().output]);
    let phi = &Precision::for_loss(&acts[feature_layer]);
    let (clean, adv) = (logits.narrow(0, 0, b), logits.narrow(0, b, b));
    let squared = (phi.narrow(0, 0, b) - phi.narrow(0, b, b)).square();
    let distance = match distance {
        Distance::Mean => squared.mean(Kind::Float),
        Distance::Sum => squared.sum(Kind::Float) / b as f64,
    };
    let loss = clean.cross_entropy_for_logits(y) + adv.cross_entropy_for_logits(y) + distance * lambda;
    (loss, clean, adv)
}
