//! Links the cross-crate tests against libtorch like the trainer (see trainer/build/link.rs).

#[path = "../trainer/build/link.rs"]
mod link;

fn main() {
    link::libtorch();
}
