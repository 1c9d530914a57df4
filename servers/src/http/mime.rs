//! `Content-Type` from a file name's extension: the short table a static
//! site needs, and `application/octet-stream` (download, never render) for
//! everything else.

/// The type of anything not in the table.
pub const DEFAULT: &str = "application/octet-stream";

/// Extension (lower case) → `Content-Type`.
const TABLE: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("ico", "image/x-icon"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("woff2", "font/woff2"),
];

/// The `Content-Type` for a file named `name` (bytes: Linux names).
pub fn content_type(name: &[u8]) -> &'static str {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return DEFAULT;
    };
    let ext = &name[dot + 1..];
    TABLE
        .iter()
        .find(|(known, _)| known.as_bytes().eq_ignore_ascii_case(ext))
        .map_or(DEFAULT, |&(_, mime)| mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extensions_in_any_case() {
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"a/b/STYLE.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"logo.png"), "image/png");
        assert_eq!(content_type(b"x.jpg"), "image/jpeg");
        assert_eq!(content_type(b"x.svg"), "image/svg+xml");
        assert_eq!(content_type(b"hello.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type(b"data.json"), "application/json");
        assert_eq!(content_type(b"app.js"), "text/javascript; charset=utf-8");
    }

    #[test]
    fn anything_else_is_a_download() {
        assert_eq!(content_type(b"Makefile"), DEFAULT);
        assert_eq!(content_type(b"archive.tar.zst"), DEFAULT);
        assert_eq!(content_type(b"trailing."), DEFAULT);
    }
}
