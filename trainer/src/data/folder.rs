//! Image folders: one sub-folder per class (class names = folder names, sorted), PNG or JPEG
//! files of any size.
//!
//! Resize policy: an image whose size differs from the target is scaled (bilinear) so that its
//! shorter side equals the target side, then centre-cropped to a square. Grey images are
//! replicated to three channels when the target has three, RGB is averaged when it has one.

use std::path::{Path, PathBuf};

use super::{DataError, Label};

/// Largest side a folder dataset is trained at (its first image's side). The explorer opens
/// models up to 512x512; a 5000x5000 first image once made every image of the folder that big.
pub const MAX_DATASET_SIDE: usize = 512;
/// Most pixels (width x height) of any image this command decodes: 64 Mpx, e.g. 8192x8192.
pub const MAX_DECODED_PIXELS: u64 = 64 << 20;

/// Opens an image after checking its size in the header, decoding with a memory cap: a
/// hostile or huge file is refused with its size, never decoded at any cost.
pub fn open_image(path: &Path) -> Result<image::DynamicImage, DataError> {
    let corrupt = |problem: String| DataError::Corrupt { path: path.to_owned(), problem };
    let (w, h) = image::image_dimensions(path).map_err(|e| corrupt(format!("cannot decode image: {e}")))?;
    if u64::from(w) * u64::from(h) > MAX_DECODED_PIXELS {
        return Err(corrupt(format!("the image is {w}x{h}: more than {} megapixels, refused; resize it first", MAX_DECODED_PIXELS >> 20)));
    }
    let mut reader = image::ImageReader::open(path)
        .map_err(|source| DataError::Io { path: path.to_owned(), source })?
        .with_guessed_format()
        .map_err(|source| DataError::Io { path: path.to_owned(), source })?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_PIXELS * 8);
    reader.limits(limits);
    reader.decode().map_err(|e| corrupt(format!("cannot decode image: {e}")))
}

/// The class folders of `dir`, sorted by name.
pub fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io { path: dir.to_owned(), source })?;
    let mut classes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io { path: dir.to_owned(), source })?;
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Class names are printed and end up in bundles: a newline or escape in one would
            // fake lines of output, so such a folder is refused, its name shown escaped.
            if name.chars().any(char::is_control) {
                return Err(DataError::Corrupt { path: dir.to_owned(), problem: format!("class folder {name:?} has control characters in its name: rename it") });
            }
            classes.push((name, entry.path()));
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::Corrupt { path: dir.to_owned(), problem: "no class sub-folders (expected one folder per class)".into() });
    }
    Ok(classes)
}

/// The order in which a folder dataset is presented: classes interleaved round-robin (the first
/// image of every class, then the second, ...), each class in file-name order. Folders list one
/// class after another; interleaving makes every prefix (`--limit N`) class-balanced.
/// `labels` are in folder order; the result lists folder positions.
pub fn interleaved_order(labels: &[Label]) -> Vec<usize> {
    let classes = labels.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0);
    let mut by_class: Vec<std::collections::VecDeque<usize>> = vec![Default::default(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[usize::from(l)].push_back(i);
    }
    let mut order = Vec::with_capacity(labels.len());
    while order.len() < labels.len() {
        for queue in by_class.iter_mut() {
            if let Some(i) = queue.pop_front() {
                order.push(i);
            }
        }
    }
    order
}

/// Reorders images (`per` bytes each) and labels by `order`.
pub fn reorder(images: &[u8], labels: &[Label], per: usize, order: &[usize]) -> (Vec<u8>, Vec<Label>) {
    let imgs = order.iter().flat_map(|&i| images[i * per..(i + 1) * per].iter().copied()).collect();
    (imgs, order.iter().map(|&i| labels[i]).collect())
}

