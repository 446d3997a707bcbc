//! Linking against libtorch, shared by the trainer's and the cross-crate tests' build scripts.

use std::path::PathBuf;

/// Without these flags the binary has no rpath to libtorch and, worse, the linker drops
/// libtorch_cuda as "unused", so CUDA is silently never used on a GPU machine. Returns
/// libtorch's library folder.
pub fn libtorch() -> Option<PathBuf> {
    let lib = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from);
    if let Some(lib) = &lib {
        println!("cargo:rustc-link-arg=-Wl,-rpath={}", lib.display());
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    lib
}
