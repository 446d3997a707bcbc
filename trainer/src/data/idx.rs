//! The IDX format of MNIST and Fashion-MNIST, plain or gzipped.
//!
//! Layout: `0x00 0x00 <dtype> <ndims>`, then `ndims` big-endian u32 sizes, then the data.
//! We read unsigned bytes (dtype 0x08) only, which is what both datasets use.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// An IDX array of bytes.
#[derive(Debug)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const DTYPE_U8: u8 = 0x08;

/// Reads an IDX file with `expected_dims` dimensions, gunzipping it when it is gzipped.
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_owned(), source })?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::corrupt(path, format!("gzip stream is broken ({e})")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, expected_dims).map_err(|problem| DataError::corrupt(path, problem))
}

/// Parses IDX bytes; the error is a description of what is wrong.
pub fn parse_idx(bytes: &[u8], expected_dims: usize) -> Result<IdxArray, String> {
    let Some(header) = bytes.get(..4) else {
        return Err(format!("{} bytes is too short for an IDX header", bytes.len()));
    };
    if header[0] != 0 || header[1] != 0 {
        return Err(format!("bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file", header[0], header[1], header[2], header[3]));
    }
    if header[2] != DTYPE_U8 {
        return Err(format!("element type 0x{:02x} is not unsigned byte (0x08)", header[2]));
    }
    let ndims = usize::from(header[3]);
    if ndims != expected_dims {
        return Err(format!("{ndims} dimensions, expected {expected_dims}"));
    }
    let Some(dim_bytes) = bytes.get(4..4 + 4 * ndims) else {
        return Err("truncated in the dimension sizes".into());
    };
    let dims: Vec<usize> =
        dim_bytes.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let len = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("dimension sizes overflow")?;
    let data = &bytes[4 + 4 * ndims..];
    if data.len() != len {
        return Err(format!(
            "dimensions {dims:?} need {len} bytes of data, the file has {} ({})",
            data.len(),
            if data.len() < len { "truncated" } else { "trailing bytes" }
        ));
    }
    Ok(IdxArray { dims, data: data.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, DTYPE_U8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    #[test]
    fn parses_a_small_array() {
        let a = parse_idx(&idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), 3).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
    }

    #[test]
    fn rejects_bad_magic_truncation_and_wrong_rank() {
        let mut bad = idx(&[1], &[5]);
        bad[0] = 7;
        assert!(parse_idx(&bad, 1).unwrap_err().contains("bad magic"));
        assert!(parse_idx(&idx(&[4], &[1, 2]), 1).unwrap_err().contains("truncated"));
        assert!(parse_idx(&idx(&[2], &[1, 2]), 3).unwrap_err().contains("expected 3"));
        assert!(parse_idx(&[0, 0], 1).unwrap_err().contains("too short"));
        assert!(parse_idx(&idx(&[1], &[1, 2]), 1).unwrap_err().contains("trailing"));
    }

    #[test]
    fn reads_gzipped_files_and_reports_broken_gzip() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(&[3], &[7, 8, 9])).unwrap();
        let bytes = gz.finish().unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_idx(&path, 1).unwrap().data, vec![7, 8, 9]);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_idx(&path, 1).unwrap_err().to_string();
        assert!(err.contains("x.gz") && err.contains("gzip"), "{err}");
    }
}
