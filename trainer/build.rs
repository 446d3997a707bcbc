//! Links libtorch (with an rpath) and builds the c10d shim for `advlens train --distributed`.
//!
//! The shim (csrc/c10d_shim.cpp) is compiled against the same libtorch headers tch uses. It needs
//! gloo's headers, which the torch wheel does not ship: they come from the system (Debian:
//! `libgloo-dev`, installed by scripts/setup.sh) or from `ADVLENS_GLOO_INCLUDE`. Without them
//! the trainer builds without distributed support and `--distributed` says how to get it.
use std::path::{Path, PathBuf};

#[path = "build/link.rs"]
mod link;

fn main() {
    let lib = link::libtorch();

    println!("cargo::rustc-check-cfg=cfg(advlens_c10d)");
    println!("cargo:rerun-if-changed=csrc/c10d_shim.cpp");
    println!("cargo:rerun-if-env-changed=ADVLENS_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=ADVLENS_NO_C10D");
    if std::env::var_os("ADVLENS_NO_C10D").is_some() {
        return;
    }
    let Some(torch_include) = lib.as_deref().and_then(|l| l.parent()).map(|p| p.join("include")) else {
        println!("cargo:warning=libtorch's headers not found: building without --distributed");
        return;
    };
    let Some(gloo) = gloo_include() else {
        println!("cargo:warning=gloo headers not found (Debian: apt-get install libgloo-dev, or set ADVLENS_GLOO_INCLUDE): building without --distributed");
        return;
    };
    cc::Build::new()
        .cpp(true)
        .file("csrc/c10d_shim.cpp")
        .include(&torch_include)
        .include(torch_include.join("torch/csrc/api/include"))
        .include(&gloo)
        .flag("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .warnings(false)
        .compile("advlens_c10d");
    // libtorch_cpu holds c10d and the gloo it was built with.
    if let Some(lib) = &lib {
        println!("cargo:rustc-link-search=native={}", lib.display());
    }
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-cfg=advlens_c10d");
}

fn gloo_include() -> Option<PathBuf> {
    let candidates = std::env::var_os("ADVLENS_GLOO_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/include", "/usr/local/include"].map(PathBuf::from));
    candidates.into_iter().find(|dir| Path::new(dir).join("gloo/algorithm.h").exists())
}
