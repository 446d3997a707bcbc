//! The paper's four claims, each decided from the measurements of every replicate: an effect
//! with its 95% bootstrap interval (replicates, then neurons, resampled), a margin stated
//! before the numbers, and the verdict rule of [`super::stats`]. A claim made of several
//! effects holds when all hold, did not hold when any did not, and is undecided otherwise.

use advlens_shared::analysis::metrics::{class_similarity, consistency_chance};

use crate::data::DatasetKind;

use super::results::ModelResult;
use super::stats::{bootstrap_difference, Interval, Verdict};

/// Bootstrap resamples per interval.
const RESAMPLES: usize = 2000;
/// Coverage of the intervals.
const LEVEL: f64 = 0.95;
/// Seed of the resampling (the report is reproducible).
const BOOTSTRAP_SEED: u64 = 16;
/// The share of successful adversarial images with r > 1 that claim 2 needs: more than half.
const R_SHARE: f64 = 0.5;
/// The tracing AUC that claim 4 needs.
const AUC: f64 = 0.6;
/// How the success-matched controls are named in the report.
const SUCCESSFUL: &str = "successful attacks only (over models)";

/// One measured effect of a claim, oriented so that the claim predicts it above `margin`.
#[derive(Clone, Debug)]
pub struct Effect {
    /// What is measured, for people: "consis real − consis adversarial (standard)".
    pub what: String,
    pub margin: f64,
    pub interval: Option<Interval>,
    pub verdict: Verdict,
}

/// A claim's effects and its verdict.
#[derive(Clone, Debug)]
pub struct Claim {
    pub title: &'static str,
    pub effects: Vec<Effect>,
    /// Effects shown beside the claim without deciding it (controls).
    pub controls: Vec<Effect>,
    pub verdict: Verdict,
}

