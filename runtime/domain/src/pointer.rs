//! JSON pointers (RFC 6901) that locate a problem or a template inside a definition, such as
//! `/steps/2/depends_on/0`.

use std::fmt;

use serde::{Serialize, Serializer};

/// A location in a JSON document; the empty pointer is the whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JsonPointer(String);

impl JsonPointer {
    /// The whole document.
    pub fn root() -> Self {
        JsonPointer::default()
    }

    /// This pointer extended by an object field; `~` and `/` are escaped as RFC 6901 requires.
    pub fn field(&self, name: &str) -> Self {
        JsonPointer(format!(
            "{}/{}",
            self.0,
            name.replace('~', "~0").replace('/', "~1")
        ))
    }

    /// This pointer extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        JsonPointer(format!("{}/{index}", self.0))
    }

    /// This pointer followed by `relative`, a pointer into the value this one points at.
    pub fn join(&self, relative: &JsonPointer) -> Self {
        JsonPointer(format!("{}{}", self.0, relative.0))
    }

    /// The pointer's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The root is written `/` in messages so that it is visible; RFC 6901 spells it "".
        if self.0.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl Serialize for JsonPointer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_escapes() {
        let pointer = JsonPointer::root().field("steps").index(2).field("a/b~c");
        assert_eq!(pointer.as_str(), "/steps/2/a~1b~0c");
        assert_eq!(JsonPointer::root().to_string(), "/");
        let relative = JsonPointer::root().field("url");
        assert_eq!(pointer.join(&relative).as_str(), "/steps/2/a~1b~0c/url");
    }
}
