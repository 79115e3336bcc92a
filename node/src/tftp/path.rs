//! Normalisation and validation of requested file names.
//!
//! Done by the server before any source is asked, so every `TftpSource` gets a
//! relative, `/`-separated name without `..`, and a source that maps names onto a
//! filesystem cannot be walked out of its root by a crafted request.

use super::packet::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty file name")]
    Empty,
    #[error("file name contains NUL")]
    Nul,
    #[error("absolute path after normalisation")]
    Absolute,
    #[error("'..' component (path traversal)")]
    ParentComponent,
    #[error("'.' component")]
    CurrentComponent,
    #[error("empty path component")]
    EmptyComponent,
}

impl PathError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            PathError::Empty => ErrorCode::FileNotFound,
            _ => ErrorCode::AccessViolation,
        }
    }
}

/// Turns a requested name into the relative path a source is asked for.
///
/// Backslashes become slashes first because some PXE ROMs and Windows-built
/// configs send `\boot\x.efi`; then exactly one leading `/` is stripped because
/// many clients send "absolute" names meaning "relative to the TFTP root" (what
/// tftpd-hpa's `-s` does). Anything still absolute (`//etc/passwd`) is refused.
///
/// `.` components are refused too: no boot loader needs them, and allowing them
/// would make two spellings of one file, which confuses per-file policy in sources.
pub fn normalize(requested: &str) -> Result<String, PathError> {
    if requested.contains('\0') {
        return Err(PathError::Nul);
    }
    let unified = requested.replace('\\', "/");
    let relative = unified.strip_prefix('/').unwrap_or(&unified);
    if relative.is_empty() {
        return Err(PathError::Empty);
    }
    if relative.starts_with('/') {
        return Err(PathError::Absolute);
    }
    for component in relative.split('/') {
        match component {
            "" => return Err(PathError::EmptyComponent),
            ".." => return Err(PathError::ParentComponent),
            "." => return Err(PathError::CurrentComponent),
            _ => {}
        }
    }
    Ok(relative.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert_eq!(normalize("pxelinux.0").unwrap(), "pxelinux.0");
        assert_eq!(normalize("/pxelinux.0").unwrap(), "pxelinux.0");
        assert_eq!(
            normalize("pxelinux.cfg/01-aa-bb").unwrap(),
            "pxelinux.cfg/01-aa-bb"
        );
        assert_eq!(
            normalize("\\boot\\grub\\x64.efi").unwrap(),
            "boot/grub/x64.efi"
        );
        assert_eq!(normalize("a..b/..c/d..").unwrap(), "a..b/..c/d..");
        assert_eq!(normalize(".hidden").unwrap(), ".hidden");
    }

    #[test]
    fn rejects_traversal_and_odd_shapes() {
        assert_eq!(normalize(""), Err(PathError::Empty));
        assert_eq!(normalize("/"), Err(PathError::Empty));
        assert_eq!(normalize("\\"), Err(PathError::Empty));
        assert_eq!(normalize("//etc/passwd"), Err(PathError::Absolute));
        assert_eq!(normalize("\\\\server\\share"), Err(PathError::Absolute));
        assert_eq!(normalize("../etc/passwd"), Err(PathError::ParentComponent));
        assert_eq!(normalize("a/../../x"), Err(PathError::ParentComponent));
        assert_eq!(normalize("a\\..\\..\\x"), Err(PathError::ParentComponent));
        assert_eq!(normalize("/.."), Err(PathError::ParentComponent));
        assert_eq!(normalize("a/.."), Err(PathError::ParentComponent));
        assert_eq!(normalize("./a"), Err(PathError::CurrentComponent));
        assert_eq!(normalize("a//b"), Err(PathError::EmptyComponent));
        assert_eq!(normalize("a/"), Err(PathError::EmptyComponent));
        assert_eq!(normalize("a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn error_codes() {
        assert_eq!(PathError::Empty.error_code(), ErrorCode::FileNotFound);
        assert_eq!(
            PathError::ParentComponent.error_code(),
            ErrorCode::AccessViolation
        );
    }
}
