//! CIFAR-10's official binary batches (`cifar-10-batches-bin`): records of one label byte and
//! 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each row-major 32x32).

use std::path::{Path, PathBuf};

use super::DataError;

/// Bytes per record: label + 3 x 32 x 32 pixels.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// The batch files of a split.
pub fn batch_files(dir: &Path, train: bool) -> Vec<PathBuf> {
    if train {
        (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).collect()
    } else {
        vec![dir.join("test_batch.bin")]
    }
}

/// Reads batch files into CHW pixels and labels.
pub fn read_batches(files: &[PathBuf]) -> Result<(Vec<u8>, Vec<super::Label>), DataError> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.clone(), source })?;
        parse_batch(&bytes, &mut images, &mut labels).map_err(|problem| DataError::Corrupt { path: path.clone(), problem })?;
    }
    Ok((images, labels))
}

/// Appends the records of one batch; the error says what is wrong.
pub fn parse_batch(bytes: &[u8], images: &mut Vec<u8>, labels: &mut Vec<super::Label>) -> Result<(), String> {
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(format!("{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated?)", bytes.len()));
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] >= 10 {
            return Err(format!("record {i} has label {}, CIFAR-10 labels are 0..=9", record[0]));
        }
        labels.push(super::Label::from(record[0]));
        images.extend_from_slice(&record[1..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_rejects_truncation_and_bad_labels() {
        let mut batch = vec![0u8; 2 * RECORD];
        batch[0] = 3;
        batch[1] = 200; // first red pixel of record 0
        batch[RECORD] = 9;
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        parse_batch(&batch, &mut images, &mut labels).unwrap();
        assert_eq!(labels, vec![3, 9]);
        assert_eq!(images.len(), 2 * 3072);
        assert_eq!(images[0], 200);
        assert!(parse_batch(&batch[..RECORD + 5], &mut images, &mut labels).unwrap_err().contains("truncated"));
        batch[RECORD] = 12;
        assert!(parse_batch(&batch, &mut Vec::new(), &mut Vec::new()).unwrap_err().contains("label 12"));
    }
}
