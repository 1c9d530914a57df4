//! Finding what a normalised path names under `--root`, and keeping what
//! was found: the second wall around the root, and the server's file cache.
//!
//! **The wall.** `target` has already refused `..` that climbs out and
//! `%00`; what remains is symbolic links. Every path is resolved with
//! `realpath(3)` (`fs::canonicalize`) and served only if the result is
//! still under the (equally resolved) root: a link inside the root pointing
//! at `/etc/passwd` is a `404`, exactly like a missing file. The file is
//! then opened with `O_NOFOLLOW` (a link swapped in after the check fails
//! to open) and `O_NONBLOCK` (a FIFO swapped in cannot block the loop in
//! `open`), and served only if `fstat` says it is a regular file.
//!
//! **The cache.** Resolving costs several system calls per request (nginx
//! pays `open` + `fstat` + `close` for each one unless `open_file_cache` is
//! set). Here each file found is kept, checked again at most once a second
//! (like `open_file_cache_valid 1s`), and replaced when its identity, size
//! or modification time changed. A file up to `max_memory_file` bytes is
//! kept in memory, so a request for it costs no file system call at all;
//! a larger one keeps its open descriptor and goes out with `sendfile(2)`.
//! The cache is bounded in entries and bytes; when full it is emptied and
//! refilled (simple, and bounded).

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::listing;
use super::mime;
use super::target::Normalised;

/// How long a cached answer is trusted before the file is checked again.
const REVALIDATE: Duration = Duration::from_secs(1);
/// Most files cached at once (each large one holds a descriptor).
const MAX_ENTRIES: usize = 1024;
/// Most bytes of file contents cached in memory at once.
const MAX_MEMORY: usize = 32 * 1024 * 1024;

/// Where a file's body comes from.
#[derive(Debug)]
pub enum Body {
    /// Small: the whole contents, read once.
    Memory(Rc<[u8]>),
    /// Large: an open descriptor for `sendfile`, which takes an explicit
    /// offset, so many connections can share it.
    File(Rc<File>),
}

