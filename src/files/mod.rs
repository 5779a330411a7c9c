//! Stored files. Each file is kept once in the uploads folder, named after the SHA-256 of its
//! bytes (`ab/abcdef…`); the database says which uploads use it.
//!
//! - An upload is written to `tmp/` while it arrives, hashed on the way, flushed to disk, and
//!   only then moved to its place by the writer thread in the transaction that records it
//!   ([`Files::settle`]). A crash mid-upload leaves a file in `tmp/`, which the next start
//!   empties; a crash between the move and the commit leaves a file nobody uses, which the
//!   orphan sweep removes.
//! - Removing a file that lost its last upload also runs on the writer thread
//!   ([`Files::collect`]), so it is ordered with the moves: a new upload of the same bytes
//!   either finds the file still there or puts it back.
//! - [`image`]: recognising images, measuring them, dropping their location metadata and
//!   making thumbnails.

pub mod image;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// The uploads folder.
#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    tmp: PathBuf,
}

/// A file being written in `tmp/`: removed when dropped unless it was handed on.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Take the path; the file is no longer removed on drop.
    fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Whether `s` is a SHA-256 in lower-case hex: the only names files have here.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Files {
    /// Open (creating) the folder `root` and empty its `tmp/` of what a crash left there.
    pub fn open(root: &Path) -> io::Result<Files> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| {
            io::Error::new(e.kind(), format!("uploads folder {}: {e}", root.display()))
        })?;
        for entry in std::fs::read_dir(&tmp)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(Files {
            root: root.to_path_buf(),
            tmp,
        })
    }

    /// The folder `root` as it is, touching nothing on disk (for reading another process's
    /// files: opening would empty a running server's `tmp/`).
    pub fn at(root: &Path) -> Files {
        Files {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with hash `sha256` lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// A new, empty file in `tmp/`.
    pub fn temp(&self) -> io::Result<(TempFile, std::fs::File)> {
        let mut raw = [0u8; 12];
        getrandom::fill(&mut raw).map_err(|e| io::Error::other(e.to_string()))?;
        let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.tmp.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((TempFile { path: Some(path) }, file))
    }

    /// Put the finished temporary file `temp` (its bytes hash to `sha256`, and are on disk)
    /// in its place, or drop it when that file is there already. Writer thread only.
    pub fn settle(&self, temp: TempFile, sha256: &str) -> io::Result<()> {
        let dest = self.path_of(sha256);
        if dest.is_file() {
            return Ok(()); // `temp` is removed as it drops
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(temp.path(), &dest)?;
        temp.keep();
        Ok(())
    }

    /// Remove each file of `hashes` that `in_use` says nothing uses (the store answers it).
    /// Writer thread only.
    pub fn collect<E>(
        &self,
        hashes: &[String],
        mut in_use: impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<usize, E> {
        let mut removed = 0;
        for h in hashes.iter().filter(|h| is_hash(h)) {
            if !in_use(h)? {
                match std::fs::remove_file(self.path_of(h)) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!("could not remove file {h}: {e}"),
                }
            }
        }
        Ok(removed)
    }

    /// The hashes of every stored file.
    pub fn stored(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(&self.root)?.flatten() {
            let name = dir.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 2 || !dir.path().is_dir() {
                continue;
            }
            for f in std::fs::read_dir(dir.path())?.flatten() {
                if let Some(h) = f.file_name().to_str().filter(|h| is_hash(h)) {
                    out.push(h.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Remove every stored file that `in_use` does not hold (left by a crash between a move
    /// and its commit); how many. Writer thread only.
    pub fn remove_orphans(&self, in_use: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for h in self.stored()? {
            if !in_use.contains(&h) && std::fs::remove_file(self.path_of(&h)).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A file name as Hearth keeps it: its last path component, without control characters,
/// trimmed, at most 255 characters; `file` when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .take(255)
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    if trimmed.is_empty() {
        "file".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The media type an upload is recorded with: `declared` when it is a well-formed
/// `type/subtype` (parameters dropped, lower case), else `application/octet-stream`.
pub fn clean_type(declared: Option<&str>) -> String {
    let Some(t) = declared else {
        return "application/octet-stream".into();
    };
    let t = t
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.split_once('/') {
        Some((a, b)) if token(a) && token(b) => t,
        _ => "application/octet-stream".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("photo.png"), "photo.png");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\a\\doc.pdf"), "doc.pdf");
        assert_eq!(clean_name("a\u{0}b\nc\u{202e}gnp.exe"), "abcgnp.exe");
        assert_eq!(clean_name("  "), "file");
        assert_eq!(clean_name(".htaccess"), "htaccess");
        assert_eq!(clean_name(&"x".repeat(300)).chars().count(), 255);
    }

    #[test]
    fn types_are_checked() {
        assert_eq!(clean_type(Some("text/plain; charset=utf-8")), "text/plain");
        assert_eq!(clean_type(Some("Image/PNG")), "image/png");
        assert_eq!(clean_type(Some("nonsense")), "application/octet-stream");
        assert_eq!(clean_type(Some("a/b\r\nx: y")), "application/octet-stream");
        assert_eq!(clean_type(None), "application/octet-stream");
    }

    #[test]
    fn settle_moves_a_new_file_and_drops_a_known_one() {
        let dir = std::env::temp_dir().join(format!("hearth-files-{}", std::process::id()));
        let files = Files::open(&dir).unwrap();
        let h = "ab".repeat(32);
        let (t, mut f) = files.temp().unwrap();
        std::io::Write::write_all(&mut f, b"one").unwrap();
        let tp = t.path().to_path_buf();
        files.settle(t, &h).unwrap();
        assert!(!tp.exists());
        assert_eq!(std::fs::read(files.path_of(&h)).unwrap(), b"one");
        let (t, _) = files.temp().unwrap();
        let tp = t.path().to_path_buf();
        files.settle(t, &h).unwrap();
        assert!(!tp.exists(), "a duplicate is dropped");
        assert_eq!(files.stored().unwrap(), vec![h.clone()]);
        assert_eq!(
            files
                .collect(std::slice::from_ref(&h), |_| Ok::<
                    _,
                    std::convert::Infallible,
                >(true))
                .unwrap(),
            0
        );
        assert_eq!(
            files
                .collect(std::slice::from_ref(&h), |_| Ok::<
                    _,
                    std::convert::Infallible,
                >(false))
                .unwrap(),
            1
        );
        assert!(files.stored().unwrap().is_empty());
        let (t, _) = files.temp().unwrap();
        let left = t.path().to_path_buf();
        std::mem::forget(t);
        Files::open(&dir).unwrap();
        assert!(!left.exists(), "opening empties tmp/");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
