//! Stored files. Each file is kept once in the uploads folder, named after the SHA-256 of its
//! bytes (`ab/abcdef…`); the database says which uploads use it.
//!
//! - An upload is written to `tmp/` while it arrives, hashed on the way, flushed to disk, and
//!   only then moved to its place by the writer thread in the transaction that records it
//!   ([`Files::settle`]). A crash mid-upload leaves a file in `tmp/`, which the next start
//!   empties; a crash between the move and the commit leaves a file nobody uses, which the
//!   orphan sweep removes.
//! - Removing a file that lost its last upload also runs on the writer thread
//!   ([`Files::collect`]), between two of its transactions, so it is ordered with the moves
//!   (a new upload of the same bytes either finds the file still there or puts it back) and
//!   sees only committed rows (a transaction that fails cannot bring back a row naming a
//!   file already removed).
//! - Several nodes sharing one folder (cluster mode, [`Files::open_shared`]) have one writer
//!   each, and a node's removal cannot see another node's rows before they commit. There a
//!   file that is reused is replaced by the new copy (the same bytes, just written), and a
//!   removal leaves alone every file written within [`SHARED_GRACE`]: it moves the file
//!   aside, looks at its time again, and puts it back when a reuse came in between. What is
//!   left alone goes at a later sweep; what a crash left aside, the sweep puts back when a
//!   row names it.
//!   `tmp/` keeps other nodes' uploads in progress: only what is older than
//!   [`SHARED_TMP_AGE`] is removed from it.
//! - [`image`]: recognising images, measuring them, dropping their location metadata and
//!   making thumbnails.

pub mod image;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// In a folder several nodes share, how long a stored file that was written (or replaced by
/// a reuse) is left alone by removals: longer than any batch between a node's move (or reuse) and its
/// commit, and longer than the nodes' clocks drift apart.
pub const SHARED_GRACE: Duration = Duration::from_secs(10 * 60);
/// In a folder several nodes share, how old a file in `tmp/` must be before it is taken for
/// a crash's leftover (an upload in progress on another node is written to, so it is young).
pub const SHARED_TMP_AGE: Duration = Duration::from_secs(60 * 60);