/// A regular file, ready to serve.
#[derive(Debug)]
pub struct FileInfo {
    /// Its size in bytes.
    pub size: u64,
    /// Modification time, whole seconds since the epoch (what HTTP dates hold).
    pub modified: u64,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Type`, `Content-Length`, `Last-Modified` and
    /// `Accept-Ranges` header lines for a whole-file `200`.
    pub whole_headers: Vec<u8>,
    /// `Last-Modified`'s value.
    pub last_modified: String,
    /// The contents.
    pub body: Body,
    /// (device, inode, size, mtime in ns): what says it is the same file.
    identity: (u64, u64, u64, i128),
}

/// What a path names.
#[derive(Debug)]
pub enum Found {
    /// A file (or a directory's `index.html`).
    File(Rc<FileInfo>),
    /// A directory without `index.html`: its listing page.
    Listing(String),
    /// A directory asked for without the trailing `/`: redirect there, so
    /// its relative links work.
    Redirect,
    /// Nothing we may serve: missing, outside the root, not a regular file.
    Missing,
    /// There, but unreadable (`EACCES`).
    Forbidden,
    /// Could not be opened for want of descriptors (`EMFILE`): `503`, try
    /// again later.
    Busy,
}

/// A cached answer.
#[derive(Debug)]
enum Entry {
    File(Rc<FileInfo>),
    /// A directory, and its `index.html` if it has one.
    Dir(Option<Rc<FileInfo>>),
}

/// The files under one root, and the cache of what was found there.
#[derive(Debug)]
pub struct Files {
    /// The root, resolved (no symbolic links, absolute).
    root: PathBuf,
    /// Largest file kept in memory.
    max_memory_file: u64,
    /// Normalised path → (answer, when it was last checked).
    cache: HashMap<Vec<u8>, (Entry, Instant)>,
    /// Bytes of file contents held by `cache`.
    cached_bytes: usize,
}

impl Files {
    /// The files under `root`.
    ///
    /// # Errors
    ///
    /// `root` cannot be resolved or is not a directory.
    pub fn new(root: &Path, max_memory_file: u64) -> io::Result<Files> {
        let root = fs::canonicalize(root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Files {
            root,
            max_memory_file,
            cache: HashMap::new(),
            cached_bytes: 0,
        })
    }

    /// What `path` names, from the cache if it was checked less than a
    /// second before `now`.
    pub fn find(&mut self, path: &Normalised, now: Instant) -> Found {
        if let Some((entry, checked)) = self.cache.get(&path.path)
            && now.duration_since(*checked) < REVALIDATE
        {
            return answer(entry, path, &self.root);
        }
        let previous = self.cache.remove(&path.path).map(|(entry, _)| entry);
        if let Some(Entry::File(info)) | Some(Entry::Dir(Some(info))) = &previous
            && matches!(info.body, Body::Memory(_))
        {
            self.cached_bytes -= info.size as usize;
        }
        match self.resolve(&path.path, previous) {
            Ok(entry) => {
                let found = answer(&entry, path, &self.root);
                self.remember(path.path.clone(), entry, now);
                found
            }
            Err(err) if err.kind() == ErrorKind::PermissionDenied => Found::Forbidden,
            Err(err) if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                log::warn!("out of descriptors opening a file: answering 503");
                Found::Busy
            }
            Err(_) => Found::Missing,
        }
    }

    /// Keeps `entry`, emptying the cache first if it is full.
    fn remember(&mut self, key: Vec<u8>, entry: Entry, now: Instant) {
        let bytes = match &entry {
            Entry::File(info) | Entry::Dir(Some(info)) if matches!(info.body, Body::Memory(_)) => {
                info.size as usize
            }
            _ => 0,
        };
        if self.cache.len() >= MAX_ENTRIES || self.cached_bytes + bytes > MAX_MEMORY {
            log::debug!("file cache full ({} entries): emptied", self.cache.len());
            self.cache.clear();
            self.cached_bytes = 0;
        }
        self.cached_bytes += bytes;
        self.cache.insert(key, (entry, now));
    }

    /// Looks `rel` up on disk. `previous` is reused when the file has not
    /// changed.
    fn resolve(&self, rel: &[u8], previous: Option<Entry>) -> io::Result<Entry> {
        let real = self.inside(&self.root.join(std::ffi::OsStr::from_bytes(rel)))?;
        let meta = fs::metadata(&real)?;
        let (old_file, old_index) = match previous {
            Some(Entry::File(info)) => (Some(info), None),
            Some(Entry::Dir(index)) => (None, index),
            None => (None, None),
        };
        if meta.is_dir() {
            let index = match self.inside(&real.join("index.html")) {
                Ok(index) => match self.open(&index, old_index) {
                    Ok(info) => Some(info),
                    Err(err) if err.kind() == ErrorKind::NotFound => None,
                    Err(err) => return Err(err),
                },
                Err(_) => None,
            };
            return Ok(Entry::Dir(index));
        }
        self.open(&real, old_file).map(Entry::File)
    }

    /// `path` resolved, if it is under the root; `NotFound` if it leaves it.
    fn inside(&self, path: &Path) -> io::Result<PathBuf> {
        let real = fs::canonicalize(path)?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            log::debug!("{} leaves the root: refused", path.display());
            Err(ErrorKind::NotFound.into())
        }
    }

    /// Opens a regular file (or reuses `old` if it is the same, unchanged).
    fn open(&self, real: &Path, old: Option<Rc<FileInfo>>) -> io::Result<Rc<FileInfo>> {
        // Unchanged (same inode, size and modification time, by `stat`,
        // which needs no descriptor): keep it without opening it again.
        if let Some(old) = old
            && fs::metadata(real)
                .is_ok_and(|meta| meta.is_file() && identity(&meta) == old.identity)
        {
            return Ok(old);
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(real)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(ErrorKind::NotFound.into());
        }
        let identity = identity(&meta);
        let size = meta.len();
        let body = if size <= self.max_memory_file {
            let mut contents = Vec::with_capacity(size as usize);
            (&file).take(size).read_to_end(&mut contents)?;
            Body::Memory(contents.into())
        } else {
            Body::File(Rc::new(file))
        };
        // A file that shrank while being read is served as read.
        let size = match &body {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File(_) => size,
        };
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified));
        let content_type = mime::content_type(real.as_os_str().as_bytes());
        let whole_headers = format!(
            "Content-Type: {content_type}\r\nContent-Length: {size}\r\n\
             Last-Modified: {last_modified}\r\nAccept-Ranges: bytes\r\n"
        )
        .into_bytes();
        Ok(Rc::new(FileInfo {
            size,
            modified,
            content_type,
            whole_headers,
            last_modified,
            body,
            identity,
        }))
    }
}

/// The answer a cached entry gives for `path`.
fn answer(entry: &Entry, path: &Normalised, root: &Path) -> Found {
    match entry {
        Entry::File(info) => Found::File(info.clone()),
        Entry::Dir(_) if !path.trailing_slash && !path.path.is_empty() => Found::Redirect,
        Entry::Dir(Some(index)) => Found::File(index.clone()),
        Entry::Dir(None) => {
            let dir = root.join(std::ffi::OsStr::from_bytes(&path.path));
            let mut shown = b"/".to_vec();
            shown.extend_from_slice(&path.path);
            if !path.path.is_empty() {
                shown.push(b'/');
            }
            match listing::render(&dir, &shown) {
                Ok(page) => Found::Listing(page),
                Err(err) if err.kind() == ErrorKind::PermissionDenied => Found::Forbidden,
                Err(err) if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    Found::Busy
                }
                Err(_) => Found::Missing,
            }
        }
    }
}

fn identity(meta: &Metadata) -> (u64, u64, u64, i128) {
    let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    (meta.dev(), meta.ino(), meta.len(), mtime)
}

/// Whether a file modified at `modified` (seconds) is unchanged since the
/// `If-Modified-Since` value `since`; an unparsable date means "changed".
pub fn not_modified_since(modified: u64, since: &[u8]) -> bool {
    let Some(since) = std::str::from_utf8(since)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
    else {
        return false;
    };
    let since = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    modified <= since && since <= unix_now()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::target::normalise;

    struct Site(PathBuf);

    impl Drop for Site {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn site(name: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("root/sub")).unwrap();
        fs::create_dir_all(dir.join("root/docs")).unwrap();
        fs::write(dir.join("root/hello.txt"), b"hello\n").unwrap();
        fs::write(dir.join("root/sub/index.html"), b"<p>sub</p>").unwrap();
        fs::write(dir.join("root/docs/a.txt"), b"a").unwrap();
        fs::write(dir.join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("root/leak.txt")).unwrap();
        std::os::unix::fs::symlink("hello.txt", dir.join("root/alias.txt")).unwrap();
        Site(dir)
    }

    fn find(files: &mut Files, target: &str) -> Found {
        let mut norm = Normalised {
            path: Vec::new(),
            trailing_slash: false,
        };
        normalise(target, &mut norm).unwrap();
        files.find(&norm, Instant::now())
    }

    #[test]
    fn files_directories_and_listings() {
        let site = site("kinds");
        let mut files = Files::new(&site.0.join("root"), 64 * 1024).unwrap();
        let Found::File(hello) = find(&mut files, "/hello.txt") else {
            panic!()
        };
        assert_eq!(hello.size, 6);
        assert_eq!(hello.content_type, "text/plain; charset=utf-8");
        assert!(matches!(&hello.body, Body::Memory(b) if &b[..] == b"hello\n"));
        assert!(matches!(find(&mut files, "/sub/"), Found::File(i) if i.size == 10));
        assert!(matches!(find(&mut files, "/sub"), Found::Redirect));
        assert!(matches!(find(&mut files, "/docs/"), Found::Listing(p) if p.contains("a.txt")));
        assert!(matches!(find(&mut files, "/"), Found::Listing(p) if p.contains("hello.txt")));
        assert!(matches!(find(&mut files, "/missing"), Found::Missing));
        assert!(matches!(find(&mut files, "/hello.txt/x"), Found::Missing));
    }

    #[test]
    fn a_symlink_inside_the_root_is_served_and_one_leaving_it_is_not() {
        let site = site("links");
        let mut files = Files::new(&site.0.join("root"), 64 * 1024).unwrap();
        assert!(matches!(find(&mut files, "/alias.txt"), Found::File(i) if i.size == 6));
        assert!(matches!(find(&mut files, "/leak.txt"), Found::Missing));
    }

    #[test]
    fn large_files_keep_a_descriptor_instead_of_their_bytes() {
        let site = site("large");
        fs::write(site.0.join("root/big.bin"), vec![1u8; 100]).unwrap();
        let mut files = Files::new(&site.0.join("root"), 10).unwrap();
        let Found::File(big) = find(&mut files, "/big.bin") else {
            panic!()
        };
        assert!(matches!(big.body, Body::File(_)));
        assert_eq!(big.content_type, mime::DEFAULT);
    }

    #[test]
    fn a_changed_file_is_seen_after_the_revalidation_interval() {
        let site = site("change");
        let mut files = Files::new(&site.0.join("root"), 64 * 1024).unwrap();
        let mut norm = Normalised {
            path: b"hello.txt".to_vec(),
            trailing_slash: false,
        };
        let start = Instant::now();
        assert!(matches!(files.find(&norm, start), Found::File(i) if i.size == 6));
        fs::write(site.0.join("root/hello.txt"), b"hello, world\n").unwrap();
        assert!(matches!(files.find(&norm, start), Found::File(i) if i.size == 6));
        let later = start + REVALIDATE;
        assert!(matches!(files.find(&norm, later), Found::File(i) if i.size == 13));
        norm.path = b"hello.txt".to_vec();
        fs::remove_file(site.0.join("root/hello.txt")).unwrap();
        assert!(matches!(
            files.find(&norm, later + REVALIDATE),
            Found::Missing
        ));
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let now = unix_now();
        let at = |secs: u64| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert!(not_modified_since(now - 100, at(now - 100).as_bytes()));
        assert!(not_modified_since(now - 100, at(now - 50).as_bytes()));
        assert!(!not_modified_since(now - 100, at(now - 101).as_bytes()));
        assert!(!not_modified_since(now - 100, b"yesterday"));
        // A date in the future proves nothing.
        assert!(!not_modified_since(now - 100, at(now + 3600).as_bytes()));
    }
}
