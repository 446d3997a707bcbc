//! Feeds arbitrary bytes to the readers of `atlas.json` and `samples.json`; each must return
//! `Ok` or `Err`, never panic, overflow or allocate without bound, and what they accept must be
//! usable: every sheet cell, description and image batch of it computes. Input layout: one
//! selector byte (even: atlas, with `byte / 2 % 12` as the model's class count, 0 for none;
//! odd: samples), then the JSON.
#![no_main]

use advlens_shared::analysis::atlas::AtlasMeta;
use advlens_shared::model::SampleSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else { return };
    if selector % 2 == 0 {
        let classes = usize::from(selector / 2 % 12);
        if let Ok(meta) = AtlasMeta::from_json(json, (classes > 0).then_some(classes)) {
            let _ = meta.sheet_size();
            for row in 0..meta.neurons.len() {
                let _ = meta.describe(row);
                let _ = meta.cell_origin(row, meta.top_k - 1);
                let _ = meta.row_of(meta.neurons[row].stats.channel);
            }
        }
    } else if let Ok(set) = SampleSet::from_json(json) {
        let _ = set.batch();
    }
});
