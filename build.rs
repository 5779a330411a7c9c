//! Prepares the browser UI for embedding: every file under `assets/` is copied to
//! `$OUT_DIR/ui/`, the text ones (HTML, CSS, JavaScript, JSON, SVG, the manifest) gzipped
//! under their name plus `.gz`, and `$OUT_DIR/ui.rs` declares the rust-embed struct over
//! that folder (`src/assets.rs` includes it). The sources stay as they are written; the
//! server sends the gzipped bytes to browsers that accept them and unpacks them for the
//! rest, so the binary and the transfers both carry a third of the text.
//!
//! Cargo runs this again when anything under `assets/` changes, files added or removed
//! included.

use std::io::Write;
use std::path::{Path, PathBuf};

/// File endings that are text and worth compressing.
const TEXT: &[&str] = &["html", "css", "js", "json", "svg", "webmanifest", "txt"];

fn main() {
    println!("cargo:rerun-if-changed=assets");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ui = out.join("ui");
    if ui.exists() {
        std::fs::remove_dir_all(&ui).expect("clear the previous UI copy");
    }
    copy_tree(Path::new("assets"), &ui);
    let folder = ui.to_str().expect("OUT_DIR is UTF-8");
    let source = format!(
        "/// The UI, gzipped where that helps (see build.rs).\n\
         #[derive(rust_embed::Embed)]\n\
         #[folder = {folder:?}]\n\
         struct Assets;\n"
    );
    std::fs::write(out.join("ui.rs"), source).expect("write ui.rs");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the UI folder");
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .expect("read assets/")
        .map(|e| e.expect("read an entry of assets/").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().expect("a file name");
        if path.is_dir() {
            copy_tree(&path, &to.join(name));
            continue;
        }
        let bytes = std::fs::read(&path).expect("read an asset");
        let text = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TEXT.contains(&e));
        if text {
            // No name and a zero time in the header: the same input gives the same bytes.
            let mut gz = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::best());
            gz.write_all(&bytes).expect("gzip an asset");
            let packed = gz.finish().expect("gzip an asset");
            let mut packed_name = name.to_os_string();
            packed_name.push(".gz");
            std::fs::write(to.join(packed_name), packed).expect("write an asset");
        } else {
            std::fs::write(to.join(name), bytes).expect("write an asset");
        }
    }
}
