//! Hive partition values as path segments: escaping exactly as Hive escapes path names
//! (`FileUtils.escapePathName`), the way back, and the longest value a segment can hold. A
//! leaf: the lake names directories with it, and decoding checks a value against it.

use std::fmt::Write as _;

/// Hive's name for a null or empty partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The longest escaped partition value accepted (file systems allow 255 bytes per path segment;
/// the column name and `=` take the rest).
pub const MAX_VALUE_BYTES: usize = 192;

/// Escape a partition value as Hive does: `"#%'*/:=?\{[]^` DEL and control characters become
/// `%XX` (NUL too, which a path cannot hold).
pub fn escape(value: Option<&str>) -> String {
    let v = match value {
        None | Some("") => return DEFAULT_PARTITION.to_string(),
        Some(v) => v,
    };
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if needs_escape(c) {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether Hive escapes this character in a path name.
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{0}'
            ..='\u{1F}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\u{7F}'
                | '{'
                | '['
                | ']'
                | '^'
    )
}

/// Undo `escape` (for listing partitions).
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a value can be a partition value (its escaped form fits a path segment).
pub fn fits(value: &str) -> bool {
    escape(Some(value)).len() <= MAX_VALUE_BYTES
}
