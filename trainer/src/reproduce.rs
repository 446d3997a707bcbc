//! `advlens reproduce`: the paper's pipeline end to end — train three architectures in
//! standard, pgd and consistent modes, ensemble-attack each mode's models (one architecture held
//! out for transfer), analyse every model, repeat on the concept world for concept IoU, and write
//! a report that says, claim by claim, whether the paper's findings held on our data.
//!
//! Each step runs this same binary's subcommands and is skipped when its output exists, so an
//! interrupted reproduction continues where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::analysis::AnalysisReport;
use crate::eval::EvalReport;

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
        "full" => Preset {
            archs: vec![("alexnet", 32), ("vgg", 32), ("resnet", 32)],
            modes: vec!["standard", "pgd", "consistent"],
            limit: None,
            epochs: 20,
            attack_steps: 20,
            attack_images: 5_000,
            ensemble_steps: 100,
            concept_train: 20_000,
            concept_test: 2_000,
            concept_epochs: 20,
        },
        other => bail!("unknown preset `{other}`: use quick or full (or smoke, to test the pipeline)"),
    })
}

/// This binary's path. Linux reports `<path> (deleted)` once the file was replaced (e.g. by a
/// rebuild during a long reproduction); the replacement at the same path is what to run then.
fn advlens_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the advlens binary")?;
    if exe.exists() {
        return Ok(exe);
    }
    let text = exe.to_string_lossy();
    let stripped = PathBuf::from(text.trim_end_matches(" (deleted)"));
    if stripped.exists() {
        Ok(stripped)
    } else {
        bail!("the advlens binary {} is gone: rebuild it and rerun reproduce (finished steps are kept)", exe.display())
    }
}

/// The epsilon adversarial training uses on `dataset` (the trainer's defaults; 8/255 for the
/// concept world).
fn training_epsilon(dataset: &str) -> f64 {
    match dataset {
        "mnist" => 0.3,
        "fashion-mnist" => 0.1,
        _ => 8.0 / 255.0,
    }
}

