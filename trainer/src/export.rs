//! `advlens export`: a run directory to a model bundle the shared engines and the explorer load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use advlens_shared::model::{parse_spec, Bundle, ModelSpec, Reference, Sample, SampleSet, SAMPLES_FILE};
use anyhow::{Context, Result};
use tch::{nn, Device, Kind};

use crate::checkpoint::{Checkpoint, RunDir};
use crate::eval::EvalReport;
use crate::data::{Dataset, Split};
use crate::net::{images_tensor, Net};

/// What `advlens export` does.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub run_dir: PathBuf,
    /// Dataset directory for the test accuracy and the sample images; none skips both.
    pub data_dir: Option<PathBuf>,
    pub samples: usize,
    /// `best` or `last`.
    pub checkpoint: String,
    pub out_dir: PathBuf,
    /// Where the accuracy pass over the test set runs.
    pub device: Device,
}

/// What was exported.
#[derive(Debug)]
pub struct ExportSummary {
    pub test_accuracy: Option<f64>,
    pub samples: usize,
}

/// Loads a run's graph and its `best` or `last` checkpoint into a libtorch [`Net`] on `device`.
pub fn load_run(run_dir: &Path, which: &str, device: Device) -> Result<(nn::VarStore, Net)> {
    let run = RunDir::new(run_dir);
    let spec_bytes = std::fs::read(run.model())
        .with_context(|| format!("reading {}: is `{}` a run directory written by `advlens train`?", run.model().display(), run_dir.display()))?;
    let spec = parse_spec(&spec_bytes).with_context(|| format!("reading {}", run.model().display()))?;
    let path = match which {
        "best" => run.best(),
        "last" => run.last(),
        other => anyhow::bail!("unknown checkpoint `{other}`: use best or last"),
    };
    let vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), &spec);
    Checkpoint::read(&path)?.load_net(&net).with_context(|| format!("loading {}", path.display()))?;
    Ok((vs, net))
}

/// Loads a bundle directory into a libtorch [`Net`] on `device`.
pub fn load_bundle(dir: &Path, device: Device) -> Result<(nn::VarStore, Net)> {
    let bundle = Bundle::load(dir).with_context(|| format!("loading bundle {}", dir.display()))?;
    let vs = nn::VarStore::new(device);
    let mut net = Net::new(&vs.root(), bundle.spec());
    net.load_weights(bundle.weights())?;
    Ok((vs, net))
}

/// Converts a libtorch network to a validated bundle with `spec`'s graph.
pub fn to_bundle(net: &Net, spec: ModelSpec) -> Result<Bundle> {
    let mut weights = HashMap::new();
    for (name, t) in net.named_parameters() {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data = Vec::<f32>::try_from(t.flatten(0, -1)).with_context(|| format!("reading tensor {name}"))?;
        weights.insert(name.clone(), advlens_shared::Tensor::new(shape, data)?);
    }
    Ok(Bundle::new(spec, weights)?)
}

