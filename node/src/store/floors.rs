//! The version floor of each name, kept apart from the release files.
//!
//! A new release must be newer than anything this node ever committed of its name. Taking
//! that only from the `.release` files would forget it when a file is deleted (by an admin,
//! a bad script, or retention of a damaged store), and an older, still correctly signed
//! release could then be accepted as new. So the floors live in their own file, written
//! atomically after every commit: `<name> <version>` per line.

use std::{collections::BTreeMap, fs, io, path::Path};

use netboot_proto::ImageName;

use crate::fsutil;

pub(crate) const FLOORS_FILE: &str = "floors";

pub(crate) type Floors = BTreeMap<ImageName, u64>;

/// Reads the floors; a missing file is no floors (a new or older data dir). A line that
/// does not parse is an error naming the file and line: silently dropping a floor would
/// reopen the door it closes.
pub(crate) fn load(path: &Path) -> Result<Floors, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Floors::new()),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    let mut floors = Floors::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(name, version)| {
            Some((
                name.parse::<ImageName>().ok()?,
                version.parse::<u64>().ok()?,
            ))
        });
        let Some((name, version)) = parsed else {
            return Err(format!(
                "line {}: expected `<image name> <version>`, found `{line}`",
                i + 1
            ));
        };
        let floor = floors.entry(name).or_insert(0);
        *floor = (*floor).max(version);
    }
    Ok(floors)
}

pub(crate) fn save(path: &Path, floors: &Floors) -> io::Result<()> {
    let text: String = floors
        .iter()
        .map(|(name, version)| format!("{name} {version}\n"))
        .collect();
    fsutil::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FLOORS_FILE);
        assert!(load(&path).unwrap().is_empty());
        let floors = Floors::from([("deb".parse().unwrap(), 7), ("ipxe".parse().unwrap(), 2)]);
        save(&path, &floors).unwrap();
        assert_eq!(load(&path).unwrap(), floors);
        fs::write(&path, "deb 7\ndeb seven\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains("line 2") && err.contains("deb seven"), "{err}");
    }
}