/// Per replicate, the values `f` gives for the models of `world` trained in `mode` (pooled
/// over architectures): a neuron's value, an image's, or a model's.
fn groups(results: &[ModelResult], world: &str, mode: &str, f: &dyn Fn(&ModelResult) -> Vec<f64>) -> Vec<Vec<f64>> {
    let mut seeds: Vec<u64> = results.iter().filter(|m| m.world == world).map(|m| m.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
        .iter()
        .map(|&s| results.iter().filter(|m| m.world == world && m.mode == mode && m.seed == s).flat_map(f).filter(|v| v.is_finite()).collect())
        .collect()
}

/// Per-neuron values of the neurons that fire (silent ones say nothing, as in the means).
fn neurons(f: fn(&advlens_shared::analysis::atlas::NeuronStats) -> Option<f64>) -> impl Fn(&ModelResult) -> Vec<f64> {
    move |m| m.analysis.neurons.iter().filter(|n| !n.silent).filter_map(f).collect()
}

fn effect(what: String, before: &[Vec<f64>], after: &[Vec<f64>], margin: f64) -> Effect {
    let interval = bootstrap_difference(before, after, RESAMPLES, LEVEL, BOOTSTRAP_SEED);
    Effect { what, margin, verdict: Verdict::decide(interval, margin), interval }
}

/// `one` when any effect came out `one`, else `every` when all came out `every`, else undecided.
fn combine(effects: &[Effect], one: Verdict, every: Verdict) -> Verdict {
    if effects.iter().any(|e| e.verdict == one) {
        one
    } else if effects.iter().all(|e| e.verdict == every) {
        every
    } else {
        Verdict::Undecided { why: "an effect is undecided".into() }
    }
}

/// Held when every effect held, did not hold when one did not, undecided otherwise.
fn all_of(effects: &[Effect]) -> Verdict {
    combine(effects, Verdict::DidNotHold, Verdict::Held)
}

/// Held when one effect held, did not hold when every one did not, undecided otherwise.
fn any_of(effects: &[Effect]) -> Verdict {
    combine(effects, Verdict::Held, Verdict::DidNotHold)
}

/// The four claims on `world` (the dataset; the concept world has its own section).
pub fn decide(results: &[ModelResult], world: &str) -> Vec<Claim> {
    let g = |mode: &str, f: &dyn Fn(&ModelResult) -> Vec<f64>| groups(results, world, mode, f);
    let consis_real = neurons(|n| Some(n.consis_real));
    let consis_adv = neurons(|n| Some(n.consis_adv_source));
    let cs1 = neurons(|n| Some(n.cs1));
    let cs2 = neurons(|n| n.cs2);
    let r_share = |m: &ModelResult| m.analysis.r.iter().map(|&r| if r > 1.0 { 1.0 } else { 0.0 }).collect();
    let auc = |m: &ModelResult| m.analysis.trace_auc.into_iter().collect();
    let auc_exact = |m: &ModelResult| m.analysis.trace_auc_ablation.into_iter().collect();
    let constant = |v: f64| vec![vec![v]];

    let one = vec![
        effect("consis of top real − top adversarial images (by source class), standard".into(), &g("standard", &consis_adv), &g("standard", &consis_real), 0.0),
        effect("CS2 − CS1, standard".into(), &g("standard", &cs1), &g("standard", &cs2), 0.0),
    ];
    let two = vec![effect(format!("share of successful adversarial images with r > 1, minus {R_SHARE}, standard"), &constant(R_SHARE), &g("standard", &r_share), 0.0)];
    let three = vec![
        effect("CS1 consistent − CS1 standard".into(), &g("standard", &cs1), &g("consistent", &cs1), 0.0),
        effect("CS2 standard − CS2 consistent".into(), &g("consistent", &cs2), &g("standard", &cs2), 0.0),
        effect("share r > 1, standard − consistent".into(), &g("consistent", &r_share), &g("standard", &r_share), 0.0),
    ];
    let mut three_controls = vec![
        effect("CS1 pgd − CS1 standard (adversarial training without the consistency term)".into(), &g("standard", &cs1), &g("pgd", &cs1), 0.0),
        effect("CS1 consistent − CS1 pgd (what the consistency term adds)".into(), &g("pgd", &cs1), &g("consistent", &cs1), 0.0),
    ];
    // `reproduce --controls`: the same loss with other weights of its feature-distance term.
    let mut controls: Vec<&str> = results.iter().filter(|m| m.world == world).filter_map(|m| m.mode.strip_prefix("consistent-lambda")).collect();
    controls.sort_by(|a, b| a.parse::<f64>().unwrap_or(f64::NAN).total_cmp(&b.parse().unwrap_or(f64::NAN)));
    controls.dedup();
    for lambda in controls {
        let mode = format!("consistent-lambda{lambda}");
        three_controls.push(effect(format!("CS1 consistent (λ 1) − CS1 consistent with λ {lambda}"), &g(&mode, &cs1), &g("consistent", &cs1), 0.0));
    }
    if results.iter().any(|m| m.world == world && m.mode == "consistent-sum") {
        three_controls.push(effect("CS1 consistent (mean distance) − CS1 consistent with the paper's squared norm (summed over the features)".into(), &g("consistent-sum", &cs1), &g("consistent", &cs1), 0.0));
    }
    if results.iter().any(|m| m.world == world && m.mode == "consistent-targeted") {
        three_controls.push(effect("CS1 consistent (untargeted x*) − CS1 consistent with targeted x* (least likely class)".into(), &g("consistent-targeted", &cs1), &g("consistent", &cs1), 0.0));
    }
    // Success-matched controls: consis and CS with the adversarial top images taken among the
    // images whose attack succeeded on that model only, so that failed attacks (which the model
    // still sees as their source class) cannot raise CS1 by themselves. These are per-model
    // means, so the interval resamples replicates, then models.
    let ok_cs1 = |m: &ModelResult| m.analysis.successful_only.as_ref().map(|o| o.mean_cs1).into_iter().collect();
    let ok_cs2 = |m: &ModelResult| m.analysis.successful_only.as_ref().and_then(|o| o.mean_cs2).into_iter().collect();
    let one_controls = vec![effect(format!("CS2 − CS1, standard, {SUCCESSFUL}"), &g("standard", &ok_cs1), &g("standard", &ok_cs2), 0.0)];
    three_controls.extend([
        effect(format!("CS1 consistent − CS1 standard, {SUCCESSFUL}"), &g("standard", &ok_cs1), &g("consistent", &ok_cs1), 0.0),
        effect(format!("CS2 standard − CS2 consistent, {SUCCESSFUL}"), &g("consistent", &ok_cs2), &g("standard", &ok_cs2), 0.0),
        effect(format!("CS1 consistent − CS1 pgd, {SUCCESSFUL}"), &g("pgd", &ok_cs1), &g("consistent", &ok_cs1), 0.0),
    ]);
    let four = vec![
        effect(format!("trace AUC − {AUC}, gradient × activation, standard (over models)"), &constant(AUC), &g("standard", &auc), 0.0),
        effect(format!("trace AUC − {AUC}, gradient × activation, consistent (over models)"), &constant(AUC), &g("consistent", &auc), 0.0),
        effect(format!("trace AUC − {AUC}, prediction difference, standard (over models)"), &constant(AUC), &g("standard", &auc_exact), 0.0),
        effect(format!("trace AUC − {AUC}, prediction difference, consistent (over models)"), &constant(AUC), &g("consistent", &auc_exact), 0.0),
    ];
    vec![
        Claim { title: "Neurons respond to discriminative patches, not concepts", verdict: all_of(&one), effects: one, controls: one_controls },
        Claim { title: "Adversarial representations are far from those of real images of the true class", verdict: all_of(&two), effects: two, controls: Vec::new() },
        Claim { title: "The consistent loss makes neurons consistent", verdict: all_of(&three), effects: three, controls: three_controls },
        Claim { title: "Tracing to influential neurons flags wrong decisions", verdict: any_of(&four), effects: four, controls: Vec::new() },
    ]
}

/// The rules, printed before any number.
pub fn rules() -> String {
    format!(
        "Each claim is an effect the paper predicts to be positive. Its 95% interval comes from a percentile bootstrap ({RESAMPLES} resamples, seed {BOOTSTRAP_SEED}) that \
         resamples replicates (training seeds) and, within each, neurons (images for r, models for the AUC); silent neurons are left out. \
         An effect **held** when its interval lies above its margin (0 unless stated), **did not hold** when it lies below, and is **undecided** when it contains the margin. \
         Claims 1 and 3 need all their effects, claim 4 any of its four (two kinds of model × two ways to rank neurons: gradient × activation and the prediction difference). Margins: claim 1: consis real − adversarial > 0 and CS2 − CS1 > 0; \
         claim 2: share of r > 1 above {R_SHARE}; claim 3: CS1 up, CS2 down and the r > 1 share down against standard training (pgd shown as a control); claim 4: AUC above {AUC}. \
         Controls are shown beside claims 1 and 3 without deciding them: pgd training, the λ sweep and targeted x* when run, and the CS effects recomputed with the adversarial top images \
         taken among successful attacks only (per-model means, resampling replicates then models), since a failed attack still looks like its source class.\n"
    )
}

/// consis's chance level on `dataset` with `top_k` images: a neuron blind to class draws its
/// top images' classes uniformly, 1/C + (1 − 1/C)/K with unrelated classes; with the dataset's
/// class hierarchy (CIFAR-10's WordNet) related classes count in part, which raises it.
pub fn consis_chance(dataset: &str, top_k: usize) -> f64 {
    let kind = DatasetKind::parse(dataset).unwrap_or(DatasetKind::Folder);
    consistency_chance(&class_similarity(&kind.classes(), &kind.hierarchy()), top_k)
}

/// The claims as report lines: numbers, intervals, margins and verdicts.
pub fn section(claims: &[Claim]) -> String {
    let mut r = String::new();
    let line = |e: &Effect| match e.interval {
        Some(i) => format!("{}: {:+.3} [{:+.3}, {:+.3}] vs margin {} → {}", e.what, i.estimate, i.lo, i.hi, e.margin, e.verdict.word()),
        None => format!("{}: no measurements → undecided", e.what),
    };
    for (k, c) in claims.iter().enumerate() {
        r += &format!("{}. *{}* — **{}**\n", k + 1, c.title, c.verdict.word());
        for e in &c.effects {
            r += &format!("   - {}\n", line(e));
        }
        for e in &c.controls {
            r += &format!("   - control, not deciding: {}\n", line(e));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::AnalysisReport;
    use advlens_shared::analysis::atlas::NeuronStats;

    fn model(mode: &str, seed: u64, cs1: f64, cs2: f64) -> ModelResult {
        let neuron = |k: usize| NeuronStats {
            channel: k,
            consis_real: 0.5 + 0.01 * k as f64,
            consis_adv_source: 0.2 + 0.01 * k as f64,
            consis_adv_target: None,
            cs1: cs1 + 0.01 * (k % 5) as f64,
            cs2: Some(cs2 + 0.01 * (k % 7) as f64),
            real_class: 0,
            concept: None,
            concept_adv: None,
            silent: false,
        };
        let analysis: AnalysisReport = serde_json::from_value(serde_json::json!({
            "model": "m", "layer": "relu2", "top_k": 10, "real_images": 100, "adversarial_images": 100, "successful": 50,
            "neurons": (0..20).map(neuron).collect::<Vec<_>>(),
            "mean_consis_real": 0.6, "mean_consis_adv_source": 0.3, "mean_consis_adv_target": null, "mean_cs1": cs1, "mean_cs2": cs2,
            "r": (0..40).map(|i| if i % 4 == 0 { 0.5 } else { 2.0 }).collect::<Vec<f64>>(), "fraction_r_above_1": 0.75,
            "trace_auc": 0.55, "trace_auc_ablation": 0.58, "trace_top": 3, "detectors_real": {}, "detectors_adv": {}
        }))
        .unwrap();
        ModelResult { world: "mnist".into(), arch: "a".into(), mode: mode.into(), seed, clean_accuracy: 0.9, robust_accuracy: Default::default(), attacked: true, analysis }
    }

    #[test]
    fn clear_effects_hold_and_a_claim_inside_the_noise_is_undecided() {
        let mut results = Vec::new();
        for seed in 0..3 {
            results.push(model("standard", seed, 0.4, 0.7));
            results.push(model("pgd", seed, 0.45, 0.7));
            // Consistent: CS1 far up, CS2 the same as standard (no effect either way).
            results.push(model("consistent", seed, 0.8, 0.7));
        }
        let claims = decide(&results, "mnist");
        assert_eq!(claims[0].verdict, Verdict::Held, "consis drops 0.3 and CS2 − CS1 = 0.3 in every neuron: {:?}", claims[0]);
        assert_eq!(claims[1].verdict, Verdict::Held, "75% of r above 1: {:?}", claims[1]);
        assert_eq!(claims[2].effects[0].verdict, Verdict::Held);
        assert!(matches!(claims[2].effects[1].verdict, Verdict::Undecided { .. }), "equal CS2: {:?}", claims[2].effects[1]);
        assert!(matches!(claims[2].verdict, Verdict::Undecided { .. }));
        assert_eq!(claims[3].verdict, Verdict::DidNotHold, "AUC 0.55 everywhere, below 0.6");
        let text = section(&claims);
        assert!(text.contains("3. *The consistent loss makes neurons consistent* — **undecided**"), "{text}");
        assert!(text.contains("control, not deciding: CS1 pgd − CS1 standard"), "{text}");
        assert!(rules().contains("undecided"));
        assert!((consis_chance("mnist", 10) - 0.19).abs() < 1e-12, "1/10 + 0.9/10");
        assert!(consis_chance("cifar10", 10) > 0.19 + 0.05, "related classes count in part: {}", consis_chance("cifar10", 10));
    }

    #[test]
    fn lambda_controls_appear_beside_claim_3() {
        let mut results = vec![model("standard", 0, 0.4, 0.7), model("consistent", 0, 0.8, 0.7)];
        for (lambda, cs1) in [("10", 0.9), ("0", 0.5)] {
            results.push(ModelResult { mode: format!("consistent-lambda{lambda}"), ..model("standard", 0, cs1, 0.7) });
        }
        let claims = decide(&results, "mnist");
        let names: Vec<&str> = claims[2].controls.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(names[2..4], ["CS1 consistent (λ 1) − CS1 consistent with λ 0", "CS1 consistent (λ 1) − CS1 consistent with λ 10"], "sorted by lambda");
        assert_eq!(claims[2].controls[2].verdict, Verdict::Held, "λ 1 above λ 0 by 0.3 in every neuron");
        assert_eq!(claims[2].controls[3].verdict, Verdict::DidNotHold, "λ 10 above λ 1");
    }

    #[test]
    fn success_matched_controls_read_the_successful_images_only() {
        // By definition (all adversarial images) consistent training raises CS1 by 0.4; among
        // successful attacks only, it raises it by nothing. The control must say so.
        let with_successful = |mode: &str, seed: u64, cs1: f64, ok_cs1: f64| {
            let mut m = model(mode, seed, cs1, 0.7);
            m.analysis.successful_only = Some(serde_json::from_value(serde_json::json!({
                "images": 50, "neurons": 20, "mean_consis_adv_source": 0.3, "mean_cs1": ok_cs1 + 0.01 * seed as f64, "mean_cs2": 0.6
            })).unwrap());
            m
        };
        let mut results = Vec::new();
        for seed in 0..3 {
            results.push(with_successful("standard", seed, 0.4, 0.5));
            results.push(with_successful("consistent", seed, 0.8, 0.5));
        }
        let claims = decide(&results, "mnist");
        assert_eq!(claims[2].effects[0].verdict, Verdict::Held, "by definition");
        let control = claims[2].controls.iter().find(|e| e.what == format!("CS1 consistent − CS1 standard, {SUCCESSFUL}")).expect("the control");
        let i = control.interval.expect("measured");
        assert!(i.estimate.abs() < 1e-12 && matches!(control.verdict, Verdict::Undecided { .. }), "{control:?}");
        let cs2_minus_cs1 = claims[0].controls[0].interval.expect("measured").estimate;
        assert!((cs2_minus_cs1 - 0.09).abs() < 1e-12, "CS2 0.6 − mean CS1 0.51: {cs2_minus_cs1}");
        // Models without enough successful attacks leave the control unmeasured, not failed.
        let claims = decide(&[model("standard", 0, 0.4, 0.7), model("consistent", 0, 0.8, 0.7)], "mnist");
        let control = claims[2].controls.iter().find(|e| e.what.contains(SUCCESSFUL)).unwrap();
        assert!(control.interval.is_none() && matches!(control.verdict, Verdict::Undecided { .. }));
    }

    #[test]
    fn missing_measurements_are_undecided_not_failures() {
        let claims = decide(&[model("standard", 0, 0.4, 0.7)], "mnist");
        assert!(matches!(claims[2].verdict, Verdict::Undecided { .. }), "no consistent models: {:?}", claims[2]);
        assert!(section(&claims).contains("no measurements → undecided"));
    }
}