/// Exports a run: the bundle, and `samples.json` with libtorch's predictions when data is given.
pub fn export(config: &ExportConfig) -> Result<ExportSummary> {
    let (_vs, net) = load_run(&config.run_dir, &config.checkpoint, Device::Cpu)?;
    let on_device = match config.device {
        Device::Cpu => None,
        device => Some(load_run(&config.run_dir, &config.checkpoint, device)?),
    };
    let mut spec = net.spec().clone();
    let eval_path = RunDir::new(&config.run_dir).eval();
    if eval_path.exists() {
        // Robust accuracy measured by `advlens eval --run` on this run.
        let text = std::fs::read_to_string(&eval_path).with_context(|| format!("reading {}", eval_path.display()))?;
        let report: EvalReport = serde_json::from_str(&text).with_context(|| format!("reading {}", eval_path.display()))?;
        for row in &report.rows {
            if row.name == "clean" {
                spec.provenance.clean_accuracy = Some(row.accuracy);
            } else {
                spec.provenance.robust_accuracy.insert(format!("{}@{}", row.name, report.epsilon), row.accuracy);
            }
        }
    }
    spec.provenance.tool_version = Some(format!("advlens {}", env!("CARGO_PKG_VERSION")));
    spec.provenance.date = Some(today_utc());
    let mut summary = ExportSummary { test_accuracy: None, samples: 0 };
    let mut samples = None;
    if let Some(dir) = &config.data_dir {
        let test = Dataset::load_for(&spec, dir, Split::Test)?;
        let predicted = predictions(on_device.as_ref().map_or(&net, |(_, n)| n), &test, config.device)?;
        let correct = predicted.iter().zip(&test.labels).filter(|(&p, &l)| p == i64::from(l)).count();
        let acc = correct as f64 / test.len().max(1) as f64;
        spec.provenance.clean_accuracy = Some(acc);
        summary.test_accuracy = Some(acc);
        samples = Some(sample_set(&net, &test, config.samples, &predicted)?);
    }
    let bundle = to_bundle(&net, spec)?;
    replace_dir(&config.out_dir, |dir| {
        bundle.save(dir).with_context(|| format!("writing bundle to {}", dir.display()))?;
        if let Some(set) = &samples {
            let path = dir.join(SAMPLES_FILE);
            std::fs::write(&path, serde_json::to_string(set)? + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })?;
    summary.samples = samples.map_or(0, |s| s.samples.len());
    Ok(summary)
}

/// Writes a bundle folder as a whole: `write` fills a fresh sibling folder, which then takes
/// `out`'s place. Nothing of an earlier bundle in `out` survives (its `atlas/` described the
/// old model's neurons), and a failure leaves the earlier bundle as it was. A non-empty `out`
/// that is not a bundle is refused rather than replaced.
pub fn replace_dir(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use advlens_shared::model::SPEC_FILE;
    let name = out.file_name().and_then(|n| n.to_str()).with_context(|| format!("--out {} does not name a folder", out.display()))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if out.exists() {
        let empty = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?.next().is_none();
        if !empty && !out.join(SPEC_FILE).is_file() {
            anyhow::bail!("{} exists and is not a model bundle (no {SPEC_FILE}): export into a new or empty folder", out.display());
        }
    }
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let fresh = parent.join(format!(".{name}.new-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir(&fresh).with_context(|| format!("creating {}", fresh.display()))?;
    if let Err(e) = write(&fresh) {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(e);
    }
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| format!("moving the earlier bundle {} aside", out.display()))?;
    }
    if let Err(e) = std::fs::rename(&fresh, out) {
        let _ = std::fs::rename(&old, out);
        return Err(e).with_context(|| format!("moving the new bundle into {}", out.display()));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The class `net` predicts for every image of `split`, one pass in batches of 1000.
pub fn predictions(net: &Net, split: &Dataset, device: Device) -> Result<Vec<i64>> {
    let all = images_tensor(&split.images, split.shape, device);
    let predicted = tch::no_grad(|| {
        let chunks: Vec<tch::Tensor> = (0..split.len() as i64)
            .step_by(1000)
            .map(|s| net.forward(&all.narrow(0, s, (split.len() as i64 - s).min(1000))).argmax(-1, false))
            .collect();
        tch::Tensor::cat(&chunks, 0).to_device(Device::Cpu)
    });
    Ok(Vec::<i64>::try_from(predicted)?)
}

/// `count` images of `split` with libtorch's CPU outputs for them as the reference: the first
/// ones, plus the first few that `predicted` (from [`predictions`]) gets wrong, so that a
/// prediction can be told apart from a label.
pub fn sample_set(net: &Net, split: &Dataset, count: usize, predicted: &[i64]) -> Result<SampleSet> {
    let count = count.min(split.len());
    let wrong: Vec<usize> =
        (0..split.len()).filter(|&i| predicted[i] != i64::from(split.labels[i])).take(count / 4).collect();
    let mut chosen: Vec<usize> = (0..split.len()).filter(|i| !wrong.contains(i)).take(count - wrong.len()).collect();
    chosen.extend(&wrong);
    chosen.sort_unstable();

    let chosen_pixels: Vec<u8> = chosen.iter().flat_map(|&i| split.image(i).iter().copied()).collect();
    let images = images_tensor(&chosen_pixels, split.shape, Device::Cpu);
    let probs = tch::no_grad(|| net.forward(&images).softmax(-1, Kind::Float));
    let probs: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(probs)?;
    let samples = chosen
        .iter()
        .zip(probs)
        .map(|(&i, p)| Sample {
            index: i,
            label: usize::from(split.labels[i]),
            pixels: split.image(i).to_vec(),
            reference: Reference { predicted: advlens_shared::tensor::argmax(&p), probabilities: p },
        })
        .collect();
    Ok(SampleSet {
        dataset: split.kind.name().into(),
        split: match split.split {
            Split::Train => "train".into(),
            Split::Test => "test".into(),
        },
        shape: split.shape,
        samples,
    })
}

/// Today's date in UTC as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
fn today_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn replacing_a_bundle_folder_leaves_nothing_of_the_old_one_and_refuses_other_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("bundle");
        std::fs::create_dir_all(out.join("atlas/relu2")).unwrap();
        std::fs::write(out.join("model.json"), "old").unwrap();
        std::fs::write(out.join("atlas/relu2/atlas.json"), "old").unwrap();
        super::replace_dir(&out, |d| Ok(std::fs::write(d.join("model.json"), "new")?)).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("model.json")).unwrap(), "new");
        assert!(!out.join("atlas").exists(), "the old atlas must go");
        // A failed write keeps the earlier bundle and leaves no temporary folder.
        assert!(super::replace_dir(&out, |_| anyhow::bail!("disk full")).is_err());
        assert_eq!(std::fs::read_to_string(out.join("model.json")).unwrap(), "new");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        // A folder that is not a bundle is never replaced.
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join("thesis.tex"), "precious").unwrap();
        let m = super::replace_dir(&home, |_| Ok(())).unwrap_err().to_string();
        assert!(m.contains("not a model bundle"), "{m}");
        assert!(home.join("thesis.tex").exists());
    }

    #[test]
    fn today_is_a_plausible_date() {
        let d = super::today_utc();
        assert_eq!(d.len(), 10, "{d}");
        assert!(d.as_str() >= "2025-01-01" && d.as_str() < "2100-01-01", "{d}");
    }
}
