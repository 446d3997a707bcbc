//! `advlens data`: what datasets exist, whether a copy is complete, and what it looks like.

use std::path::Path;

use anyhow::{Context, Result};

use super::{Dataset, DatasetKind, Split};

/// Canonical `(train, test)` sizes.
pub fn expected_sizes(kind: DatasetKind) -> (usize, usize) {
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => (60_000, 10_000),
        DatasetKind::Cifar10 => (50_000, 10_000),
        DatasetKind::Folder => (0, 0),
    }
}

/// Where each dataset is read from.
pub fn list() -> String {
    let mut out = String::from("dataset        shape     train/test   layout of --data DIR (or $ADVLENS_DATA)\n");
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist, DatasetKind::Cifar10, DatasetKind::Folder] {
        let (train, test) = expected_sizes(kind);
        let (shape, layout) = match kind {
            DatasetKind::Cifar10 => ("3x32x32", "data_batch_{1..5}.bin + test_batch.bin (or in cifar-10-batches-bin/), or train/<class>/*.jpg|png + test/<class>/"),
            DatasetKind::Folder => ("3xSxS", "train/<class>/*.png|jpg + test/<class>/ (S = first image's side); `advlens data concepts` writes one"),
            _ => ("1x28x28", "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"),
        };
        out += &format!("{:<14} {shape:<9} {train}/{test:<6} {layout}\n", kind.name());
    }
    out
}

/// Per-split counts, per-class counts and an FNV-1a checksum of the pixels and labels.
pub struct SplitReport {
    pub split: &'static str,
    pub count: usize,
    pub expected: usize,
    pub per_class: Vec<usize>,
    pub checksum: u64,
}

pub fn verify(kind: DatasetKind, dir: &Path) -> Result<Vec<SplitReport>> {
    let (train, test) = expected_sizes(kind);
    let mut reports = Vec::new();
    for (split, name, expected) in [(Split::Train, "train", train), (Split::Test, "test", test)] {
        let data = Dataset::load(kind, dir, split)?;
        let mut per_class = vec![0; data.classes.len()];
        for &l in &data.labels {
            per_class[usize::from(l)] += 1;
        }
        // Labels hash as one byte each while they fit one (the checksums of every dataset so far).
        let label_bytes: Vec<u8> = data.labels.iter().flat_map(|&l| if l < 256 { vec![l as u8] } else { l.to_le_bytes().to_vec() }).collect();
        let checksum = fnv1a(data.images.iter().chain(&label_bytes));
        // Image folders have no canonical size: only their per-class counts are reported.
        let expected = if kind == DatasetKind::Folder { data.len() } else { expected };
        reports.push(SplitReport { split: name, count: data.len(), expected, per_class, checksum });
    }
    Ok(reports)
}

fn fnv1a<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A PNG grid: one row per class (in class order), the first `per_class` images of each, each
/// image scaled by 2. Returns the class names in row order.
pub fn show(kind: DatasetKind, dir: &Path, split: Split, per_class: usize, out: &Path) -> Result<Vec<String>> {
    let data = Dataset::load(kind, dir, split)?;
    let classes = data.classes.clone();
    let [c, h, w] = data.shape;
    let (scale, gap) = (2u32, 2u32);
    let cell = |s: usize| s as u32 * scale + gap;
    let mut grid = image::RgbImage::from_pixel(cell(w) * per_class as u32, cell(h) * classes.len() as u32, image::Rgb([255, 255, 255]));
    for (row, _) in classes.iter().enumerate() {
        let picks = (0..data.len()).filter(|&i| usize::from(data.labels[i]) == row).take(per_class);
        for (col, i) in picks.enumerate() {
            let px = data.image(i);
            for y in 0..h * scale as usize {
                for x in 0..w * scale as usize {
                    let at = (y / scale as usize) * w + x / scale as usize;
                    let rgb = std::array::from_fn(|ch| px[ch.min(c - 1) * h * w + at]);
                    grid.put_pixel(col as u32 * cell(w) + x as u32, row as u32 * cell(h) + y as u32, image::Rgb(rgb));
                }
            }
        }
    }
    grid.save(out).with_context(|| format!("writing {}", out.display()))?;
    Ok(classes)
}
