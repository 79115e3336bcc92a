//! Image names and paths inside an image.
//!
//! Both end up in URLs (`/images/<name>/<path>`), TFTP file names, PXELINUX configs and file
//! names on disk, so they are restricted to a conservative character set that needs no
//! escaping anywhere and cannot climb out of a directory.

use std::{fmt, str::FromStr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("image name `{0}` is invalid: use 1-64 characters a-z 0-9 . _ -, starting with a letter or digit")]
    BadName(String),
    #[error("path `{0}` inside an image is invalid: {1}")]
    BadPath(String, &'static str),
}

/// The name of a boot image, e.g. `debian-12` or `sysrescue`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName(String);

impl ImageName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For names known valid at compile time; panics otherwise (a programming error).
    pub fn from_static(s: &'static str) -> Self {
        match s.parse() {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ImageName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl FromStr for ImageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(NameError::BadName(s.to_string()))
        }
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A relative path of a file inside an image, e.g. `vmlinuz` or `live/filesystem.squashfs`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImagePath(String);

const MAX_PATH: usize = 255;

impl ImagePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component, e.g. `filesystem.squashfs`.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl FromStr for ImagePath {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| Err(NameError::BadPath(s.to_string(), why));
        if s.is_empty() {
            return bad("it is empty");
        }
        if s.len() > MAX_PATH {
            return bad("it is longer than 255 bytes");
        }
        if s.starts_with('/') {
            return bad("it must be relative (no leading /)");
        }
        for component in s.split('/') {
            if component.is_empty() {
                return bad("it has an empty component (// or a trailing /)");
            }
            if component == "." || component == ".." {
                return bad("`.` and `..` components are not allowed");
            }
            if !component
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'~'))
            {
                return bad("only A-Z a-z 0-9 . _ - + ~ and / are allowed");
            }
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["debian-12", "a", "sysrescue_11.0", "0day"] {
            assert!(good.parse::<ImageName>().is_ok(), "{good}");
        }
        for bad in ["", "Debian", "-x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<ImageName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        for good in [
            "vmlinuz",
            "live/filesystem.squashfs",
            "EFI/BOOT/BOOTX64.EFI",
            "a+b~c",
        ] {
            assert!(good.parse::<ImagePath>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            "./a",
            "a\\b",
            "a b",
            "a\0b",
        ] {
            assert!(bad.parse::<ImagePath>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "live/fs.sfs".parse::<ImagePath>().unwrap().file_name(),
            "fs.sfs"
        );
    }
}
