//! The ignore file: gitignore patterns, relative to each watched root.
//!
//! The file is read at start and again whenever it changes
//! ([`crate::ignore_watch`]). Its patterns apply to every root as if
//! it were a `.gitignore` at the top of that root: `*.tmp` ignores such
//! files at any depth, `/build/` only the `build` directory at the top,
//! `!keep.tmp` re-includes. An ignored directory is neither watched nor
//! scanned.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The ignore file cannot be read or has a bad pattern.
#[derive(Debug, thiserror::Error)]
#[error("--ignore-file {path}: {message}")]
pub struct IgnoreFileError {
    /// The file, as given.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// Decides which paths are ignored.
#[derive(Debug, Clone)]
pub struct Filter {
    /// One matcher per root (empty when there is no ignore file).
    matchers: Vec<(PathBuf, Gitignore)>,
}

impl Filter {
    /// Reads `ignore_file` (if any) for `roots`.
    pub fn new(roots: &[PathBuf], ignore_file: Option<&Path>) -> Result<Self, IgnoreFileError> {
        let mut matchers = Vec::new();
        let Some(file) = ignore_file else {
            return Ok(Self { matchers });
        };
        let fail = |message: String| IgnoreFileError {
            path: file.to_path_buf(),
            message,
        };
        // Read it first: the builder would take a missing file for an empty one.
        std::fs::metadata(file).map_err(|e| fail(e.to_string()))?;
        for root in roots {
            let mut builder = GitignoreBuilder::new(root);
            if let Some(error) = builder.add(file) {
                return Err(fail(error.to_string()));
            }
            let matcher = builder.build().map_err(|e| fail(e.to_string()))?;
            matchers.push((root.clone(), matcher));
        }
        Ok(Self { matchers })
    }

    /// Whether `path` (a file, or a directory when `is_dir`) is ignored.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        self.matchers.iter().any(|(root, matcher)| {
            path.strip_prefix(root).is_ok_and(|relative| {
                !relative.as_os_str().is_empty()
                    && matcher
                        .matched_path_or_any_parents(relative, is_dir)
                        .is_ignore()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_rules_relative_to_each_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".fsignore");
        std::fs::write(&file, "*.tmp\n!keep.tmp\n/build/\ncache/\n# comment\n").unwrap();
        let roots = [PathBuf::from("/r1"), PathBuf::from("/r2")];
        let filter = Filter::new(&roots, Some(&file)).unwrap();
        let ignored = |p: &str, d| filter.is_ignored(Path::new(p), d);
        assert!(ignored("/r1/a.tmp", false));
        assert!(ignored("/r2/deep/x/a.tmp", false));
        assert!(!ignored("/r1/keep.tmp", false));
        assert!(!ignored("/r1/a.txt", false));
        assert!(ignored("/r1/build", true));
        assert!(ignored("/r1/build/x.o", false));
        assert!(!ignored("/r1/src/build", true));
        assert!(ignored("/r1/src/cache", true));
        assert!(ignored("/r1/src/cache/f", false));
        assert!(
            !ignored("/r1/cache", false),
            "cache/ matches directories only"
        );
        assert!(!ignored("/elsewhere/a.tmp", false));
        assert!(!ignored("/r1", true));

        let none = Filter::new(&roots, None).unwrap();
        assert!(!none.is_ignored(Path::new("/r1/a.tmp"), false));
    }
}