/// The uploads folder.
#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    tmp: PathBuf,
    /// Whether other nodes' writers move and remove files here too.
    shared: bool,
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
    /// Open (creating) the folder `root`, this server's alone, and empty its `tmp/` of what a
    /// crash left there.
    pub fn open(root: &Path) -> io::Result<Files> {
        Files::open_as(root, false)
    }

    /// Open (creating) the folder `root`, which other nodes' writers share, and remove from
    /// its `tmp/` what is older than [`SHARED_TMP_AGE`].
    pub fn open_shared(root: &Path) -> io::Result<Files> {
        Files::open_as(root, true)
    }

    fn open_as(root: &Path, shared: bool) -> io::Result<Files> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| {
            io::Error::new(e.kind(), format!("uploads folder {}: {e}", root.display()))
        })?;
        let files = Files {
            root: root.to_path_buf(),
            tmp,
            shared,
        };
        files.clear_tmp()?;
        Ok(files)
    }

    /// The folder `root` as it is, touching nothing on disk (for reading another process's
    /// files: opening would empty a running server's `tmp/`).
    pub fn at(root: &Path) -> Files {
        Files {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            shared: false,
        }
    }

    /// Remove what a crash left in `tmp/`: everything when the folder is this server's alone,
    /// what is older than [`SHARED_TMP_AGE`] when it is shared; how many.
    fn clear_tmp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp)?.flatten() {
            let path = entry.path();
            if self.shared && younger_than(&path, SHARED_TMP_AGE) {
                continue;
            }
            if aside_hash(&entry.file_name()).is_some() {
                continue; // a stored file moved aside: see `look_aside`
            }
            if std::fs::remove_file(path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
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
        let path = self.tmp.join(random_name()?);
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
        // In a shared folder a file already there is replaced all the same (the same bytes,
        // in one rename): the new copy, just written, is young, so another node's removal
        // leaves it alone until this node's row naming it is committed. (Touching the old
        // one instead could lose to a removal that unlinks it between the open and the
        // touch.)
        if !self.shared && dest.is_file() {
            return Ok(()); // `temp` is removed as it drops
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(temp.path(), &dest)?;
        temp.keep();
        Ok(())
    }

    /// Whether several nodes share the folder (see the module's notes).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Remove each file of `hashes` that `in_use` says nothing uses (the store answers it).
    /// Writer thread only, but in a shared folder.
    pub fn collect<E>(
        &self,
        hashes: &[String],
        mut in_use: impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<usize, E> {
        let mut removed = 0;
        for h in hashes.iter().filter(|h| is_hash(h)) {
            if !in_use(h)? {
                match self.remove_unused(h) {
                    Ok(gone) => removed += usize::from(gone),
                    Err(e) => tracing::warn!("could not remove file {h}: {e}"),
                }
            }
        }
        Ok(removed)
    }

    /// Remove the stored file `h`, which no committed row names; whether it went. In a shared
    /// folder a file written within [`SHARED_GRACE`] stays: another node may be about to
    /// commit a row naming it. The file is moved aside before its time is read again, so a
    /// reuse that replaced it after the first look is put back.
    fn remove_unused(&self, h: &str) -> io::Result<bool> {
        let path = self.path_of(h);
        let gone = |r: io::Result<()>| match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        };
        if !self.shared {
            return gone(std::fs::remove_file(&path));
        }
        if younger_than(&path, SHARED_GRACE) {
            return Ok(false);
        }
        let aside = self.tmp.join(format!("gone-{h}-{}", random_name()?));
        if !gone(std::fs::rename(&path, &aside))? {
            return Ok(false);
        }
        if younger_than(&aside, SHARED_GRACE) {
            // Reused between the look and the move. The same bytes, wherever they came from.
            std::fs::rename(&aside, &path)?;
            return Ok(false);
        }
        gone(std::fs::remove_file(&aside))
    }

    /// Whether the stored file `h` is there for a row about to name it (a link preview's
    /// picture, found in the page cache by an earlier fetch). Writer thread only. In a shared
    /// folder it is made young first, so that no other node's removal takes it before that
    /// row commits: a removal already under way either sees the new time and puts it back,
    /// or took it, and then it is missing here. (Caught between a removal's move aside and
    /// its put-back, it is missing too: the row goes without it, and nothing is lost.)
    pub fn hold(&self, h: &str) -> bool {
        if !is_hash(h) {
            return false;
        }
        let path = self.path_of(h);
        if self.shared {
            let touched = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now()));
            if touched.is_err() {
                return false;
            }
        }
        std::fs::metadata(&path).is_ok_and(|m| m.is_file())
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
    /// and its commit, or left alone by a removal in a shared folder), and in a shared folder
    /// the old leftovers in `tmp/`; how many. Writer thread only, but in a shared folder.
    pub fn remove_orphans(&self, in_use: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for h in self.stored()? {
            if !in_use.contains(&h) && self.remove_unused(&h).unwrap_or(false) {
                removed += 1;
            }
        }
        removed += self.look_aside(in_use)?;
        if self.shared {
            removed += self.clear_tmp()?;
        }
        Ok(removed)
    }

    /// The stored files a removal in a shared folder moved aside and a crash kept there
    /// (between the move and the removal, or the move back after a reuse; a folder a single
    /// server took over from a cluster may hold some too): one a committed row names is put
    /// back in its place (or dropped when a copy is there again); one nobody uses goes once
    /// older than [`SHARED_GRACE`] (a young one may be another node's removal under way,
    /// about to put a reuse back). How many went. Another node's sweep or removal may handle
    /// the same file meanwhile: each entry is settled on its own, whatever became of the
    /// others.
    fn look_aside(&self, in_use: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp)?.flatten() {
            let Some(h) = aside_hash(&entry.file_name()) else {
                continue;
            };
            let aside = entry.path();
            if !in_use.contains(&h) {
                if !younger_than(&aside, SHARED_GRACE) && std::fs::remove_file(&aside).is_ok() {
                    removed += 1;
                }
                continue;
            }
            match self.put_back(&h, &aside) {
                Ok(()) => {}
                // Another node's sweep or removal settled it first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("could not put back stored file {h} from {aside:?}: {e}"),
            }
        }
        Ok(removed)
    }

    /// Put the stored file `h`, found aside at `aside`, back in its place, unless a copy is
    /// there already. It is made young first, as a reuse's copy is, so no removal takes it
    /// for one nobody wrote lately; and linked rather than renamed, so it never replaces a
    /// copy another node has just put there.
    fn put_back(&self, h: &str, aside: &Path) -> io::Result<()> {
        let path = self.path_of(h);
        std::fs::File::options()
            .write(true)
            .open(aside)?
            .set_modified(SystemTime::now())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let put = "put back a stored file left aside by an interrupted removal";
        match std::fs::hard_link(aside, &path) {
            Ok(()) => tracing::warn!("{put}: {h}"),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // A folder without hard links (some network mounts): moved, when no copy is there.
            // A copy another node settles between the check and the move is replaced, by the
            // same bytes (the name is their hash), so nothing is lost.
            Err(_) if !path.exists() => {
                std::fs::rename(aside, &path)?;
                tracing::warn!("{put}: {h}");
                return Ok(());
            }
            Err(_) => {}
        }
        std::fs::remove_file(aside)
    }
}

