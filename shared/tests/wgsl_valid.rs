//! Every WGSL kernel parses and validates with naga: shader errors show up without a GPU.

#[test]
fn every_kernel_validates() {
    for (entry, source) in advlens_shared::engine::gpu::KERNELS {
        let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{entry}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{entry}: {e:?}"));
        assert!(module.entry_points.iter().any(|ep| ep.name == entry), "{entry} is not an entry point of its file");
    }
}
