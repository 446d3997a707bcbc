//! Mini-batches for training, prepared on a background thread.
//!
//! Order and augmentation depend only on (seed, epoch, step), never on a global random state, so
//! a resumed run sees exactly the batches an uninterrupted one would.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;

use super::Dataset;

pub use advlens_shared::rng::SplitMix;

/// Splits `0..n` into training and validation indices: a seeded shuffle, the last
/// `round(n * fraction)` held out. Both lists are sorted so the split is a set, not an order.
pub fn train_val_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut all: Vec<usize> = (0..n).collect();
    SplitMix::derive(seed, 0x5B1_7, 0).shuffle(&mut all);
    let held = ((n as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
    let mut val = all.split_off(n - held.min(n));
    all.sort_unstable();
    val.sort_unstable();
    (all, val)
}

/// Training-time augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    None,
    /// Random crop from the image zero-padded by `pad` on each side, and a random horizontal
    /// flip (the CIFAR-10 standard).
    CropFlip { pad: usize },
}

/// One batch: images `[len, C, H, W]` as f32 in [0, 1], and labels.
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    pub len: usize,
}

/// Batches of one epoch.
#[derive(Clone, Debug)]
pub struct EpochPlan {
    /// The images to train on (indices into the dataset).
    pub indices: Arc<Vec<usize>>,
    pub batch_size: usize,
    pub seed: u64,
    pub augment: Augment,
}

impl EpochPlan {
    pub fn steps(&self) -> usize {
        self.indices.len().div_ceil(self.batch_size)
    }

    /// The order of the training images in `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order = self.indices.to_vec();
        SplitMix::derive(self.seed, 1, epoch as u64).shuffle(&mut order);
        order
    }

    /// Batch `step` of `epoch`.
    pub fn batch(&self, data: &Dataset, order: &[usize], epoch: usize, step: usize) -> Batch {
        let start = step * self.batch_size;
        let chosen = &order[start..(start + self.batch_size).min(order.len())];
        let [c, h, w] = data.shape;
        let mut images = Vec::with_capacity(chosen.len() * c * h * w);
        let mut rng = SplitMix::derive(self.seed, 2 + epoch as u64, step as u64);
        for &i in chosen {
            let pixels = data.image(i);
            match self.augment {
                Augment::None => images.extend(pixels.iter().map(|&p| f32::from(p) / 255.0)),
                Augment::CropFlip { pad } => {
                    let (dy, dx) = (rng.below(2 * pad + 1) as isize - pad as isize, rng.below(2 * pad + 1) as isize - pad as isize);
                    let flip = rng.below(2) == 1;
                    for ch in 0..c {
                        for y in 0..h {
                            for x in 0..w {
                                let sy = y as isize + dy;
                                let sx = if flip { (w - 1 - x) as isize } else { x as isize } + dx;
                                let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                                let v = if inside { pixels[(ch * h + sy as usize) * w + sx as usize] } else { 0 };
                                images.push(f32::from(v) / 255.0);
                            }
                        }
                    }
                }
            }
        }
        let labels = chosen.iter().map(|&i| i64::from(data.labels[i])).collect();
        Batch { images, labels, len: chosen.len() }
    }

    /// Prepares the batches of `epoch` from `first_step` on, on a background thread that stays
    /// a few batches ahead. Dropping the receiver stops the thread.
    pub fn spawn(&self, data: Arc<Dataset>, epoch: usize, first_step: usize) -> Receiver<Batch> {
        let (tx, rx) = sync_channel(4);
        let plan = self.clone();
        thread::spawn(move || {
            let order = plan.order(epoch);
            for step in first_step..plan.steps() {
                if tx.send(plan.batch(&data, &order, epoch, step)).is_err() {
                    return;
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetKind, Split};

    fn toy(n: usize) -> Dataset {
        let images = (0..n * 3 * 4 * 4).map(|i| (i % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as crate::data::Label).collect();
        Dataset { kind: DatasetKind::Cifar10, split: Split::Train, shape: [3, 4, 4], images, labels, classes: DatasetKind::Cifar10.classes() }
    }

    #[test]
    fn split_is_a_partition_and_depends_on_the_seed() {
        let (train, val) = train_val_split(100, 0.2, 7);
        assert_eq!((train.len(), val.len()), (80, 20));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_val_split(100, 0.2, 7), (train.clone(), val.clone()));
        assert_ne!(train_val_split(100, 0.2, 8).1, val);
    }

    #[test]
    fn background_batches_equal_the_direct_ones_and_cover_the_epoch_once() {
        let data = Arc::new(toy(37));
        let plan = EpochPlan { indices: Arc::new((0..37).collect()), batch_size: 8, seed: 3, augment: Augment::CropFlip { pad: 1 } };
        let order = plan.order(2);
        let batches: Vec<Batch> = plan.spawn(data.clone(), 2, 0).into_iter().collect();
        assert_eq!(batches.len(), 5);
        let mut labels: Vec<i64> = Vec::new();
        for (step, b) in batches.iter().enumerate() {
            let direct = plan.batch(&data, &order, 2, step);
            assert_eq!(b.images, direct.images);
            labels.extend(&b.labels);
        }
        let mut expected: Vec<i64> = order.iter().map(|&i| i64::from(data.labels[i])).collect();
        assert_eq!(labels, expected);
        expected.sort_unstable();
        let mut all: Vec<i64> = data.labels.iter().map(|&l| i64::from(l)).collect();
        all.sort_unstable();
        assert_eq!(expected, all, "every image exactly once");
        // Resuming at step 3 yields the same batches 3 and 4.
        let resumed: Vec<Batch> = plan.spawn(data, 2, 3).into_iter().collect();
        assert_eq!(resumed.len(), 2);
        assert_eq!(resumed[0].images, batches[3].images);
        assert_ne!(plan.order(3), order, "epochs are shuffled differently");
    }

    #[test]
    fn crop_flip_moves_pixels_and_pads_with_zeros() {
        let data = toy(1);
        let plan = EpochPlan { indices: Arc::new(vec![0]), batch_size: 1, seed: 0, augment: Augment::CropFlip { pad: 2 } };
        let mut changed = 0;
        for step in 0..20 {
            let b = plan.batch(&data, &[0; 20], 0, step);
            assert_eq!(b.images.len(), 48);
            let plain: Vec<f32> = data.image(0).iter().map(|&p| f32::from(p) / 255.0).collect();
            changed += usize::from(b.images != plain);
            // Every output pixel is either padding or some input pixel.
            assert!(b.images.iter().all(|v| *v == 0.0 || plain.contains(v)));
        }
        assert!(changed >= 15, "augmentation changed only {changed} of 20 draws");
    }
}
