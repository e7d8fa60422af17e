//! Turning client-supplied names into safe destination names.
//!
//! Storage never uses client strings (chunks live under hashes); these helpers are for the one
//! place an application wants the client's name: the assembled file's destination.

/// Longest sanitized name, in bytes (most filesystems allow 255).
const MAX_NAME_BYTES: usize = 200;

/// Names Windows reserves for devices, refused there whatever the extension.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A safe single file name from a client-supplied one.
///
/// Keeps the last path component (after `/` or `\`), replaces control characters and
/// `<>:"|?*` with `_`, drops leading dots (no hidden files, no `..`) and trailing dots and
/// spaces, prefixes Windows device names (`CON`, `NUL`, ...) with `_`, cuts the name to 200
/// bytes at a character boundary keeping the extension, and falls back to `"upload"` when
/// nothing is left. Unicode letters are kept as they are.
///
/// ```
/// use chunked_upload::sanitize_filename;
/// assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
/// assert_eq!(sanitize_filename("C:\\Users\\me\\photo.jpg"), "photo.jpg");
/// assert_eq!(sanitize_filename(".."), "upload");
/// assert_eq!(sanitize_filename("naïve résumé.pdf"), "naïve résumé.pdf");
/// ```
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let replaced: String = last
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut out = truncate_keeping_extension(trimmed, MAX_NAME_BYTES);
    if out.is_empty() {
        return "upload".to_owned();
    }
    let stem = out.split('.').next().unwrap_or_default();
    if WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem.trim_end()))
    {
        out.insert(0, '_');
    }
    out
}

/// A safe relative path from a client-supplied one (a dropped folder's `relativePath`): each
/// component sanitized as by [`sanitize_filename`], empty, `.` and `..` components dropped, so
/// the result never leaves the directory it is joined to. Returns `"upload"` when nothing is
/// left.
///
/// ```
/// use chunked_upload::sanitize_relative_path;
/// assert_eq!(sanitize_relative_path("photos/2024/../x.jpg"), "photos/2024/x.jpg");
/// assert_eq!(sanitize_relative_path("/etc/passwd"), "etc/passwd");
/// ```
pub fn sanitize_relative_path(path: &str) -> String {
    let parts: Vec<String> = path
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .map(sanitize_filename)
        .collect();
    if parts.is_empty() {
        "upload".to_owned()
    } else {
        parts.join("/")
    }
}

/// Cuts `name` to at most `max` bytes at a character boundary, keeping a short extension.
fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let ext = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 16 && dot > 0 => &name[dot..],
        _ => "",
    };
    let mut cut = max - ext.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names() {
        let cases = [
            ("../../../etc/passwd", "passwd"),
            ("..\\..\\windows\\system32", "system32"),
            ("/absolute/path.txt", "path.txt"),
            ("a\0b.txt", "a_b.txt"),
            ("...", "upload"),
            ("", "upload"),
            ("/", "upload"),
            (".hidden", "hidden"),
            ("name. . .", "name"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("con_not.txt", "con_not.txt"),
            ("what?<>|*\".txt", "what______.txt"),
            ("日本語.txt", "日本語.txt"),
            ("line\nbreak", "line_break"),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_filename(input), expected, "{input:?}");
        }
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.tar.gz", "é".repeat(300));
        let out = sanitize_filename(&long);
        assert!(out.len() <= MAX_NAME_BYTES, "{}", out.len());
        assert!(out.ends_with(".gz"));
        assert!(out.starts_with('é'));
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(sanitize_relative_path("../../x"), "x");
        assert_eq!(sanitize_relative_path("a/./b//c"), "a/b/c");
        assert_eq!(sanitize_relative_path(".."), "upload");
        assert_eq!(sanitize_relative_path("a\\..\\b"), "a/b");
    }
}