/// The PNG and JPEG files of `folder`, sorted by name.
fn image_files(folder: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|source| DataError::Io { path: folder.to_owned(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")))
        .collect();
    files.sort();
    Ok(files)
}

/// The width of the first image (by name) of the first class folder of `dir`.
pub fn first_image_side(dir: &Path) -> Result<usize, DataError> {
    let classes = class_folders(dir)?;
    let (_, folder) = &classes[0];
    let files = image_files(folder)?;
    let first = files.first().ok_or_else(|| DataError::Corrupt { path: folder.clone(), problem: "no PNG or JPEG images".into() })?;
    let (w, h) = image::image_dimensions(first).map_err(|e| DataError::Corrupt { path: first.clone(), problem: format!("cannot decode: {e}") })?;
    if w as usize > MAX_DATASET_SIDE || h as usize > MAX_DATASET_SIDE {
        return Err(DataError::Corrupt {
            path: first.clone(),
            problem: format!(
                "the first image is {w}x{h}, and a folder dataset is trained at its first image's size, at most {MAX_DATASET_SIDE} pixels a side: resize the images (32x32 or 64x64 train quickly)"
            ),
        });
    }
    Ok(w as usize)
}

/// Loads every image of every class folder as `[channels, side, side]` bytes, in
/// [`interleaved_order`].
pub fn load(dir: &Path, channels: usize, side: usize) -> Result<(Vec<String>, Vec<u8>, Vec<Label>), DataError> {
    let classes = class_folders(dir)?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (label, (name, folder)) in classes.iter().enumerate() {
        let files = image_files(folder)?;
        if files.is_empty() {
            return Err(DataError::Corrupt { path: folder.clone(), problem: format!("class folder `{name}` has no PNG or JPEG images") });
        }
        for file in files {
            images.extend(decode(&file, channels, side)?);
            labels.push(Label::try_from(label).map_err(|_| DataError::Corrupt { path: dir.to_owned(), problem: format!("more than {} classes", Label::MAX) })?);
        }
    }
    let (images, labels) = reorder(&images, &labels, channels * side * side, &interleaved_order(&labels));
    Ok((classes.into_iter().map(|(n, _)| n).collect(), images, labels))
}

/// One image as CHW bytes of `channels x side x side`, after the resize policy above.
pub fn decode(path: &Path, channels: usize, side: usize) -> Result<Vec<u8>, DataError> {
    let image = open_image(path)?;
    let rgb = image.to_rgb8();
    let rgb = if rgb.width() as usize == side && rgb.height() as usize == side {
        rgb
    } else {
        let (w, h) = (rgb.width() as f64, rgb.height() as f64);
        let scale = side as f64 / w.min(h);
        let (nw, nh) = (((w * scale).round() as u32).max(side as u32), ((h * scale).round() as u32).max(side as u32));
        let scaled = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
        let (x, y) = ((nw - side as u32) / 2, (nh - side as u32) / 2);
        image::imageops::crop_imm(&scaled, x, y, side as u32, side as u32).to_image()
    };
    let plane = side * side;
    let mut out = vec![0u8; channels * plane];
    for (i, px) in rgb.pixels().enumerate() {
        if channels == 1 {
            out[i] = ((u16::from(px[0]) + u16::from(px[1]) + u16::from(px[2])) / 3) as u8;
        } else {
            for c in 0..3 {
                out[c * plane + i] = px[c];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn interleaving_balances_every_prefix() {
        let labels: [Label; 6] = [0, 0, 0, 1, 1, 2];
        assert_eq!(interleaved_order(&labels), vec![0, 3, 5, 1, 4, 2]);
        let (imgs, l) = reorder(&[10, 11, 12, 13, 14, 15], &labels, 1, &interleaved_order(&labels));
        assert_eq!((imgs, l), (vec![10, 13, 15, 11, 14, 12], vec![0, 1, 2, 0, 1, 0]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_class_folders_resizes_and_reports_bad_images() {
        let dir = tempfile::tempdir().unwrap();
        for (class, colour) in [("cat", [200u8, 10, 10]), ("dog", [10, 10, 200])] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            // 40x20: scaled to 64x32, centre-cropped to 32x32.
            image::RgbImage::from_pixel(40, 20, image::Rgb(colour)).save(dir.path().join(class).join("a.png")).unwrap();
        }
        let (classes, images, labels) = load(dir.path(), 3, 32).unwrap();
        assert_eq!(classes, vec!["cat", "dog"]);
        assert_eq!(labels, vec![0, 1]);
        assert_eq!(images.len(), 2 * 3 * 32 * 32);
        assert_eq!((images[0], images[2 * 1024]), (200, 10), "cat is red, CHW order");
        assert_eq!(images[3 * 1024 + 2 * 1024], 200, "dog is blue");

        std::fs::write(dir.path().join("dog").join("broken.jpg"), b"not a jpeg").unwrap();
        let err = load(dir.path(), 3, 32).unwrap_err().to_string();
        assert!(err.contains("broken.jpg") && err.contains("cannot decode"), "{err}");
        std::fs::remove_file(dir.path().join("dog").join("broken.jpg")).unwrap();

        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let err = load(dir.path(), 3, 32).unwrap_err().to_string();
        assert!(err.contains("`empty`") && err.contains("no PNG or JPEG"), "{err}");
    }
}