/// The hash of a stored file moved aside to `tmp/` by a removal (`gone-{hash}-{random}`).
fn aside_hash(name: &std::ffi::OsStr) -> Option<String> {
    let rest = name.to_str()?.strip_prefix("gone-")?;
    let (h, _) = rest.split_once('-')?;
    is_hash(h).then(|| h.to_string())
}

/// 24 random hex digits, for a name in `tmp/`.
fn random_name() -> io::Result<String> {
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the file at `path` was modified within `age` (or in the future, by a clock ahead
/// of this one). A file that cannot be read counts as young: it is left alone.
fn younger_than(path: &Path, age: Duration) -> bool {
    match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) => !matches!(SystemTime::now().duration_since(t), Ok(d) if d >= age),
        Err(_) => true,
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

    /// Make the file at `path` look written `ago`.
    fn age(path: &Path, ago: Duration) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    fn new_temp(files: &Files, bytes: &[u8]) -> TempFile {
        let (t, mut f) = files.temp().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        t
    }

    #[test]
    fn a_shared_folder_removes_only_files_nobody_wrote_or_reused_lately() {
        let dir = std::env::temp_dir().join(format!("hearth-shared-{}", std::process::id()));
        let files = Files::open_shared(&dir).unwrap();
        let unused = |_: &str| Ok::<_, std::convert::Infallible>(false);
        let h = "cd".repeat(32);
        files.settle(new_temp(&files, b"two"), &h).unwrap();
        let path = files.path_of(&h);

        // Just moved in: another node's row naming it may not be committed yet.
        assert_eq!(files.collect(std::slice::from_ref(&h), unused).unwrap(), 0);
        assert!(path.is_file());
        age(&path, SHARED_GRACE * 2);
        // Reused by an upload of the same bytes: replaced by its copy, so left alone again.
        files.settle(new_temp(&files, b"two"), &h).unwrap();
        assert_eq!(files.collect(std::slice::from_ref(&h), unused).unwrap(), 0);
        assert_eq!(files.remove_orphans(&HashSet::new()).unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // Untouched for longer than the grace: removed, and nothing is left aside in tmp/.
        age(&path, SHARED_GRACE * 2);
        assert_eq!(files.collect(std::slice::from_ref(&h), unused).unwrap(), 1);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(&files.tmp).unwrap().count(), 0);
        // A reuse that finds the file gone puts its own copy there.
        files.settle(new_temp(&files, b"two"), &h).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        age(&path, SHARED_GRACE * 2);
        assert_eq!(files.remove_orphans(&HashSet::new()).unwrap(), 1);

        // Opening leaves other nodes' uploads in progress in tmp/, and the sweep takes what
        // a crash left there long ago.
        let (young, _) = files.temp().unwrap();
        let (old, _) = files.temp().unwrap();
        age(old.path(), SHARED_TMP_AGE * 2);
        let (young, old) = (young.keep(), old.keep());
        Files::open_shared(&dir).unwrap();
        assert!(young.exists() && !old.exists());
        age(&young, SHARED_TMP_AGE * 2);
        assert_eq!(files.remove_orphans(&HashSet::new()).unwrap(), 1);
        assert!(!young.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_held_for_a_new_row_is_there_and_in_a_shared_folder_young() {
        for shared in [false, true] {
            let dir =
                std::env::temp_dir().join(format!("hearth-hold-{shared}-{}", std::process::id()));
            let files = if shared {
                Files::open_shared(&dir).unwrap()
            } else {
                Files::open(&dir).unwrap()
            };
            let unused = |_: &str| Ok::<_, std::convert::Infallible>(false);
            let h = "12".repeat(32);
            assert!(!files.hold(&h), "not there");
            assert!(!files.hold("../../etc/passwd"), "not a hash");
            files.settle(new_temp(&files, b"picture"), &h).unwrap();
            let path = files.path_of(&h);
            age(&path, SHARED_GRACE * 2);
            assert!(files.hold(&h));
            // In a shared folder, a removal now leaves it for the row about to name it.
            let removed = files.collect(std::slice::from_ref(&h), unused).unwrap();
            assert_eq!((removed, path.exists()), (usize::from(!shared), shared));
            assert!(!files.hold(&h) || shared);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_shared_folder_puts_back_a_file_a_crash_left_aside_that_a_row_names() {
        let dir = std::env::temp_dir().join(format!("hearth-aside-{}", std::process::id()));
        let files = Files::open_shared(&dir).unwrap();
        let (kept, dropped) = ("ab".repeat(32), "ef".repeat(32));
        // As a removal leaves them when its node dies after moving them aside: one of them
        // reused meanwhile (a committed row names it), the other not.
        for (h, bytes) in [(&kept, b"kept"), (&dropped, b"gone")] {
            files.settle(new_temp(&files, bytes), h).unwrap();
            let aside = files
                .tmp
                .join(format!("gone-{h}-{}", random_name().unwrap()));
            std::fs::rename(files.path_of(h), &aside).unwrap();
            age(&aside, SHARED_TMP_AGE * 2);
        }
        // A node opening the folder leaves them for the sweep, which knows what is in use.
        Files::open_shared(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&files.tmp).unwrap().count(), 2);
        // One whose bytes were uploaded again meanwhile: the copy in place stays.
        let again = "34".repeat(32);
        files.settle(new_temp(&files, b"old"), &again).unwrap();
        let again_aside = files
            .tmp
            .join(format!("gone-{again}-{}", random_name().unwrap()));
        std::fs::rename(files.path_of(&again), &again_aside).unwrap();
        files.settle(new_temp(&files, b"new"), &again).unwrap();
        // One moved aside just now, as another node's removal under way does.
        let young = "12".repeat(32);
        let young_aside = files
            .tmp
            .join(format!("gone-{young}-{}", random_name().unwrap()));
        std::fs::write(&young_aside, b"young").unwrap();
        let in_use: HashSet<String> = [kept.clone(), again.clone()].into();
        assert_eq!(files.remove_orphans(&in_use).unwrap(), 1);
        assert_eq!(std::fs::read(files.path_of(&kept)).unwrap(), b"kept");
        assert_eq!(std::fs::read(files.path_of(&again)).unwrap(), b"new");
        assert!(!again_aside.exists());
        assert!(!files.path_of(&dropped).exists());
        assert!(young_aside.exists(), "a young file aside is left alone");
        assert_eq!(std::fs::read_dir(&files.tmp).unwrap().count(), 1);
        // Put back young: a removal that finds it unused (its row deleted meanwhile) leaves
        // it alone for the grace, as a reuse's copy, since another node may be about to
        // name it.
        let unused = |_: &str| Ok::<_, std::convert::Infallible>(false);
        assert_eq!(
            files.collect(std::slice::from_ref(&kept), unused).unwrap(),
            0
        );
        assert!(files.path_of(&kept).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
