//! Store keys, built only from validated names so that nothing a user writes (a category
//! folder, a run name) can escape its prefix or address another object.

use std::fmt;

#[derive(Debug, thiserror::Error)]
#[error("invalid name `{name}`: {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

/// A name usable as one key segment: not empty, at most 200 bytes, no `/`, `\`, control
/// characters, `..`, and no leading `.`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError {
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > 200 {
        return fail("it is longer than 200 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return fail("it contains a path separator");
    }
    if name.contains("..") {
        return fail("it contains `..`");
    }
    if name.starts_with('.') {
        return fail("it starts with `.`");
    }
    if name.chars().any(char::is_control) {
        return fail("it contains a control character");
    }
    Ok(())
}

/// A `/`-separated key of validated segments.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn new<S: AsRef<str>>(segments: impl IntoIterator<Item = S>) -> Result<Key, NameError> {
        let mut key = String::new();
        for segment in segments {
            validate_name(segment.as_ref())?;
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(segment.as_ref());
        }
        if key.is_empty() {
            return Err(NameError {
                name: String::new(),
                reason: "a key needs at least one segment",
            });
        }
        Ok(Key(key))
    }

    /// This key with one more validated segment.
    pub fn join(&self, segment: &str) -> Result<Key, NameError> {
        validate_name(segment)?;
        Ok(Key(format!("{}/{segment}", self.0)))
    }

    /// This key with several more segments (each validated).
    pub fn join_all<S: AsRef<str>>(
        &self,
        segments: impl IntoIterator<Item = S>,
    ) -> Result<Key, NameError> {
        segments
            .into_iter()
            .try_fold(self.clone(), |key, s| key.join(s.as_ref()))
    }

    /// A key read back from the store (listing), checked segment by segment.
    pub fn parse(raw: &str) -> Result<Key, NameError> {
        Key::new(raw.split('/'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The part after `prefix/`, if this key is under `prefix`.
    pub fn strip_prefix(&self, prefix: &Key) -> Option<&str> {
        self.0.strip_prefix(prefix.as_str())?.strip_prefix('/')
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [
            "",
            "a/b",
            "..",
            "../etc",
            "a\\b",
            ".hidden",
            "line\nbreak",
            "x..y",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["breakfast_box", "01", "screw bag", "run-2026.11", "Ölpumpe"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn keys_join_and_parse() {
        let key = Key::new(["runs", "r1"])
            .unwrap()
            .join_all(["jobs", "abc", "spec.json"])
            .unwrap();
        assert_eq!(key.as_str(), "runs/r1/jobs/abc/spec.json");
        assert_eq!(key.name(), "spec.json");
        assert_eq!(Key::parse(key.as_str()).unwrap(), key);
        assert_eq!(
            key.strip_prefix(&Key::new(["runs", "r1"]).unwrap()),
            Some("jobs/abc/spec.json")
        );
        assert!(Key::parse("runs/../x").is_err());
        assert!(Key::new(["runs"]).unwrap().join("a/b").is_err());
    }
}
