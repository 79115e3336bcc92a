//! What to boot: the per-machine policy, the iPXE scripts, PXELINUX and GRUB configs, and
//! the first-stage programs (iPXE, PXELINUX, shim + GRUB) that TFTP and HTTP hand out. Pure
//! decisions over the store's current releases; the protocol servers only ask.

pub mod first_stage;
pub mod grub;
pub mod ipxe;
pub mod policy;
pub mod pxelinux;
pub mod release_file;

pub use first_stage::{FirstStage, FirstStageFile};
pub use policy::{BootChoice, BootPolicy, Loader, Machine};
