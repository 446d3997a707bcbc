//! Datasets for training: MNIST-style IDX files (MNIST, Fashion-MNIST) and CIFAR-10, either its
//! official binary batches or an image folder (`train/<class>/*.jpg`, `test/<class>/*.jpg`).
//!
//! Loaders take a directory; nothing assumes where datasets live.

pub mod batches;
pub mod cifar;
pub mod concepts;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod report;

use std::path::{Path, PathBuf};

use advlens_shared::model::ModelSpec;
use thiserror::Error;

/// Why a dataset could not be loaded. Each names the file and the problem.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("dataset directory `{}` does not exist: pass --data DIR or set ADVLENS_DATA to the folder holding the {dataset} files", path.display())]
    DirMissing { path: PathBuf, dataset: String },
    #[error("`{}` has no {file}: is this the {dataset} folder?", dir.display())]
    FileMissing { dir: PathBuf, file: String, dataset: String },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is corrupt: {problem}", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error("the data in `{}` does not fit model `{model}`: {problem}; pass the --data it was trained on", dir.display())]
    DoesNotFit { dir: PathBuf, model: String, problem: String },
    #[error("model `{0}` does not say which dataset it was trained on (provenance.dataset in model.json)")]
    NoDataset(String),
    #[error("unknown dataset `{0}`: known datasets are mnist, fashion-mnist, cifar10 and folder (any train/<class>/ + test/<class>/ image folder, e.g. the concept world)")]
    UnknownDataset(String),
}

impl DataError {
    fn corrupt(path: &Path, problem: impl Into<String>) -> Self {
        DataError::Corrupt { path: path.to_owned(), problem: problem.into() }
    }
}

/// The datasets this build can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
    Cifar10,
    /// Any `train/<class>/`, `test/<class>/` image folder, e.g. the exported concept world.
    Folder,
}

