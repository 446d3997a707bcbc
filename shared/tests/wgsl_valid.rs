//! Every WGSL kernel parses and validates with naga: shader errors show up without a GPU.

#[test]
fn every_kernel_validates() {
    for &(entry, source) in advlens_shared::engine::gpu::KERNELS {
        let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{entry}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{entry}: {e:?}"));
        assert!(module.entry_points.iter().any(|ep| ep.name == entry), "{entry} is not an entry point of its file");
    }
}

/// Each kernel's typed parameter block (`engine::gpu::kernels`) has the fields of the shader's
/// uniform struct at binding 4, in the same order, and its size: a field added, dropped or
/// moved on one side only fails here instead of feeding a kernel the wrong numbers.
#[test]
fn every_kernels_parameter_block_matches_its_shader_struct() {
    let layouts = advlens_shared::engine::gpu::kernels::param_layouts();
    assert_eq!(layouts.len(), advlens_shared::engine::gpu::KERNELS.len(), "every kernel has a parameter type");
    for layout in layouts {
        let module = naga::front::wgsl::parse_str(layout.source).expect("validated above");
        let uniform = module
            .global_variables
            .iter()
            .map(|(_, v)| v)
            .find(|v| v.space == naga::AddressSpace::Uniform && v.binding.as_ref().is_some_and(|b| b.group == 0 && b.binding == 4))
            .unwrap_or_else(|| panic!("{}: no uniform at @group(0) @binding(4)", layout.entry));
        let naga::TypeInner::Struct { members, span } = &module.types[uniform.ty].inner else {
            panic!("{}: the uniform is not a struct", layout.entry)
        };
        let names: Vec<&str> = members.iter().map(|m| m.name.as_deref().unwrap_or("?")).collect();
        assert_eq!(names, layout.fields, "{}: the shader's fields differ from the Rust block's", layout.entry);
        assert_eq!(*span as usize, layout.size, "{}: the shader's struct size differs from the Rust block's", layout.entry);
    }
}
