//! Replays every input the fuzzers ever crashed on (`tests/fuzz_regressions/`,
//! `tests/fuzz_regressions_atlas_samples/`) and their corpora through the readers: each must
//! load or fail with an error, never panic. The corpora hold the seeds and what the fuzzers kept.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

use advlens_shared::analysis::atlas::AtlasMeta;
use advlens_shared::model::SampleSet;
use advlens_shared::Bundle;

fn replay(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut count = 0;
    for entry in entries {
        // A fuzzer running beside the tests may delete corpus files as it reduces them.
        let Ok(data) = std::fs::read(entry.unwrap().path()) else { continue };
        let Some((len, rest)) = data.split_first_chunk::<2>() else { continue };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (json, weights) = rest.split_at(len);
        let _ = Bundle::from_bytes(json, weights);
        count += 1;
    }
    count
}

#[test]
fn fuzz_regressions_and_seeds_load_or_fail_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = replay(&root.join("fuzz/corpus/bundle_loader"));
    replay(&root.join("tests/fuzz_regressions"));
    assert!(seeds >= 3, "the fuzz seed corpus is missing: run the write_fuzz_seeds example");
}

/// The `atlas_samples` target's input layout (see its source); returns how many were accepted.
fn replay_atlas_samples(dir: &Path) -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    let (mut count, mut accepted) = (0, 0);
    for entry in entries {
        let Ok(data) = std::fs::read(entry.unwrap().path()) else { continue };
        let Some((&selector, json)) = data.split_first() else { continue };
        let ok = if selector % 2 == 0 {
            let classes = usize::from(selector / 2 % 12);
            AtlasMeta::from_json(json, (classes > 0).then_some(classes)).map(|m| m.sheet_size()).is_ok()
        } else {
            SampleSet::from_json(json).and_then(|s| s.batch()).is_ok()
        };
        count += 1;
        accepted += usize::from(ok);
    }
    (count, accepted)
}

#[test]
fn atlas_and_samples_corpus_and_regressions_read_or_fail_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (seen, accepted) = replay_atlas_samples(&root.join("fuzz/corpus/atlas_samples"));
    replay_atlas_samples(&root.join("tests/fuzz_regressions_atlas_samples"));
    // The seeds are trimmed copies of the shipped models' files: valid, so they must be read.
    assert!(seen >= 12 && accepted >= 12, "{accepted} of {seen} corpus inputs accepted");
}

#[test]
fn hostile_atlas_and_sample_sizes_are_errors_not_overflows() {
    // `patch` = 2^62 once overflowed computing the sheet size.
    let atlas = br#"{"model":"m","layer":"relu2","classes":["a","b"],"patch":4611686018427387904,"receptive_field":1.0,"top_k":10,"neurons":[]}"#;
    let m = AtlasMeta::from_json(atlas, Some(2)).unwrap_err().to_string();
    assert!(m.starts_with("atlas.json: implausible sizes"), "{m}");
    let many = br#"{"model":"m","layer":"relu2","classes":["a","b"],"patch":1000,"receptive_field":1.0,"top_k":1000,"neurons":[]}"#;
    assert!(AtlasMeta::from_json(many, Some(2)).unwrap_err().to_string().contains("32767 pixels"));
    let other = br#"{"model":"m","layer":"relu2","classes":["a","b","c"],"patch":8,"receptive_field":1.0,"top_k":10,"neurons":[]}"#;
    assert!(AtlasMeta::from_json(other, Some(2)).unwrap_err().to_string().contains("another model"));
    let samples = br#"{"dataset":"x","split":"test","shape":[4611686018427387904,4,1],"samples":[]}"#;
    let m = SampleSet::from_json(samples).unwrap_err().to_string();
    assert!(m.starts_with("samples.json: implausible image shape"), "{m}");
}

#[test]
fn onnx_corpus_imports_or_fails_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut imported = 0;
    for dir in ["fuzz/corpus/onnx_import", "tests/fuzz_regressions_onnx"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries {
            let Ok(data) = std::fs::read(entry.unwrap().path()) else { continue };
            imported += usize::from(advlens_shared::onnx::import(&data, &Default::default()).is_ok());
        }
    }
    // The seeds are small models from both of PyTorch's exporters: they must import.
    assert!(imported >= 2, "only {imported} corpus models imported");
}

/// Release builds check arithmetic overflow as debug builds do, so that a size read from a
/// file can never wrap around silently in release only (`overflow-checks` in Cargo.toml's
/// release profile). The explicit checks above make such sizes errors in both.
#[test]
fn release_profile_checks_overflow_like_debug() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml")).unwrap();
    let release = manifest.split("[profile.release]").nth(1).expect("a [profile.release] section");
    let section = release.split("\n[").next().unwrap();
    assert!(section.lines().any(|l| l.replace(' ', "") == "overflow-checks=true"), "[profile.release] must set overflow-checks = true");
    let max = std::hint::black_box(usize::MAX);
    assert!(std::panic::catch_unwind(|| max + std::hint::black_box(1)).is_err(), "this build wraps on overflow");
}
