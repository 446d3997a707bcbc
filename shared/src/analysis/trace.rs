//! Tracing a prediction back to the neurons (channels of a layer) that caused it.

use serde::{Deserialize, Serialize};

use crate::engine::{Ablation, Engine, Objective};
use crate::tensor::softmax;
use crate::{Error, Result, Tensor};

/// One neuron's influence on class `c` for one image (serialisable: the explorer's worker sends it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Influence {
    pub channel: usize,
    /// Its response: the spatial maximum of the channel.
    pub activation: f32,
    /// Gradient x activation summed over the channel: the first-order change of the logit of
    /// `c` when the channel is zeroed, with the sign flipped.
    pub grad_x_act: f32,
    /// The exact effect on the logit: z_c(x) - z_c(x with the channel zeroed).
    pub logit_drop: f32,
    /// The exact effect on the probability: p(c | x) - p(c | x with the channel zeroed)
    /// (tiny for a saturated prediction, hence the logit above).
    pub prob_drop: f32,
}

/// The influence of every channel of `layer` on class `class` for `image` (`[1, C, H, W]`),
/// sorted by exact effect on the logit, largest first. One gradient, and per channel one forward
/// pass (of the network's tail after `layer` on the CPU engine).
pub async fn trace(engine: &Engine, image: &Tensor, class: usize, layer: &str) -> Result<Vec<Influence>> {
    if image.shape().first() != Some(&1) {
        return Err(Error::InputShape { expected: "one image [1, C, H, W]".into(), found: format!("{:?}", image.shape()) });
    }
    // On the CPU every node's output is kept from one forward (the layer, the logits, and what
    // each ablation reruns: only the network's tail after `layer`); the GPU engine runs whole
    // forwards (its plans are made per request).
    let cpu = match engine {
        Engine::Cpu(e) => Some((e, e.forward_all(image)?)),
        #[cfg(feature = "webgpu")]
        _ => None,
    };
    let (act, logits) = match &cpu {
        Some((e, all)) => {
            let act = all.get(layer).cloned().ok_or_else(|| Error::Graph(format!("no node `{layer}` in this model")))?;
            (act, all[&e.bundle().spec().output].clone())
        }
        None => (engine.activations(image, &[layer]).await?.remove(layer).expect("one per name"), engine.forward(image).await?),
    };
    if act.shape().len() != 4 {
        return Err(Error::Graph(format!("layer `{layer}` outputs {:?}, not feature maps [1, C, H, W]", act.shape())));
    }
    let (channels, plane) = (act.shape()[1], act.shape()[2] * act.shape()[3]);
    let grad = engine.gradient(image, &Objective::Logit { class }, &[layer]).await?;
    let g = &grad.activations[layer];
    let (base_logit, base) = (logits.row(0)[class], softmax(logits.row(0))[class]);
    let mut out = Vec::with_capacity(channels);
    for c in 0..channels {
        let a = &act.data()[c * plane..(c + 1) * plane];
        let gc = &g.data()[c * plane..(c + 1) * plane];
        let ablation = Ablation::default().zero(layer, c);
        let ablated = match &cpu {
            Some((e, all)) => e.forward_ablated_from(all, &ablation)?,
            None => engine.forward_ablated(image, &ablation).await?,
        };
        out.push(Influence {
            channel: c,
            activation: a.iter().cloned().fold(f32::MIN, f32::max),
            grad_x_act: a.iter().zip(gc).map(|(x, y)| x * y).sum(),
            logit_drop: base_logit - ablated.row(0)[class],
            prob_drop: base - softmax(ablated.row(0))[class],
        });
    }
    out.sort_by(|x, y| y.logit_drop.total_cmp(&x.logit_drop));
    Ok(out)
}

/// One neuron's influence on the same class before and after a change of the image (an attack).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub channel: usize,
    /// Its [`Influence::logit_drop`] on the first image and on the second.
    pub before: f32,
    pub after: f32,
}

impl Shift {
    /// `after - before`: positive when the neuron gained influence on the class.
    pub fn change(&self) -> f32 {
        self.after - self.before
    }
}

/// The two traces of one layer and class aligned by channel, the largest changes first (ties in
/// channel order). Channels missing from either trace are left out.
pub fn shifts(before: &[Influence], after: &[Influence]) -> Vec<Shift> {
    let mut out: Vec<Shift> = before
        .iter()
        .filter_map(|b| after.iter().find(|a| a.channel == b.channel).map(|a| Shift { channel: b.channel, before: b.logit_drop, after: a.logit_drop }))
        .collect();
    out.sort_by(|x, y| y.change().abs().total_cmp(&x.change().abs()).then(x.channel.cmp(&y.channel)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn influence(channel: usize, logit_drop: f32) -> Influence {
        Influence { channel, activation: 0.0, grad_x_act: 0.0, logit_drop, prob_drop: 0.0 }
    }

    #[test]
    fn shifts_align_by_channel_and_rank_by_the_size_of_the_change() {
        // Traces come sorted by influence, so the same channel sits at different places.
        let before = [influence(2, 3.0), influence(0, 1.0), influence(1, -0.5), influence(3, 0.0)];
        let after = [influence(1, 2.5), influence(0, 1.5), influence(3, 0.0), influence(2, 0.2)];
        let s = shifts(&before, &after);
        assert_eq!(s.iter().map(|s| s.channel).collect::<Vec<_>>(), [1, 2, 0, 3]);
        assert_eq!((s[0].before, s[0].after, s[0].change()), (-0.5, 2.5, 3.0), "channel 1 gained");
        assert!((s[1].change() + 2.8).abs() < 1e-6, "channel 2 lost");
        assert_eq!(s[3].change(), 0.0);
        assert!(shifts(&before, &after[..1]).iter().all(|s| s.channel == 1), "only channels in both");
    }
}
