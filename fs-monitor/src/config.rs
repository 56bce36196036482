//! The monitor's configuration, validated once at start.

use std::path::{Path, PathBuf};

use crate::filter::IgnoreFileError;

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No directory to watch.
    #[error("no --directory given")]
    NoDirectory,
    /// A directory cannot be resolved.
    #[error("--directory {path}: {source}")]
    Directory {
        /// As given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A directory that is not one.
    #[error("--directory {0}: not a directory")]
    NotADirectory(PathBuf),
    /// Two directories that overlap (one inside the other).
    #[error("--directory {inner} is inside --directory {outer}; give only the outer one")]
    Overlap {
        /// The outer one.
        outer: PathBuf,
        /// The one inside it.
        inner: PathBuf,
    },
    /// The ignore file cannot be read or has a bad pattern.
    #[error(transparent)]
    IgnoreFile(#[from] IgnoreFileError),
    /// An empty or malformed bucket name.
    #[error("--kv-bucket-name {0:?}: a bucket name is letters, digits, '-' and '_'")]
    BucketName(String),
}

/// What to watch and where to publish.
#[derive(Debug, Clone)]
pub struct Config {
    /// The watched trees: absolute, canonical, none inside another.
    pub roots: Vec<PathBuf>,
    /// A gitignore-style file whose patterns apply relative to each root
    /// (absolute; its changes apply while running).
    pub ignore_file: Option<PathBuf>,
    /// The NATS server.
    pub nats_url: String,
    /// The KV bucket written to.
    pub bucket: String,
}

impl Config {
    /// Checks and resolves the settings: each directory exists and is
    /// made canonical (so keys are absolute paths without symbolic links),
    /// no directory is inside another, the ignore file parses.
    pub fn new(
        directories: &[PathBuf],
        ignore_file: Option<&Path>,
        nats_url: &str,
        bucket: &str,
    ) -> Result<Self, ConfigError> {
        if directories.is_empty() {
            return Err(ConfigError::NoDirectory);
        }
        let mut roots: Vec<PathBuf> = Vec::with_capacity(directories.len());
        for path in directories {
            let root = path
                .canonicalize()
                .map_err(|source| ConfigError::Directory {
                    path: path.clone(),
                    source,
                })?;
            if !root.is_dir() {
                return Err(ConfigError::NotADirectory(path.clone()));
            }
            if roots.contains(&root) {
                continue;
            }
            for other in &roots {
                let (outer, inner) = if root.starts_with(other) {
                    (other, &root)
                } else if other.starts_with(&root) {
                    (&root, other)
                } else {
                    continue;
                };
                return Err(ConfigError::Overlap {
                    outer: outer.clone(),
                    inner: inner.clone(),
                });
            }
            roots.push(root);
        }
        // Absolute (not canonical: a symbolic link swapped to a new target
        // must still be noticed), parsed once here so a bad file fails at start.
        let ignore_file = match ignore_file {
            Some(path) => {
                let absolute = std::path::absolute(path).map_err(|e| IgnoreFileError {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
                crate::filter::Filter::new(&roots, Some(&absolute))?;
                Some(absolute)
            }
            None => None,
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if bucket.is_empty() || !bucket.chars().all(valid) {
            return Err(ConfigError::BucketName(bucket.to_owned()));
        }
        Ok(Self {
            roots,
            ignore_file,
            nats_url: nats_url.to_owned(),
            bucket: bucket.to_owned(),
        })
    }

    /// The root `path` lies in, if any.
    pub fn root_of(&self, path: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .map(PathBuf::as_path)
            .find(|root| path.starts_with(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_resolved_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("inner")).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let ok = Config::new(&[a.join("../a")], None, "nats://x:1", "fs_hashes").unwrap();
        assert_eq!(ok.roots, vec![a.canonicalize().unwrap()]);

        let error = |dirs: &[PathBuf], bucket: &str| {
            Config::new(dirs, None, "nats://x:1", bucket)
                .unwrap_err()
                .to_string()
        };
        assert!(error(&[], "b").contains("no --directory"));
        assert!(error(&[dir.path().join("missing")], "b").contains("missing"));
        assert!(error(std::slice::from_ref(&file), "b").contains("not a directory"));
        assert!(error(&[a.clone(), a.join("inner")], "b").contains("inside"));
        assert!(error(&[a.join("inner"), a.clone()], "b").contains("inside"));
        assert!(error(std::slice::from_ref(&a), "bad name").contains("bucket"));
        assert!(error(std::slice::from_ref(&a), "").contains("bucket"));
        let bad_ignore = Config::new(
            std::slice::from_ref(&a),
            Some(&dir.path().join("none")),
            "u",
            "b",
        );
        assert!(
            bad_ignore
                .unwrap_err()
                .to_string()
                .contains("--ignore-file")
        );
    }
}
