//! The HTML listing of a directory without an `index.html`: every name
//! escaped for HTML and percent-encoded in its link, so a file called
//! `<script>` is shown as text and `a b` links to `a%20b`.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::target::percent_encode;

/// Most entries listed; a larger directory says how many were left out
/// (the page's size stays bounded whatever the directory holds).
pub const MAX_ENTRIES: usize = 10_000;

/// The listing page of `dir`, shown as `url_path` (the decoded request path,
/// ending in `/`).
pub fn render(dir: &Path, url_path: &[u8]) -> io::Result<String> {
    let mut names: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut more = 0usize;
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if names.len() >= MAX_ENTRIES {
            more += 1;
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        names.push((entry.file_name().as_bytes().to_vec(), is_dir));
    }
    names.sort();
    let title = escape(&String::from_utf8_lossy(url_path));
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != b"/" {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in &names {
        let slash = if *is_dir { "/" } else { "" };
        let mut href = String::new();
        percent_encode(name, &mut href);
        let shown = escape(&String::from_utf8_lossy(name));
        page.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{shown}{slash}</a></li>\n"
        ));
    }
    page.push_str("</ul>\n");
    if more > 0 {
        page.push_str(&format!("<p>{more} more entries not shown.</p>\n"));
    }
    page.push_str("</body></html>\n");
    Ok(page)
}

/// Escapes the five characters HTML gives meaning to.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let dir = std::env::temp_dir().join(format!("listing-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("<b>&x.txt"), b"").unwrap();
        fs::write(dir.join("a b"), b"").unwrap();
        let page = render(&dir, b"/files/").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            page.contains("<a href=\"%3Cb%3E%26x.txt\">&lt;b&gt;&amp;x.txt</a>"),
            "{page}"
        );
        assert!(page.contains("<a href=\"a%20b\">a b</a>"), "{page}");
        assert!(page.contains("<a href=\"sub/\">sub/</a>"), "{page}");
        assert!(page.contains("<a href=\"../\">"), "{page}");
        assert!(!page.contains("<b>"));
    }
}
