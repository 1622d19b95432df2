//! Hands the target triple this crate is compiled for to the code: plugins are built for
//! the host's own target, and dist/ records it beside each library.

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=JITNODE_HOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
