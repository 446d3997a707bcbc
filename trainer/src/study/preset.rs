//! The presets of `advlens reproduce`: what each trains, attacks and analyses, and at which
//! scale; claim 3's control modes; the training epsilon per dataset.

use anyhow::{bail, Result};

/// What a preset trains and attacks.
pub struct Preset {
    pub archs: Vec<(&'static str, usize)>,
    pub modes: Vec<&'static str>,
    pub limit: Option<usize>,
    pub epochs: usize,
    pub attack_steps: usize,
    pub attack_images: usize,
    pub ensemble_steps: usize,
    pub concept_train: usize,
    pub concept_test: usize,
    pub concept_epochs: usize,
}

pub fn preset(name: &str) -> Result<Preset> {
    Ok(match name {
        "quick" => Preset {
            archs: vec![("small-cnn", 16), ("alexnet", 16), ("resnet", 8)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: Some(10_000),
            epochs: 2,
            attack_steps: 5,
            attack_images: 500,
            ensemble_steps: 50,
            concept_train: 6_000,
            concept_test: 500,
            concept_epochs: 4,
        },
        // For tests of the pipeline itself: minutes, not results.
        "smoke" => Preset {
            archs: vec![("small-cnn", 4), ("alexnet", 4), ("resnet", 4)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: Some(600),
            epochs: 1,
            attack_steps: 2,
            attack_images: 60,
            ensemble_steps: 10,
            concept_train: 300,
            concept_test: 60,
            concept_epochs: 1,
        },
        // Sized for the 2-core machine in the background (about 100 minutes idle, 2 jobs of one
        // thread each): the paper's VGG- and ResNet-like families on 20,000 CIFAR-10 images
        // (every test image for evaluation), 3-step attacks in training, the quick preset's
        // concept world. On CIFAR-10 the consistency metric uses WordNet's class hierarchy.
        "standard" => Preset {
            archs: vec![("alexnet", 16), ("vgg", 16), ("resnet", 16)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: Some(20_000),
            epochs: 4,
            attack_steps: 3,
            attack_images: 1_000,
            ensemble_steps: 50,
            concept_train: 6_000,
            concept_test: 500,
            concept_epochs: 4,
        },
        // Sized for one lent H200 and its 15 minutes (tests/bench/full-gpu.sh; the expected
        // time of each step is in docs/reproduction/README.md): every CIFAR-10 training image at
        // width 32, 8 epochs, 5-step PGD in training (6 forward-backward passes a batch, about
        // 18 ms on an H200 at batch 64, so ~2 minutes per adversarially trained model).
        "full" => Preset {
            archs: vec![("alexnet", 32), ("vgg", 32), ("resnet", 32)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: None,
            epochs: 8,
            attack_steps: 5,
            attack_images: 2_000,
            ensemble_steps: 100,
            concept_train: 12_000,
            concept_test: 1_000,
            concept_epochs: 8,
        },
        other => bail!("unknown preset `{other}`: use quick (minutes), standard (about 100 minutes on 2 cores; meant for cifar10 and fashion-mnist) or full (one GPU, about 10 minutes on an H200), or smoke to test the pipeline"),
    })
}

/// The preset, with claim 3's controls when asked for.
pub fn preset_with(name: &str, controls: bool) -> Result<Preset> {
    let mut p = preset(name)?;
    if controls {
        p.modes.extend(CONTROL_MODES);
    }
    Ok(p)
}

/// The controls of claim 3 (`--controls`): the consistent loss with the feature-distance term
/// off (lambda 0: adversarial cross-entropy alone), weaker and stronger (lambda 1 is the
/// `consistent` mode itself), with the paper's unnormalised squared norm (summed over the
/// features: the mean times the layer's size), and with targeted adversarial images (iterative
/// least-likely class) instead of untargeted PGD.
pub const CONTROL_MODES: [&str; 5] = ["consistent-lambda0", "consistent-lambda0.1", "consistent-lambda10", "consistent-sum", "consistent-targeted"];
