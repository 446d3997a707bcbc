//! Replays every input the fuzzer ever crashed on (`tests/fuzz_regressions/`) and the seed
//! corpus through the loader: each must load or fail with an error, never panic.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

use advlens_shared::Bundle;

fn replay(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
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
