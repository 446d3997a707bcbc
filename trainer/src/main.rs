//! The `advlens` command. Results go to stdout, progress to stderr.
//! Exit codes: 0 success, 1 interrupted, 2 error.

mod cli;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use advlens_trainer::data::{report, Dataset, DatasetKind, Split};
use advlens_trainer::{bench, device, dist, eval, export, train};
use anyhow::{Context, Result};
use clap::Parser;

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as for any Unix tool, instead of panicking on a
    // broken pipe: Rust ignores SIGPIPE by default.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    device::keep_freed_memory();
    let args = cli::Cli::parse();
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            ExitCode::from(2)
        }
    }
}

/// The configuration of `advlens train`: from the flags, or for --resume from the run's
/// config.json (with --epochs able to raise the epoch count and --data to move the data).
fn train_config(a: cli::TrainArgs) -> Result<train::TrainConfig> {
    if !a.resume {
        return a.into_config();
    }
    let path = a.out.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}: --resume needs the --out of an earlier `advlens train`", path.display()))?;
    let mut config: train::TrainConfig = serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    config.epochs = config.epochs.max(a.epochs);
    // The run continues where it is now (it may have been moved or copied), and reads the data
    // from where it is now when --data says so.
    config.out_dir = a.out.clone();
    if let Some(data) = a.data {
        config.data_dir = data;
    }
    Ok(config)
}

/// The error and its causes on one line. A cause whose text its parent already shows (many
/// errors print their source in their own message) is left out instead of said twice, and
/// line breaks inside messages (libtorch's) are flattened so that the first line says it all.
fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

