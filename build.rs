//! Rebuild when anything under assets/ changes, including added or removed files (rust-embed
//! only tracks the files that existed at the previous build).
fn main() {
    println!("cargo:rerun-if-changed=assets");
}
