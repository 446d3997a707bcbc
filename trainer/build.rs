// Without these flags the binary has no rpath to libtorch and, worse, the linker drops
// libtorch_cuda as "unused", so CUDA is silently never used on a GPU machine.
fn main() {
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={}", lib.to_string_lossy());
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