/// Runs the binary itself with `args`, unless `done` exists.
fn step(done: &Path, args: &[String]) -> Result<()> {
    if done.exists() {
        eprintln!("[skip] {} exists", done.display());
        return Ok(());
    }
    eprintln!("[run] advlens {}", args.join(" "));
    let exe = advlens_binary()?;
    let status = Command::new(exe).args(args).status().context("running advlens")?;
    if !status.success() {
        bail!("`advlens {}` failed ({status}); fix the cause and rerun reproduce: finished steps are kept", args.join(" "));
    }
    Ok(())
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// One trained model and what was measured on it.
#[derive(Clone, Debug, Serialize)]
pub struct ModelResult {
    pub world: String,
    pub arch: String,
    pub mode: String,
    pub clean_accuracy: f64,
    pub robust_accuracy: BTreeMap<String, f64>,
    pub attacked: bool,
    pub analysis: AnalysisReport,
}

/// Trains, attacks and analyses one world (a dataset, or the concept world); returns the results.
#[allow(clippy::too_many_arguments)]
fn world(
    p: &Preset,
    world: &str,
    dataset: &str,
    data: &Path,
    archs: &[(&'static str, usize)],
    epochs: usize,
    limit: Option<usize>,
    out: &Path,
    threads: usize,
) -> Result<Vec<ModelResult>> {
    let common = |v: &mut Vec<String>| v.extend([s("--threads"), s(threads), s("--quiet")]);
    let data_s = data.display().to_string();
    let mut results = Vec::new();
    for mode in &p.modes {
        let mut bundles = Vec::new();
        for (arch, width) in archs {
            let name = format!("{world}-{arch}-{mode}");
            let run = out.join("runs").join(&name);
            let bundle = out.join("models").join(&name);
            let mut args = vec![s("train"), s("--dataset"), s(dataset), s("--data"), data_s.clone(), s("--arch"), s(arch), s("--width"), s(width)];
            args.extend([s("--mode"), s(mode), s("--attack-steps"), s(p.attack_steps), s("--epochs"), s(epochs), s("--name"), name.clone()]);
            args.extend([s("--out"), run.display().to_string()]);
            // Few attack steps must still reach the edge of the ball: step = 2.5 eps / steps.
            let eps = training_epsilon(dataset);
            args.extend([s("--epsilon"), s(eps), s("--step-size"), s(2.5 * eps / p.attack_steps.max(1) as f64)]);
            if let Some(l) = limit {
                args.extend([s("--limit"), s(l)]);
            }
            common(&mut args);
            let epochs_done = std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
            if run.join("last.safetensors").exists() && epochs_done < epochs {
                // Interrupted earlier: continue it.
                let mut resume = vec![s("train"), s("--resume"), s("--data"), data_s.clone(), s("--out"), run.display().to_string()];
                common(&mut resume);
                step(&run.join("no-such-marker"), &resume)?;
            } else if epochs_done < epochs {
                step(&run.join("metrics.jsonl"), &args)?;
            }
            let mut args = vec![s("eval"), s("--run"), run.display().to_string(), s("--data"), data_s.clone(), s("--attacks"), s("fgsm,pgd20")];
            args.extend([s("--limit"), s(p.attack_images)]);
            if dataset == "folder" {
                args.extend([s("--epsilon"), s(8.0 / 255.0)]);
            }
            common(&mut args);
            step(&run.join("eval.json"), &args)?;
            let args = vec![s("export"), s("--quiet"), s("--run"), run.display().to_string(), s("--data"), data_s.clone(), s("--out"), bundle.display().to_string()];
            step(&bundle.join("model.json"), &args)?;
            bundles.push((arch.to_string(), bundle, run));
        }
        // The ensemble: every architecture but the last, which is held out for transfer.
        let adv = out.join("adversarial").join(format!("{world}-{mode}"));
        let attacked: Vec<String> = bundles[..bundles.len() - 1].iter().map(|b| b.1.display().to_string()).collect();
        let mut args = vec![s("attack"), s("--models"), attacked.join(","), s("--held-out"), bundles.last().expect("archs").1.display().to_string()];
        args.extend([s("--data"), data_s.clone(), s("--limit"), s(p.attack_images), s("--steps"), s(p.ensemble_steps), s("--out"), adv.display().to_string()]);
        if dataset == "folder" {
            args.extend([s("--epsilon"), s(8.0 / 255.0)]);
        }
        common(&mut args);
        step(&adv.join("meta.json"), &args)?;
        for (k, (arch, bundle, run)) in bundles.iter().enumerate() {
            let dir = out.join("analysis").join(format!("{world}-{arch}-{mode}"));
            let mut args = vec![s("analyze"), s("--model"), bundle.display().to_string(), s("--adv"), adv.display().to_string(), s("--data"), data_s.clone()];
            args.extend([s("--limit"), s(p.attack_images.max(1000)), s("--atlas"), s("--out"), dir.display().to_string(), s("--threads"), s(threads)]);
            step(&dir.join("analysis.json"), &args)?;
            let analysis: AnalysisReport = serde_json::from_slice(&std::fs::read(dir.join("analysis.json"))?)?;
            let eval: EvalReport = serde_json::from_slice(&std::fs::read(run.join("eval.json"))?)?;
            let clean = eval.rows.iter().find(|r| r.name == "clean").map_or(f64::NAN, |r| r.accuracy);
            let robust = eval.rows.iter().filter(|r| r.name != "clean").map(|r| (format!("{}@{:.4}", r.name, eval.epsilon), r.accuracy)).collect();
            results.push(ModelResult {
                world: world.into(),
                arch: arch.clone(),
                mode: mode.to_string(),
                clean_accuracy: clean,
                robust_accuracy: robust,
                attacked: k + 1 < bundles.len(),
                analysis,
            });
        }
    }
    Ok(results)
}

/// Runs the whole pipeline and writes `report.md`, `results.json` and the figures into `out`.
pub fn reproduce(preset_name: &str, dataset: &str, data: &Path, out: &Path, threads: usize) -> Result<PathBuf> {
    let p = preset(preset_name)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let start = std::time::Instant::now();
    let mut results = world(&p, dataset, dataset, data, &p.archs, p.epochs, p.limit, out, threads)?;
    // The concept world: generated here, so the reproduction needs no download.
    let concepts = out.join("data").join("concepts");
    let args = vec![
        s("data"), s("concepts"), s("--train"), s(p.concept_train), s("--test"), s(p.concept_test), s("--seed"), s(0), s("--out"), concepts.display().to_string(), s("--quiet"),
    ];
    step(&concepts.join("vocab.json"), &args)?;
    let concept_archs: Vec<(&'static str, usize)> = p.archs.iter().map(|&(a, w)| (a, w * 2)).collect();
    results.extend(world(&p, "concepts", "folder", &concepts, &concept_archs, p.concept_epochs, None, out, threads)?);
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")?;
    figures(&results, out)?;
    let report = report(&results, preset_name, dataset, minutes);
    let path = out.join("report.md");
    std::fs::write(&path, report)?;
    Ok(path)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The report: per-model table, then each claim with the numbers and a verdict by a stated rule.
pub fn report(results: &[ModelResult], preset: &str, dataset: &str, minutes: f64) -> String {
    let mut r = format!(
        "# Reproduction of Dong et al. on our data\n\nGenerated by `advlens reproduce --preset {preset} --dataset {dataset}` in {minutes:.0} minutes. \
         Numbers, not tuned: the analysis was run once, as specified in docs/analysis.md.\n\n"
    );
    r += "## Models\n\n| world | arch | mode | clean acc. | robust acc. | ensemble | analysed layer | adv. images (successful) |\n|---|---|---|---|---|---|---|---|\n";
    for m in results {
        let robust: Vec<String> = m.robust_accuracy.iter().map(|(k, v)| format!("{k}: {:.1}%", 100.0 * v)).collect();
        r += &format!(
            "| {} | {} | {} | {:.1}% | {} | {} | `{}` | {} ({}) |\n",
            m.world,
            m.arch,
            m.mode,
            100.0 * m.clean_accuracy,
            robust.join(", "),
            if m.attacked { "attacked" } else { "held out" },
            m.analysis.layer,
            m.analysis.adversarial_images,
            m.analysis.successful
        );
    }
    r += "\n## Measurements per model\n\n| world | arch | mode | consis real | consis adv (source) | consis adv (target) | CS1 | CS2 | r > 1 | trace AUC |\n|---|---|---|---|---|---|---|---|---|---|\n";
    let opt = |v: Option<f64>, pct: bool| v.map_or("-".into(), |x| if pct { format!("{:.1}%", 100.0 * x) } else { format!("{x:.3}") });
    for m in results {
        let a = &m.analysis;
        r += &format!(
            "| {} | {} | {} | {:.3} | {:.3} | {} | {:.3} | {} | {} | {} |\n",
            m.world, m.arch, m.mode, a.mean_consis_real, a.mean_consis_adv_source, opt(a.mean_consis_adv_target, false), a.mean_cs1, opt(a.mean_cs2, false),
            opt(a.fraction_r_above_1, true), opt(a.trace_auc, false)
        );
    }
    // Claims 1-4 on the real dataset; the concept world has its own section below.
    let by_mode = |mode: &str, f: &dyn Fn(&ModelResult) -> Option<f64>| mean(results.iter().filter(|m| m.mode == mode && m.world == dataset).filter_map(f));
    let verdict = |held: bool| if held { "**held**" } else { "**did not hold**" };
    r += &format!("\n## The paper's claims (on {dataset}; means over the three architectures)\n\n");
    // 1. Neurons of standard models respond to adversarial images of other classes.
    let (cr, ca) = (by_mode("standard", &|m| Some(m.analysis.mean_consis_real)), by_mode("standard", &|m| Some(m.analysis.mean_consis_adv_source)));
    let (cs1, cs2) = (by_mode("standard", &|m| Some(m.analysis.mean_cs1)), by_mode("standard", &|m| m.analysis.mean_cs2));
    r += &format!(
        "1. *Neurons respond to discriminative patches, not concepts* — standard models: mean consis of the top real images {cr:.3}, of the top adversarial images counted by the class a human sees {ca:.3}; CS1 {cs1:.3}, CS2 {cs2:.3}. \
         Rule: holds if consis drops on adversarial images (by source) and CS2 > CS1. {}\n",
        verdict(ca < cr && cs2 > cs1)
    );
    let rs = by_mode("standard", &|m| m.analysis.fraction_r_above_1);
    r += &format!(
        "2. *Adversarial representations are far from those of real images of the true class* — standard models: {:.1}% of successful adversarial images have r > 1 (nearer the target class's mean). \
         Rule: holds if more than half do. {}\n",
        100.0 * rs,
        verdict(rs > 0.5)
    );
    let (cc1, cc2, cca) = (
        by_mode("consistent", &|m| Some(m.analysis.mean_cs1)),
        by_mode("consistent", &|m| m.analysis.mean_cs2),
        by_mode("consistent", &|m| Some(m.analysis.mean_consis_adv_source)),
    );
    let rc = by_mode("consistent", &|m| m.analysis.fraction_r_above_1);
    let (pc1, prc) = (by_mode("pgd", &|m| Some(m.analysis.mean_cs1)), by_mode("pgd", &|m| m.analysis.fraction_r_above_1));
    r += &format!(
        "3. *The consistent loss makes neurons consistent* — consistent models: CS1 {cc1:.3} (standard {cs1:.3}, pgd {pc1:.3}), CS2 {cc2:.3} (standard {cs2:.3}), consis adv (source) {cca:.3} (standard {ca:.3}), r > 1 for {:.1}% (standard {:.1}%, pgd {:.1}%). \
         Rule: holds if CS1 rises, CS2 falls and the r > 1 share falls against standard training. {}\n",
        100.0 * rc,
        100.0 * rs,
        100.0 * prc,
        verdict(cc1 > cs1 && cc2 < cs2 && rc < rs)
    );
    let auc = by_mode("standard", &|m| m.analysis.trace_auc);
    let aucc = by_mode("consistent", &|m| m.analysis.trace_auc);
    r += &format!(
        "4. *Tracing to influential neurons flags wrong decisions* — ROC AUC of the top-neuron disagreement score, successful adversarial vs correctly classified real images: standard {auc:.3}, consistent {aucc:.3}. \
         Rule: holds if the AUC exceeds 0.6. {}\n",
        verdict(auc.max(aucc) > 0.6)
    );
    let detectors = |mode: &str, adv: bool| -> BTreeMap<String, usize> {
        let mut total = BTreeMap::new();
        for m in results.iter().filter(|m| m.world == "concepts" && m.mode == mode) {
            for (k, v) in if adv { &m.analysis.detectors_adv } else { &m.analysis.detectors_real } {
                *total.entry(k.clone()).or_insert(0) += v;
            }
        }
        total
    };
    r += "\n## Concept detectors on the concept world (IoU > 0.04, summed over the three architectures)\n\n| mode | real images | adversarial images |\n|---|---|---|\n";
    for mode in ["standard", "pgd", "consistent"] {
        r += &format!("| {mode} | {:?} | {:?} |\n", detectors(mode, false), detectors(mode, true));
    }
    r += "\nFigures: `consis.png` (consis on real vs adversarial top images, per mode), `cs.png` (CS1 and CS2 against consis, like the paper's Figure 8), `r.png` (the r distribution per mode, like Figure 9), `detectors.png` (concept detectors per category, real vs adversarial, per mode).\n";
    r
}

fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let mut h = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / (hi - lo)) * bins as f64).floor().clamp(0.0, (bins - 1) as f64) as usize;
        h[b] += 1;
    }
    let n = values.len().max(1) as f64;
    h.iter().enumerate().map(|(i, &c)| (lo + (i as f64 + 0.5) * (hi - lo) / bins as f64, c as f64 / n)).collect()
}

fn figures(results: &[ModelResult], out: &Path) -> Result<()> {
    let f = crate::plot::font_name();
    let modes = ["standard", "pgd", "consistent"];
    let colors = [BLUE, RED, GREEN];
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    // consis distributions.
    {
        let path = out.join("consis.png");
        let root = BitMapBackend::new(&path, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (title, adv)) in panels.iter().zip([("consis, real top images", false), ("consis, adversarial top images (source)", true)]) {
            let mut chart = ChartBuilder::on(panel).caption(title, (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(|e| err(&e))?;
            chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
            for (mode, color) in modes.iter().zip(colors) {
                let v: Vec<f64> = results.iter().filter(|m| m.mode == *mode).flat_map(|m| m.analysis.neurons.iter().map(|n| if adv { n.consis_adv_source } else { n.consis_real })).collect();
                chart.draw_series(LineSeries::new(histogram(&v, 0.0, 1.0, 20), color.stroke_width(2))).map_err(|e| err(&e))?
                    .label(*mode).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            }
            chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    // CS1 and CS2 against consis (real), per mode.
    {
        let path = out.join("cs.png");
        let root = BitMapBackend::new(&path, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (title, second)) in panels.iter().zip([("CS1 vs consis (real)", false), ("CS2 vs consis (real)", true)]) {
            let mut chart = ChartBuilder::on(panel).caption(title, (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(|e| err(&e))?;
            chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
            for (mode, color) in modes.iter().zip(colors) {
                let pts: Vec<(f64, f64)> = results.iter().filter(|m| m.mode == *mode).flat_map(|m| m.analysis.neurons.iter().map(|n| (n.consis_real, if second { n.cs2.unwrap_or(0.0) } else { n.cs1 }))).collect();
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 2, color.filled()))).map_err(|e| err(&e))?
                    .label(*mode).legend(move |(x, y)| Circle::new((x + 7, y), 3, color.filled()));
            }
            chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    // r distribution (log2 r), per mode.
    {
        let path = out.join("r.png");
        let root = BitMapBackend::new(&path, (600, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root).caption("log2 r of successful adversarial images", (f, 16)).margin(10).x_label_area_size(30).y_label_area_size(40)
            .build_cartesian_2d(-3.0..3.0, 0.0..0.5).map_err(|e| err(&e))?;
        chart.configure_mesh().label_style((f, 11)).draw().map_err(|e| err(&e))?;
        for (mode, color) in modes.iter().zip(colors) {
            let v: Vec<f64> = results.iter().filter(|m| m.mode == *mode).flat_map(|m| m.analysis.r.iter().map(|r| r.log2())).collect();
            chart.draw_series(LineSeries::new(histogram(&v, -3.0, 3.0, 24), color.stroke_width(2))).map_err(|e| err(&e))?
                .label(*mode).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().label_font((f, 11)).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    // Concept detectors per category, real vs adversarial, per mode (concept world).
    {
        let path = out.join("detectors.png");
        let root = BitMapBackend::new(&path, (960, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let categories = ["object", "part", "colour", "texture"];
        let count = |mode: &str, adv: bool, cat: &str| -> f64 {
            results
                .iter()
                .filter(|m| m.world == "concepts" && m.mode == mode)
                .map(|m| *if adv { &m.analysis.detectors_adv } else { &m.analysis.detectors_real }.get(cat).unwrap_or(&0) as f64)
                .sum()
        };
        let top = modes.iter().flat_map(|m| categories.iter().flat_map(move |c| [(m, c, false), (m, c, true)])).map(|(m, c, a)| count(m, a, c)).fold(1.0, f64::max);
        for (panel, mode) in root.split_evenly((1, 3)).iter().zip(modes) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{mode}: detectors (blue real, red adv.)"), (f, 14))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(32)
                .build_cartesian_2d(0.0..4.0, 0.0..top * 1.1)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_labels(5)
                .x_label_formatter(&|x: &f64| categories.get(x.floor() as usize).map_or(String::new(), |c| c.to_string()))
                .label_style((f, 11))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, cat) in categories.iter().enumerate() {
                let x = i as f64;
                chart
                    .draw_series([
                        Rectangle::new([(x + 0.15, 0.0), (x + 0.5, count(mode, false, cat))], BLUE.filled()),
                        Rectangle::new([(x + 0.5, 0.0), (x + 0.85, count(mode, true, cat))], RED.filled()),
                    ])
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(())
}