fn run(args: cli::Cli) -> Result<ExitCode> {
    match args.command {
        cli::Command::Train(a) => {
            let team = a.dist.join()?;
            let mut device = a.device.select()?;
            if let (Some(t), tch::Device::Cuda(_)) = (&team, device) {
                device = tch::Device::Cuda(t.local_rank); // one GPU per rank
            }
            match &team {
                Some(t) => eprintln!("rank {} of {}, device: {}", t.rank, t.world, device::describe(device, a.device.threads)),
                None => eprintln!("device: {}", device::describe(device, a.device.threads)),
            }
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            // The first Ctrl-C asks the loop to save and stop; a second one kills at once.
            ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping after this step (Ctrl-C again to abort without saving)");
            })?;
            let (resume, config) = match &team {
                None => (a.resume, train_config(a)?),
                Some(t) => {
                    // Every rank must run the same command; rank 0's config (its run id, or the
                    // resumed run's saved config) is the job's.
                    same_command(Some(t))?;
                    let local = if t.is_main() {
                        let mut a = a;
                        // torchrun restarted the job after a failure (--max-restarts): continue
                        // from the last checkpoint instead of refusing the existing run.
                        if !a.resume && t.attempt > 0 && a.out.join("last.safetensors").exists() {
                            eprintln!("restart {} of the job: resuming {} from its last checkpoint", t.attempt, a.out.display());
                            a.resume = true;
                        }
                        let resume = a.resume;
                        train_config(a).map(|c| Some((resume, c)))
                    } else {
                        Ok(None)
                    };
                    let local = t.agree(local)?;
                    let text = t.broadcast_text(&local.map(|c| serde_json::to_string(&c)).transpose()?.unwrap_or_default(), 1 << 20)?;
                    serde_json::from_str(&text).context("reading rank 0's training configuration")?
                }
            };
            let summary = train::train(&config, device, resume, stop, args.quiet, team.as_ref())?;
            if team.as_ref().is_some_and(|t| !t.is_main()) {
                return Ok(if summary.interrupted { ExitCode::from(1) } else { ExitCode::SUCCESS });
            }
            println!("{}", serde_json::to_string(&summary)?);
            if summary.interrupted {
                eprintln!("interrupted: continue with `advlens train --resume --out {}`", config.out_dir.display());
                return Ok(ExitCode::from(1));
            }
            eprintln!("run written to {}; export it with `advlens export --run {}`", config.out_dir.display(), config.out_dir.display());
        }
        cli::Command::Eval(a) => {
            a.check()?;
            let team = a.dist.join()?;
            same_command(team.as_ref())?;
            let device = a.device.select()?;
            eprintln!("device: {}", device::describe(device, a.device.threads));
            let (_vs, net) = match (&a.run, &a.bundle) {
                (Some(run), _) => export::load_run(run, "best", device)?,
                (None, Some(bundle)) => export::load_bundle(bundle, device)?,
                (None, None) => anyhow::bail!("pass --run DIR or --bundle DIR"),
            };
            let spec = net.spec().clone();
            let dataset = spec.provenance.dataset.clone().context("the model does not say which dataset it was trained on (provenance.dataset)")?;
            let kind = DatasetKind::parse(&dataset)?;
            let epsilon = a.epsilon.or(spec.provenance.epsilon).unwrap_or(cli::attack_defaults(kind).0);
            let norm = advlens_trainer::attack::parse_norm(&a.norm)?;
            let attacks = a
                .attacks
                .iter()
                .filter(|n| !n.is_empty())
                .map(|n| Ok((n.clone(), eval::named_attack(n, norm, epsilon)?)))
                .collect::<Result<Vec<_>>>()?;
            let test = Dataset::load_for(&spec, &a.data, Split::Test)?;
            let bar = train::progress_bar(0, args.quiet || team.as_ref().is_some_and(|t| !t.is_main()), "eval");
            let rows = eval::evaluate(&net, &test, &attacks, a.restarts, a.limit, a.batch_size, a.seed, device, &bar, team.as_ref())?;
            bar.finish_and_clear();
            if team.as_ref().is_some_and(|t| !t.is_main()) {
                return Ok(ExitCode::SUCCESS); // rank 0 reports
            }
            let report = eval::EvalReport {
                model: spec.name.clone(),
                dataset: kind.name().into(),
                images: a.limit.map_or(test.len(), |l| l.min(test.len())),
                norm,
                epsilon,
                restarts: a.restarts,
                classes: spec.classes.clone(),
                rows,
            };
            print!("{}", report.table());
            let json = train::pretty_json(&report);
            if let Some(run) = &a.run {
                let path = advlens_trainer::checkpoint::RunDir::new(run).eval();
                std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {} (export picks it up as provenance)", path.display());
            }
            if let Some(path) = &a.json {
                std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        cli::Command::Attack(a) => {
            a.check()?;
            attack_command(a, args.quiet)?
        }
        cli::Command::Analyze(a) => {
            a.check()?;
            analyze_command(a)?
        }
        cli::Command::Trace(a) => trace_command(a)?,
        cli::Command::Perturb(a) => perturb_command(a, args.quiet)?,
        cli::Command::Import(a) => import_command(a)?,
        cli::Command::Pack(a) => {
            use advlens_shared::model::{Bundle, SAMPLES_FILE};
            let bundle = Bundle::load(&a.model).with_context(|| format!("loading bundle {}", a.model.display()))?;
            if a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
                let bytes = advlens_shared::onnx::export(&bundle)?;
                std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
                println!("wrote {} (ONNX, opset {}, {} bytes)", a.out.display(), advlens_shared::onnx::EXPORT_OPSET, bytes.len());
                return Ok(ExitCode::SUCCESS);
            }
            let samples = a.model.join(SAMPLES_FILE);
            let bytes = match std::fs::read(&samples) {
                Ok(json) => bundle.to_single_file_with_samples(&json).with_context(|| format!("checking {}", samples.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bundle.to_single_file()?,
                Err(e) => return Err(e).with_context(|| format!("reading {}", samples.display())),
            };
            std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
            println!("wrote {} ({} bytes)", a.out.display(), bytes.len());
        }
        cli::Command::Reproduce(a) => {
            a.check()?;
            DatasetKind::parse(&a.dataset)?;
            let replication = advlens_trainer::reproduce::Replication { seed: a.seed, replicates: a.replicates, controls: a.controls, concepts: !a.dataset_only };
            let report = advlens_trainer::reproduce::reproduce(&a.preset, &a.dataset, &a.data, &a.out, a.threads, a.jobs, replication)?;
            println!("report written to {}", report.display());
        }
        cli::Command::Report(a) => {
            DatasetKind::parse(&a.dataset)?;
            advlens_trainer::reproduce::preset(&a.preset)?;
            let report = advlens_trainer::reproduce::rewrite_report(&a.results, &a.preset, &a.dataset)?;
            println!("report written to {}", report.display());
        }
        cli::Command::BenchStep(a) => {
            let device = a.device.select()?;
            eprintln!("device: {}", device::describe(device, a.device.threads));
            let kind = DatasetKind::parse(&a.dataset)?;
            let [c, h, w] = match kind {
                DatasetKind::Cifar10 => [3, 32, 32],
                DatasetKind::Folder => anyhow::bail!("bench-step takes mnist, fashion-mnist or cifar10 (for the input shape)"),
                _ => [1, 28, 28],
            };
            let (mean, std) = kind.normalization();
            let input = advlens_shared::model::InputSpec { channels: c, height: h, width: w, mean, std };
            let width = a.width.unwrap_or_else(|| advlens_trainer::arch::default_width(&a.arch));
            let spec = advlens_trainer::arch::build(&a.arch, "bench", input, kind.classes(), width)?;
            let mode = a.mode.into_mode(kind, advlens_trainer::arch::default_feature_layer(&a.arch))?;
            if let Some(path) = &a.write_spec {
                std::fs::write(path, train::pretty_json(&spec)).with_context(|| format!("writing {}", path.display()))?;
            }
            let precision = advlens_trainer::precision::Precision::parse(&a.precision)?;
            let times = bench::time_steps(&spec, &mode, precision, a.batch_size, a.warmup, a.steps.max(1), device)?;
            println!("{}", serde_json::to_string(&times)?);
        }
        cli::Command::Export(a) => {
            let onnx = a.onnx.clone();
            let config = a.into_config()?;
            let summary = export::export(&config)?;
            if let Some(path) = &onnx {
                let bundle = advlens_shared::model::Bundle::load(&config.out_dir)?;
                std::fs::write(path, advlens_shared::onnx::export(&bundle)?).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {} (ONNX, opset {})", path.display(), advlens_shared::onnx::EXPORT_OPSET);
            }
            match summary.test_accuracy {
                Some(acc) => println!(
                    "bundle written to {} (test accuracy {:.2}%, {} sample images)",
                    config.out_dir.display(),
                    100.0 * acc,
                    summary.samples
                ),
                None => println!("bundle written to {} (no --data: no accuracy, no samples)", config.out_dir.display()),
            }
        }
        cli::Command::Data(cli::DataCommand::List) => print!("{}", report::list()),
        cli::Command::Data(cli::DataCommand::Verify(a)) => {
            let kind = DatasetKind::parse(&a.dataset)?;
            let mut ok = true;
            for r in report::verify(kind, &a.data)? {
                let verdict = if r.count == r.expected { "ok" } else { "WRONG COUNT" };
                ok &= r.count == r.expected;
                println!("{} {}: {} images (expected {}) {verdict}; checksum {:016x}", kind.name(), r.split, r.count, r.expected, r.checksum);
                println!("  per class: {:?}", r.per_class);
            }
            if !ok {
                return Ok(ExitCode::from(1));
            }
        }
        cli::Command::Data(cli::DataCommand::Fetch { name, out, mirror }) => {
            let kind = DatasetKind::parse(&name)?;
            let dir = advlens_trainer::data::fetch::fetch(kind, &out, mirror.as_deref(), args.quiet)?;
            println!("{} is in {} and verified: pass --dataset {} --data {}", kind.name(), dir.display(), kind.name(), dir.display());
        }
        cli::Command::Data(cli::DataCommand::Concepts { out, train, test, seed, side, preview }) => {
            let world = advlens_shared::concepts::ConceptWorld::new(side)?;
            if let Some(png) = &preview {
                advlens_trainer::data::concepts::preview(world, seed, 6, png)?;
                println!("wrote {}", png.display());
            }
            if let Some(dir) = &out {
                let bar = train::progress_bar(0, args.quiet, "concepts");
                advlens_trainer::data::concepts::export(world, seed, train, test, dir, &bar)?;
                bar.finish_and_clear();
                println!("wrote {train} training and {test} test images with masks to {} (train on it with --dataset folder --data {0})", dir.display());
            }
        }
        cli::Command::Data(cli::DataCommand::Show { data, split, per_class, out }) => {
            let kind = DatasetKind::parse(&data.dataset)?;
            let split = match split.as_str() {
                "train" => Split::Train,
                "test" => Split::Test,
                other => anyhow::bail!("unknown split `{other}`: use train or test"),
            };
            let rows = report::show(kind, &data.data, split, per_class.max(1), &out)?;
            println!("wrote {} (rows: {})", out.display(), rows.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn attack_command(a: cli::AttackArgs, quiet: bool) -> Result<()> {
    use advlens_trainer::adversarial_set::{self as advset, EnsembleConfig, TargetRule};
    let team = a.dist.join()?;
    same_command(team.as_ref())?;
    let quiet = quiet || team.as_ref().is_some_and(|t| !t.is_main());
    let device = a.device.select()?;
    eprintln!("device: {}", device::describe(device, a.device.threads));
    let load = |dirs: &[std::path::PathBuf]| dirs.iter().map(|d| export::load_bundle(d, device)).collect::<Result<Vec<_>>>();
    let models = load(&a.models)?;
    let held = load(&a.held_out)?;
    let first = models[0].1.spec().clone();
    for (dir, (_, net)) in a.models.iter().chain(&a.held_out).zip(models.iter().chain(&held)) {
        let s = net.spec();
        if (s.input.channels, s.input.height, s.input.width) != (first.input.channels, first.input.height, first.input.width) || s.classes != first.classes {
            anyhow::bail!("{} takes other inputs or classes than {}: all models must share them", dir.display(), a.models[0].display());
        }
    }
    let dataset = first.provenance.dataset.clone().context("the first model does not say its dataset (provenance.dataset)")?;
    let kind = DatasetKind::parse(&dataset)?;
    let split = match a.split.as_str() {
        "train" => Split::Train,
        "test" => Split::Test,
        other => anyhow::bail!("unknown split `{other}`: use train or test"),
    };
    let data = Dataset::load_for(&first, &a.data, split)?;
    let n = a.limit.min(data.len());
    let per = data.shape.iter().product::<usize>();
    let labels: Vec<usize> = data.labels[..n].iter().map(|&l| l as usize).collect();
    let epsilon = a.epsilon.unwrap_or(cli::attack_defaults(kind).0);
    let target_rule = match a.target.as_str() {
        "random" => Some(TargetRule::Random),
        "ll" => Some(TargetRule::LeastLikely),
        "none" => None,
        other => anyhow::bail!("unknown --target `{other}`: use random, ll or none"),
    };
    let nets: Vec<&advlens_trainer::net::Net> = models.iter().map(|(_, n)| n).collect();
    let held_nets: Vec<&advlens_trainer::net::Net> = held.iter().map(|(_, n)| n).collect();
    let (ensemble, single, description) = if a.attack == "ensemble" {
        if target_rule.is_none() {
            anyhow::bail!("the ensemble attack is targeted: use --target random or ll");
        }
        let cfg = EnsembleConfig {
            weights: vec![1.0; nets.len()],
            lambda: a.lambda,
            steps: a.steps,
            learning_rate: a.lr,
            box_epsilon: (!a.no_box).then_some(epsilon),
        };
        let d = format!("ensemble of {} ({} Adam steps, lr {}, lambda {}, box {:?})", nets.len(), a.steps, a.lr, a.lambda, cfg.box_epsilon);
        (Some(cfg), None, d)
    } else {
        let name = if a.attack == "pgd" { format!("pgd{}", a.steps) } else { a.attack.clone() };
        let attack = eval::named_attack(&name, advlens_trainer::attack::Norm::Linf, epsilon)?;
        let d = attack.to_string();
        (None, Some(attack), d)
    };
    let bar = train::progress_bar(0, quiet, "attack");
    let (images, targets, predicted) = advset::attack_set(
        &nets, &held_nets, &data.images[..n * per], data.shape, &labels, ensemble.as_ref(), single.as_ref(), target_rule, a.seed, a.batch_size, device, &bar, team.as_ref(),
    )?;
    bar.finish_and_clear();
    if team.as_ref().is_some_and(|t| !t.is_main()) {
        return Ok(()); // rank 0 writes the set
    }
    let clean = advlens_trainer::net::images_tensor(&data.images[..n * per], data.shape, tch::Device::Cpu);
    let linf = (&images - &clean).abs().max().double_value(&[]);
    let success_rate = advset::success_rates(&predicted, &labels, &targets);
    let names = |dirs: &[std::path::PathBuf]| dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>();
    let meta = advset::AdversarialSet {
        dataset: kind.name().into(),
        split: a.split.clone(),
        attack: description.clone(),
        models: names(&a.models),
        held_out: names(&a.held_out),
        indices: (0..n).collect(),
        source: labels.clone(),
        target: targets.iter().all(Option::is_some).then(|| targets.iter().map(|t| t.unwrap_or(0)).collect()),
        predicted,
        success_rate: success_rate.clone(),
        linf,
    };
    advset::save(&a.out, &images, &meta)?;
    println!("{description} on {n} {} images of {}, max L-inf distance {linf:.4}", a.split, kind.name());
    for (name, rate) in meta.models.iter().chain(&meta.held_out).zip(&success_rate) {
        let role = if meta.held_out.contains(name) { "held out" } else { "attacked" };
        println!("  {:>6.2}% success  {role:<8}  {name}", 100.0 * rate);
    }
    println!("written to {}", a.out.display());
    Ok(())
}

/// With a team: refuses to go on unless every rank runs the same command line.
fn same_command(team: Option<&dist::Team>) -> Result<()> {
    if let Some(t) = team {
        let command: Vec<String> = std::env::args().skip(1).collect();
        t.check_same("command line", dist::fingerprint(command.join("\0").as_bytes()))?;
    }
    Ok(())
}

fn analyze_command(a: cli::AnalyzeArgs) -> Result<()> {
    use advlens_trainer::analysis::{analyze, AnalyzeInput};
    let team = a.dist.join()?;
    same_command(team.as_ref())?;
    let device = a.device.select()?;
    eprintln!("device: {}", device::describe(device, a.device.threads));
    let (_vs, net) = export::load_bundle(&a.model, device)?;
    let spec = net.spec().clone();
    let (adv_images, meta) = advlens_trainer::adversarial_set::load(&a.adv)?;
    let kind = DatasetKind::parse(&meta.dataset)?;
    let split = if meta.split == "train" { Split::Train } else { Split::Test };
    if spec.provenance.dataset.as_deref().is_some_and(|d| DatasetKind::parse(d).ok() != Some(kind)) {
        anyhow::bail!("{} was made from {}, the model was trained on {}: pass matching --model and --adv", a.adv.display(), meta.dataset, spec.provenance.dataset.as_deref().unwrap_or("an unknown dataset"));
    }
    let data = Dataset::load_for(&spec, &a.data, split)?;
    if meta.indices.iter().enumerate().any(|(k, &i)| k != i) {
        anyhow::bail!("{}: the adversarial set must cover the first images of its split in order", a.adv.display());
    }
    let n = a.limit.max(meta.indices.len()).min(data.len());
    let per = data.shape.iter().product::<usize>();
    let real = advlens_trainer::net::images_tensor(&data.images[..n * per], data.shape, device);
    let labels: Vec<usize> = data.labels[..n].iter().map(|&l| l as usize).collect();
    let layer = match a.layer {
        Some(l) => l,
        None => {
            last_feature_relu(&spec)?
        }
    };
    let masks = if kind == DatasetKind::Folder && a.data.join(format!("masks-{}.bin.gz", meta.split)).is_file() {
        Some(advlens_trainer::data::concepts::read_masks(&a.data, &meta.split)?.1)
    } else {
        None
    };
    let analysis = analyze(&AnalyzeInput {
        net: &net,
        layer: &layer,
        real: &real,
        real_labels: &labels,
        adversarial: &adv_images.to_device(device),
        adv_source: &meta.source,
        adv_target: meta.target.as_deref(),
        masks: masks.as_deref(),
        top_k: a.top_k,
        trace_top: a.trace_top,
        atlas: a.atlas,
        team: team.as_ref(),
    })?;
    if team.as_ref().is_some_and(|t| !t.is_main()) {
        return Ok(()); // every rank has the result; rank 0 writes it
    }
    let report = analysis.report;
    if let Some(atlas) = &analysis.atlas {
        atlas.save(&a.out.join("atlas"))?;
        eprintln!("neuron atlas written to {}", a.out.join("atlas").display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    std::fs::write(a.out.join("analysis.json"), train::pretty_json(&report))?;
    let md = report.markdown();
    std::fs::write(a.out.join("analysis.md"), &md)?;
    print!("{md}");
    Ok(())
}

/// The last activation whose output is a feature map: the default layer of `analyze` and `trace`.
fn last_feature_relu(spec: &advlens_shared::model::ModelSpec) -> Result<String> {
    advlens_shared::model::last_feature_activation(spec)?.context("the model has no activation (ReLU, clip, sigmoid, leaky ReLU) with feature maps: pass --layer")
}

fn trace_command(a: cli::TraceArgs) -> Result<()> {
    use advlens_shared::model::Bundle;
    let bundle = std::sync::Arc::new(Bundle::load(&a.model).with_context(|| format!("loading bundle {}", a.model.display()))?);
    let spec = bundle.spec().clone();
    if let Some(c) = a.class.filter(|&c| c >= spec.classes.len()) {
        anyhow::bail!("--class {c}: the model has {} classes (numbered from 0)", spec.classes.len());
    }
    let (image, _) = advlens_trainer::perturb::one_image(&a.model, &bundle, a.input.image.as_deref(), a.input.sample)?;
    let analysis = match &a.analysis {
        Some(dir) => {
            let path = dir.join("analysis.json");
            Some(serde_json::from_slice::<advlens_trainer::analysis::AnalysisReport>(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)?)
        }
        None => None,
    };
    // The analysis's layer, unless told otherwise: its neuron numbers are that layer's.
    let layer = match (&a.layer, &analysis) {
        (Some(l), _) => l.clone(),
        (None, Some(report)) => report.layer.clone(),
        (None, None) => last_feature_relu(&spec)?,
    };
    if let Some(report) = analysis.as_ref().filter(|r| r.layer != layer) {
        anyhow::bail!("the analysis in --analysis is of layer `{}`, not `{layer}`: drop --layer or analyse that layer", report.layer);
    }
    // An atlas beside the analysis (`atlas/`), or inside the bundle (the explorer's copy,
    // one folder per layer: `atlas/<layer>/`).
    let atlas_dir = a
        .analysis
        .iter()
        .chain([&a.model])
        .flat_map(|d| [d.join("atlas").join(&layer), d.join("atlas")])
        .find(|d| d.join("atlas.json").exists());
    let atlas = match atlas_dir {
        Some(dir) => {
            let sheets = advlens_trainer::trace::AtlasSheets::load(&dir, spec.classes.len())?;
            if sheets.meta.layer == layer {
                Some(sheets)
            } else {
                eprintln!("note: the atlas in {} is of layer `{}`, not `{layer}`: not shown", dir.display(), sheets.meta.layer);
                None
            }
        }
        None => None,
    };
    let engine = advlens_shared::Engine::cpu(bundle);
    let traced = advlens_trainer::trace::run(&engine, &image, a.class, &layer)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&advlens_trainer::trace::to_json(&traced, &layer))?);
    } else {
        print!("{}", advlens_trainer::trace::describe(&traced, &spec.classes, a.top, analysis.as_ref(), atlas.as_ref().map(|s| &s.meta)));
    }
    if let Some(png) = &a.png {
        advlens_trainer::trace::png(&traced, &image, a.top, atlas.as_ref(), png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}

fn perturb_command(a: cli::PerturbArgs, quiet: bool) -> Result<()> {
    use advlens_shared::attack::AttackChoice;
    use advlens_trainer::perturb;
    let bundle = Arc::new(advlens_shared::model::Bundle::load(&a.model).with_context(|| format!("loading bundle {}", a.model.display()))?);
    let choice = AttackChoice::parse(&a.attack).with_context(|| format!("--attack {}: use one of {}", a.attack, AttackChoice::names()))?;
    let request = perturb::Request { choice, epsilon: a.epsilon, steps: a.steps, step_size: a.step_size, target: a.target, seed: a.seed };
    let spec = request.resolve(&bundle)?;
    let (image, sample_label) = perturb::one_image(&a.model, &bundle, a.input.image.as_deref(), a.input.sample)?;
    let classes = bundle.classes().len();
    if let Some(l) = a.label.filter(|&l| l >= classes) {
        anyhow::bail!("--label {l}: the model has {classes} classes (numbered from 0)");
    }
    if !a.with.is_empty() && choice != AttackChoice::Ensemble {
        anyhow::bail!("--with names the models of an ensemble attack: add --attack ensemble");
    }
    let open_like = |flag: &str, dir: &std::path::Path| -> Result<(String, advlens_shared::Engine)> {
        let other = advlens_shared::model::Bundle::load(dir).with_context(|| format!("loading {flag} bundle {}", dir.display()))?;
        if other.input_shape() != bundle.input_shape() || other.classes() != bundle.classes() {
            anyhow::bail!("{flag} {}: it takes {:?} images of classes {:?}, the attacked model {:?} of {:?}", dir.display(), other.input_shape(), other.classes(), bundle.input_shape(), bundle.classes());
        }
        Ok((dir.display().to_string(), advlens_shared::Engine::cpu(Arc::new(other))))
    };
    let held_out = a.held_out.iter().map(|d| open_like("--held-out", d)).collect::<Result<Vec<_>>>()?;
    let members = a.with.iter().map(|d| open_like("--with", d)).collect::<Result<Vec<_>>>()?;
    let engine = advlens_shared::Engine::cpu(bundle.clone());
    let bar = train::progress_bar(spec.steps as u64, quiet, "perturb");
    let with: Vec<&advlens_shared::Engine> = members.iter().map(|(_, e)| e).collect();
    let mut result = perturb::perturb(&engine, &with, &image, a.label.or(sample_label), &spec, a.every_step, &bar)?;
    result.ensemble = perturb::judge(&result, &members)?;
    result.transfer = perturb::judge(&result, &held_out)?;
    if a.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", perturb::describe(&result, bundle.classes()));
    }
    if let Some(png) = &a.png {
        perturb::png(&result.image, bundle.input_shape(), png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}

fn import_command(a: cli::ImportArgs) -> Result<()> {
    use advlens_shared::onnx::{import, ImportOptions, MAX_FILE_BYTES};
    let size = std::fs::metadata(&a.onnx).with_context(|| format!("reading {}", a.onnx.display()))?.len();
    if size > MAX_FILE_BYTES as u64 {
        anyhow::bail!("{} has {size} bytes, more than the {MAX_FILE_BYTES} an imported model may have", a.onnx.display());
    }
    let bytes = std::fs::read(&a.onnx).with_context(|| format!("reading {}", a.onnx.display()))?;
    let classes = match &a.classes {
        Some(path) if path.as_os_str() == "imagenet" && !path.exists() => Some(advlens_shared::onnx::imagenet_classes()),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>())
        }
        None => None,
    };
    if let Some(d) = &a.dataset {
        DatasetKind::parse(d)?;
    }
    let name = a.name.clone().unwrap_or_else(|| a.onnx.file_stem().map_or("imported".into(), |s| s.to_string_lossy().into_owned()));
    let options = ImportOptions {
        name,
        classes,
        mean: (!a.mean.is_empty()).then(|| a.mean.clone()),
        std: (!a.std.is_empty()).then(|| a.std.clone()),
        dataset: a.dataset.clone(),
    };
    let bundle = import(&bytes, &options).with_context(|| format!("importing {}", a.onnx.display()))?;
    export::replace_dir(&a.out, |dir| Ok(bundle.save(dir)?))?;
    let spec = bundle.spec();
    let params: usize = bundle.weights().values().map(|t| t.data().len()).sum();
    println!(
        "bundle written to {}: {} layers, {params} weights, input {}x{}x{} (mean {:?}, std {:?}), {} classes",
        a.out.display(),
        spec.nodes.len(),
        spec.input.channels,
        spec.input.height,
        spec.input.width,
        spec.input.mean,
        spec.input.std,
        spec.classes.len()
    );
    // What the importer decided on its own, so that it can be overridden.
    let source = &spec.provenance.extra["imported_from"];
    if source["pixels"].is_string() {
        println!("note: the graph divides its input by about 255 itself (Keras's Rescaling): it is fed 0-255 pixels; pass --mean 0 --std 1 to feed it 0-1 pixels instead");
    }
    if let Some(op) = source["dropped_output_op"].as_str() {
        println!("note: the final {op} was left out: the bundle's outputs are the logits before it");
    }
    if source["input_layout"].is_string() {
        println!("note: the input is channels last (NHWC); the bundle reads images channels first, as every advlens model does");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command, DataCommand};
    use advlens_trainer::study::steps::StepConfig;

    /// `reproduce` runs this binary with each step's typed config spelled as flags: every step of
    /// every preset, for both kinds of world, must parse with the real command line into the
    /// values of its config (a renamed, removed or retyped flag fails here, not hours into a
    /// reproduction).
    #[test]
    fn every_reproduce_step_round_trips_through_the_cli() {
        for preset in ["smoke", "quick", "standard", "full"] {
            for dataset in ["mnist", "fashion-mnist", "cifar10"] {
                let steps = advlens_trainer::reproduce::step_configs(preset, dataset, "/data".as_ref(), "/out".as_ref(), 3, true).unwrap();
                assert!(steps.len() > 40, "{preset} {dataset}: {} steps", steps.len());
                for step in steps {
                    let args = step.args();
                    let line = std::iter::once("advlens".to_string()).chain(args.iter().cloned());
                    match Cli::try_parse_from(line) {
                        Ok(cli) => same_values(&step, cli.command),
                        Err(e) => panic!("{preset} {dataset}: `advlens {}` does not parse:\n{e}", args.join(" ")),
                    }
                }
            }
        }
    }

    /// What clap read equals the config.
    fn same_values(step: &StepConfig, command: Command) {
        match (step, command) {
            (StepConfig::Concepts(s), Command::Data(DataCommand::Concepts { out, train, test, seed, .. })) => {
                assert_eq!((out, train, test, seed), (Some(s.out.clone()), s.train, s.test, s.seed), "{step:?}");
            }
            (StepConfig::Train(s), Command::Train(a)) => {
                assert!(!a.resume);
                assert_eq!((a.dataset, a.data, a.arch, a.width), (s.dataset.clone(), Some(s.data.clone()), s.arch.clone(), Some(s.width)), "{step:?}");
                assert_eq!(a.mode.mode, s.mode.mode);
                assert_eq!(a.mode.lambda, s.mode.lambda.unwrap_or(1.0), "{step:?}");
                assert_eq!(a.mode.attack, s.mode.attack.clone().unwrap_or_else(|| "pgd".into()), "{step:?}");
                assert_eq!(a.mode.distance, s.mode.distance.clone().unwrap_or_else(|| "mean".into()), "{step:?}");
                assert_eq!((a.mode.attack_steps, a.mode.epsilon, a.mode.step_size), (Some(s.attack_steps), Some(s.epsilon), Some(s.step_size)), "{step:?}");
                assert_eq!((a.epochs, a.name, a.out, a.seed), (s.epochs, Some(s.name.clone()), s.out.clone(), s.seed), "{step:?}");
                assert_eq!((a.epsilon_warmup, a.limit, a.device.threads), (s.epsilon_warmup, s.limit, s.threads), "{step:?}");
            }
            (StepConfig::Resume(s), Command::Train(a)) => {
                assert!(a.resume);
                assert_eq!((a.data, a.out, a.device.threads), (Some(s.data.clone()), s.out.clone(), s.threads), "{step:?}");
            }
            (StepConfig::Eval(s), Command::Eval(a)) => {
                assert_eq!((a.run, a.data, a.attacks), (Some(s.run.clone()), s.data.clone(), s.attacks.clone()), "{step:?}");
                assert_eq!((a.limit, a.seed, a.epsilon, a.device.threads), (Some(s.limit), s.seed, s.epsilon, s.threads), "{step:?}");
            }
            (StepConfig::Export(s), Command::Export(a)) => {
                assert_eq!((a.run, a.data, a.out, a.device.threads), (s.run.clone(), Some(s.data.clone()), s.out.clone(), s.threads), "{step:?}");
            }
            (StepConfig::Attack(s), Command::Attack(a)) => {
                assert_eq!((a.models, a.held_out, a.data), (s.models.clone(), vec![s.held_out.clone()], s.data.clone()), "{step:?}");
                assert_eq!((a.limit, a.steps, a.out, a.seed), (s.limit, s.steps, s.out.clone(), s.seed), "{step:?}");
                assert_eq!((a.epsilon, a.device.threads), (s.epsilon, s.threads), "{step:?}");
            }
            (StepConfig::Analyze(s), Command::Analyze(a)) => {
                assert_eq!((a.model, a.adv, a.data, a.limit), (s.model.clone(), s.adv.clone(), s.data.clone(), s.limit), "{step:?}");
                assert_eq!((a.atlas, a.out, a.device.threads), (s.atlas, s.out.clone(), s.threads), "{step:?}");
            }
            (step, other) => panic!("{step:?} parsed as another command: {other:?}"),
        }
    }
}
