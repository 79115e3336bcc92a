//! Which boot stage a file of a release is: the release's boot entry names its kernel,
//! initrds or ISO; every other file (a squashfs, a preseed) is not a stage of its own.

use netboot_proto::{BootEntry, Release};

use super::record::{ImageRef, Stage, Step};

/// The step a client takes by fetching `path` of `release`.
pub fn step_of_file(release: &Release, path: &str) -> Option<Step> {
    stage_of_file(release, path).map(|stage| Step {
        stage,
        image: Some(ImageRef::new(&release.name, release.version)),
    })
}

/// The stage a client reaches by fetching `path` of `release`.
pub fn stage_of_file(release: &Release, path: &str) -> Option<Stage> {
    match release.boot.as_ref()? {
        BootEntry::Linux {
            kernel, initrds, ..
        } => {
            if kernel.as_str() == path {
                Some(Stage::Kernel)
            } else if initrds.iter().any(|i| i.as_str() == path) {
                Some(Stage::Initrd)
            } else {
                None
            }
        }
        BootEntry::Iso { iso } => (iso.as_str() == path).then_some(Stage::Kernel),
    }
}