impl DatasetKind {
    pub fn parse(name: &str) -> Result<Self, DataError> {
        match name {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            "folder" | "concepts" => Ok(DatasetKind::Folder),
            other => Err(DataError::UnknownDataset(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Folder => "folder",
        }
    }

    pub fn classes(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => {
                &["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
            }
            DatasetKind::Cifar10 => {
                &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
            }
            // Read from the folder: see `Dataset::classes`.
            DatasetKind::Folder => &[],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The class hierarchy for the consistency metric (`child -> parent`): WordNet's hypernyms for
    /// CIFAR-10 (`trainer/assets/hierarchy/cifar10.json`, made by `scripts/wordnet-hierarchy.py`
    /// from the offline WordNet database); none (identity similarity) for digits and folders.
    /// Fashion-MNIST's classes are not WordNet synsets one to one, so they get none either.
    pub fn hierarchy(self) -> std::collections::BTreeMap<String, String> {
        match self {
            DatasetKind::Cifar10 => serde_json::from_str(include_str!("../../assets/hierarchy/cifar10.json")).expect("the shipped hierarchy parses"),
            _ => Default::default(),
        }
    }

    /// Per-channel mean and std of the training images (in [0, 1]), used inside the model.
    /// Image folders have none fixed: see [`Dataset::channel_stats`].
    /// The perturbation budget (L-inf, [0, 1] scale) that adversarial training and evaluation
    /// use on this dataset unless told otherwise: the literature's usual values (MNIST 0.3,
    /// Fashion-MNIST 0.1, CIFAR-10 8/255; 8/255 for image folders such as the concept world).
    pub fn default_epsilon(self) -> f64 {
        match self {
            DatasetKind::Mnist => 0.3,
            DatasetKind::FashionMnist => 0.1,
            DatasetKind::Cifar10 | DatasetKind::Folder => 8.0 / 255.0,
        }
    }

    pub fn normalization(self) -> (Vec<f32>, Vec<f32>) {
        match self {
            DatasetKind::Folder => (vec![0.5; 3], vec![0.25; 3]),
            DatasetKind::Mnist => (vec![0.1307], vec![0.3081]),
            DatasetKind::FashionMnist => (vec![0.2860], vec![0.3530]),
            DatasetKind::Cifar10 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
        }
    }
}

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// A class index (ImageNet's 1000 classes do not fit a byte).
pub type Label = u16;

/// Images (NCHW bytes) and labels of one split.
#[derive(Debug)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub split: Split,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    pub images: Vec<u8>,
    pub labels: Vec<Label>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A 64-bit hash of the split (shape, class names, labels, pixels): equal on two machines
    /// exactly when they hold the same data. Distributed ranks compare it at start.
    pub fn fingerprint(&self) -> u64 {
        let mut h = advlens_shared::rng::SplitMix::derive(0xF1_A9E5, self.len() as u64, 0).next_u64();
        let mut feed = |bytes: &[u8]| {
            // FNV-1a on 8-byte words: fast enough for 150 MB (CIFAR-10) at every start.
            for chunk in bytes.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x100_0000_01b3);
            }
            h = h.rotate_left(17);
        };
        feed(&self.shape.map(|d| d as u64).iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<_>>());
        for class in &self.classes {
            feed(class.as_bytes());
        }
        feed(&self.labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<_>>());
        feed(&self.images);
        h
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.iter().product::<usize>();
        &self.images[i * n..(i + 1) * n]
    }

    /// Per-channel mean and standard deviation of the pixels, on the [0, 1] scale.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
        for i in 0..self.len() {
            for (ch, plane) in self.image(i).chunks_exact(h * w).enumerate() {
                for &p in plane {
                    let v = f64::from(p) / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (self.len() * h * w).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(1e-6)).sqrt() as f32).collect();
        (mean.iter().map(|&m| m as f32).collect(), std)
    }

    /// The split of `dir` that the model described by `spec` reads (its `provenance.dataset`),
    /// checked by [`Dataset::check_fits`] before any work starts.
    pub fn load_for(spec: &ModelSpec, dir: &Path, split: Split) -> Result<Self, DataError> {
        let name = spec.provenance.dataset.as_deref().ok_or_else(|| DataError::NoDataset(spec.name.clone()))?;
        let mut data = match DatasetKind::parse(name)? {
            // A folder of photos of any size (ImageNet's layout) is read at the model's size.
            DatasetKind::Folder if spec.input.height == spec.input.width => Self::load_folder(dir, split, Some(spec.input.height))?,
            kind => Self::load(kind, dir, split)?,
        };
        if data.kind == DatasetKind::Folder {
            data.relabel_as_subset_of(&spec.classes);
        }
        data.check_fits(dir, &spec.name, [spec.input.channels, spec.input.height, spec.input.width], &spec.classes)?;
        Ok(data)
    }

    /// A folder holding some of the model's classes (a subset of ImageNet such as Imagenette's
    /// ten synsets, for a 1000-class model) takes the model's class list, each image keeping
    /// its class by name. Nothing changes when a folder class is not among the model's (the
    /// check that follows names it).
    fn relabel_as_subset_of(&mut self, model_classes: &[String]) {
        if self.classes == model_classes {
            return;
        }
        let Some(index): Option<Vec<Label>> = self.classes.iter().map(|c| model_classes.iter().position(|m| m == c).map(|k| k as Label)).collect() else {
            return;
        };
        for label in &mut self.labels {
            *label = index[*label as usize];
        }
        self.classes = model_classes.to_vec();
    }

    /// Whether a model taking `[channels, height, width]` images and predicting `classes` can
    /// read this split: the same image shape, the same class names in the same order. Without
    /// this check a 32x32 set fed to a 28x28 model panicked inside libtorch, and a folder with
    /// other classes was scored against the wrong names.
    pub fn check_fits(&self, dir: &Path, model: &str, shape: [usize; 3], classes: &[String]) -> Result<(), DataError> {
        let fail = |problem: String| Err(DataError::DoesNotFit { dir: dir.to_owned(), model: model.to_owned(), problem });
        let [c, h, w] = self.shape;
        if self.shape != shape {
            return fail(format!("its images are {c}x{h}x{w} (channels x height x width), the model takes {}x{}x{}", shape[0], shape[1], shape[2]));
        }
        if self.classes != classes {
            // Name what differs, a few at a time: an ImageNet model has 1,000 classes.
            let few = |v: Vec<&String>| {
                let shown: Vec<String> = v.iter().take(5).map(|c| format!("{c:?}")).collect();
                if v.len() > 5 { format!("{} and {} more", shown.join(", "), v.len() - 5) } else { shown.join(", ") }
            };
            let unknown: Vec<&String> = self.classes.iter().filter(|c| !classes.contains(c)).collect();
            return fail(if unknown.is_empty() {
                format!("it has the model's classes in another order ({} vs the model's {})", few(self.classes.iter().collect()), few(classes.iter().collect()))
            } else {
                format!("its classes {} are not among the model's {} ({})", few(unknown), classes.len(), few(classes.iter().collect()))
            });
        }
        Ok(())
    }

    /// Loads one split of dataset `kind` from `dir`.
    pub fn load(kind: DatasetKind, dir: &Path, split: Split) -> Result<Self, DataError> {
        match kind {
            DatasetKind::Mnist | DatasetKind::FashionMnist => Self::load_idx(kind, dir, split),
            DatasetKind::Cifar10 => Self::load_cifar10(dir, split),
            DatasetKind::Folder => Self::load_folder(dir, split, None),
        }
    }

    /// An image folder: `dir/train/<class>/*`, `dir/test/<class>/*` (or ImageNet's
    /// `dir/val/<class>/*`), RGB, square images of `side` pixels, by default the side of the
    /// first training image (others are resized and centre-cropped to it).
    fn load_folder(dir: &Path, split: Split, side: Option<usize>) -> Result<Self, DataError> {
        let kind = DatasetKind::Folder;
        if !dir.is_dir() {
            return Err(DataError::DirMissing { path: dir.to_owned(), dataset: kind.name().into() });
        }
        let names: &[&str] = if split == Split::Train { &["train"] } else { &["test", "val"] };
        let missing = || DataError::FileMissing { dir: dir.to_owned(), file: "`train/` and `test/` (or ImageNet's `val/`) class folders".into(), dataset: "image-folder".into() };
        let folder = names.iter().map(|n| dir.join(n)).find(|p| p.is_dir()).ok_or_else(missing)?;
        let train_dir = dir.join("train");
        let side = match side {
            Some(side) => side,
            None if train_dir.is_dir() => folder::first_image_side(&train_dir)?,
            None => return Err(missing()),
        };
        let (classes, images, labels) = folder::load(&folder, 3, side)?;
        if train_dir.is_dir() {
            let train_classes: Vec<String> = folder::class_folders(&train_dir)?.into_iter().map(|(n, _)| n).collect();
            if classes != train_classes {
                return Err(DataError::corrupt(&folder, format!("class folders {classes:?} differ from train/'s {train_classes:?}")));
            }
        }
        Ok(Self { kind, split, shape: [3, side, side], images, labels, classes })
    }

    /// CIFAR-10 from its binary batches (in `dir` or `dir/cifar-10-batches-bin`) or from an image
    /// folder (`dir/train/<class>/`, `dir/test/<class>/`, class folders named as CIFAR-10's classes).
    fn load_cifar10(dir: &Path, split: Split) -> Result<Self, DataError> {
        let kind = DatasetKind::Cifar10;
        if !dir.is_dir() {
            return Err(DataError::DirMissing { path: dir.to_owned(), dataset: kind.name().into() });
        }
        let train = split == Split::Train;
        let binary = [dir.to_owned(), dir.join("cifar-10-batches-bin")].into_iter().find(|d| d.join("test_batch.bin").is_file());
        let (images, labels) = if let Some(bin) = binary {
            let files = cifar::batch_files(&bin, train);
            if let Some(missing) = files.iter().find(|f| !f.is_file()) {
                return Err(DataError::FileMissing { dir: bin.clone(), file: format!("`{}`", missing.file_name().unwrap_or_default().to_string_lossy()), dataset: kind.name().into() });
            }
            cifar::read_batches(&files)?
        } else {
            let folder = dir.join(if train { "train" } else { "test" });
            if !folder.is_dir() {
                let file = format!("`{}/` class folders (nor the binary batches test_batch.bin, data_batch_*.bin)", if train { "train" } else { "test" });
                return Err(DataError::FileMissing { dir: dir.to_owned(), file, dataset: kind.name().into() });
            }
            let (classes, images, labels) = folder::load(&folder, 3, 32)?;
            if classes != kind.classes() {
                return Err(DataError::Corrupt { path: folder, problem: format!("class folders {classes:?} are not CIFAR-10's {:?}", kind.classes()) });
            }
            (images, labels)
        };
        Ok(Self { kind, split, shape: [3, 32, 32], images, labels, classes: kind.classes() })
    }

    /// Loads one split of an IDX dataset from `dir`.
    pub fn load_idx(kind: DatasetKind, dir: &Path, split: Split) -> Result<Self, DataError> {
        if !dir.is_dir() {
            return Err(DataError::DirMissing { path: dir.to_owned(), dataset: kind.name().into() });
        }
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let find = |stem: String| {
            [dir.join(format!("{stem}.gz")), dir.join(&stem)].into_iter().find(|p| p.is_file()).ok_or_else(|| {
                DataError::FileMissing { dir: dir.to_owned(), file: format!("`{stem}` (plain or .gz)"), dataset: kind.name().into() }
            })
        };
        let images_path = find(format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find(format!("{prefix}-labels-idx1-ubyte"))?;
        let images = idx::read_idx(&images_path, 3)?;
        let labels = idx::read_idx(&labels_path, 1)?;
        let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
        if labels.dims[0] != n {
            return Err(DataError::corrupt(
                &labels_path,
                format!("{} labels but `{}` has {n} images", labels.dims[0], images_path.display()),
            ));
        }
        let classes = kind.classes().len();
        if let Some(bad) = labels.data.iter().position(|&l| usize::from(l) >= classes) {
            return Err(DataError::corrupt(&labels_path, format!("label {} at index {bad} is not below {classes}", labels.data[bad])));
        }
        Ok(Self { kind, split, shape: [1, h, w], images: images.data, labels: labels.data.into_iter().map(Label::from).collect(), classes: kind.classes() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use advlens_shared::analysis::metrics::class_similarity;

    #[test]
    fn cifar10_hierarchy_covers_the_classes_and_ranks_similarity_sensibly() {
        let kind = DatasetKind::Cifar10;
        let h = kind.hierarchy();
        let classes = kind.classes();
        assert!(classes.iter().all(|c| h.contains_key(c)), "every class has a parent");
        let a = class_similarity(&classes, &h);
        let at = |x: &str, y: &str| a[classes.iter().position(|c| c == x).unwrap()][classes.iter().position(|c| c == y).unwrap()];
        assert!(at("cat", "dog") > at("cat", "frog"));
        assert!(at("cat", "frog") > at("cat", "truck"));
        assert!(at("automobile", "truck") > at("automobile", "ship"));
        assert!(at("automobile", "ship") > at("automobile", "horse"));
        assert!(DatasetKind::Mnist.hierarchy().is_empty());
    }
}
