//! Path rules of ZooKeeper's `PathUtils.validatePath`, applied to Rust strings.

/// Why a path is not a valid znode path; the text follows ZooKeeper's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path: {0}")]
pub struct InvalidPath(pub &'static str);

/// Checks a path as ZooKeeper does. Java works on UTF-16 units, so every character outside the
/// basic plane (a surrogate pair there) is rejected, as ZooKeeper rejects surrogates.
pub fn validate(path: &str) -> Result<(), InvalidPath> {
    let bytes = path.as_bytes();
    if bytes.is_empty() {
        return Err(InvalidPath("path length must be > 0"));
    }
    if bytes[0] != b'/' {
        return Err(InvalidPath("path must start with / character"));
    }
    if bytes.len() == 1 {
        return Ok(());
    }
    if bytes[bytes.len() - 1] == b'/' {
        return Err(InvalidPath("path must not end with / character"));
    }
    for component in path[1..].split('/') {
        if component.is_empty() {
            return Err(InvalidPath("empty node name specified"));
        }
        if component == "." || component == ".." {
            return Err(InvalidPath("relative paths not allowed"));
        }
        for c in component.chars() {
            let u = c as u32;
            let bad = u == 0
                || (0x01..=0x1f).contains(&u)
                || (0x7f..=0x9f).contains(&u)
                || (0xd800..=0xf8ff).contains(&u)
                || (0xfff0..=0xffff).contains(&u)
                || u > 0xffff;
            if bad {
                return Err(InvalidPath("invalid character"));
            }
        }
    }
    Ok(())
}

/// The parent of a valid, non-root path (`/a/b` → `/a`, `/a` → `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Parent and last component with one search (`/a/b` → (`/a`, `b`)), for hot loops.
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// The last component of a path (`/a/b` → `b`).
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_zookeeper_accepts() {
        for p in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/...", "/zookeeper", "/é"] {
            assert!(validate(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_what_zookeeper_rejects() {
        for p in ["", "a", "/a/", "//a", "/a//b", "/.", "/a/..", "/a/./b", "/a\0b", "/a\u{1}", "/\u{1F600}"] {
            assert!(validate(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(split("/a/b"), ("/a", "b"));
        assert_eq!(split("/a"), ("/", "a"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
