//! Include/exclude patterns as restic users write them.
//!
//! A pattern with a `/` is matched against the whole absolute path (`/home/*/cache`,
//! `**/node_modules`); one without is matched against the base name (`*.tmp`). A
//! directory that matches excludes (or includes) everything below it; callers get that
//! by not descending, or by asking [`PathFilter::matches_with_ancestors`].

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::OpsError;

#[derive(Clone, Debug)]
pub struct PathFilter {
    full: GlobSet,
    base: GlobSet,
    empty: bool,
}

impl Default for PathFilter {
    fn default() -> Self {
        PathFilter {
            full: GlobSet::empty(),
            base: GlobSet::empty(),
            empty: true,
        }
    }
}

impl PathFilter {
    /// `patterns` are case-sensitive, `ipatterns` case-insensitive.
    pub fn new(patterns: &[String], ipatterns: &[String]) -> Result<PathFilter, OpsError> {
        let mut full = GlobSetBuilder::new();
        let mut base = GlobSetBuilder::new();
        let mut n = 0;
        for (p, ci) in patterns
            .iter()
            .map(|p| (p, false))
            .chain(ipatterns.iter().map(|p| (p, true)))
        {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            n += 1;
            let build = |s: &str| {
                GlobBuilder::new(s)
                    .case_insensitive(ci)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| OpsError::Pattern {
                        pattern: p.to_string(),
                        reason: e.to_string(),
                    })
            };
            if p.contains('/') {
                let anchored = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("**/{p}")
                };
                full.add(build(&anchored)?);
            } else {
                base.add(build(p)?);
            }
        }
        let err = |e: globset::Error| OpsError::Pattern {
            pattern: "(set)".into(),
            reason: e.to_string(),
        };
        Ok(PathFilter {
            full: full.build().map_err(err)?,
            base: base.build().map_err(err)?,
            empty: n == 0,
        })
    }

    /// Reads patterns from a file: one per line, `#` comments and blank lines ignored.
    pub fn read_pattern_file(path: &std::path::Path) -> Result<Vec<String>, OpsError> {
        let text = std::fs::read_to_string(path).map_err(|e| OpsError::io(path, e))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect())
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether this exact path matches (not considering its ancestors).
    pub fn matches(&self, path: &str) -> bool {
        if self.empty {
            return false;
        }
        let base = path.rsplit('/').next().unwrap_or(path);
        self.base.is_match(base) || self.full.is_match(path)
    }

    /// Whether this path or any of its ancestors matches.
    pub fn matches_with_ancestors(&self, path: &str) -> bool {
        if self.empty {
            return false;
        }
        let mut end = path.len();
        loop {
            let p = &path[..end];
            if !p.is_empty() && self.matches(p) {
                return true;
            }
            match p.rfind('/') {
                Some(0) | None => return false,
                Some(i) => end = i,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_full_patterns() {
        let f = PathFilter::new(
            &[
                "*.tmp".into(),
                "/home/*/cache".into(),
                "**/node_modules".into(),
            ],
            &["*.JPG".into()],
        )
        .unwrap();
        assert!(f.matches("/a/b/x.tmp"));
        assert!(f.matches("/home/me/cache"));
        assert!(!f.matches("/home/me/x/cache"));
        assert!(f.matches("/src/node_modules"));
        assert!(f.matches("/p/photo.jpg"));
        assert!(!f.matches("/a/b/x.txt"));
        assert!(f.matches_with_ancestors("/home/me/cache/deep/file"));
        assert!(!f.matches_with_ancestors("/home/me/docs/file"));
        assert!(PathFilter::new(&["a[".into()], &[]).is_err());
    }
}
