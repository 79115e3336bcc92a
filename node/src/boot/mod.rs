//! What to boot: the per-machine policy, the iPXE scripts and menus, and the first-stage
//! programs (iPXE, PXELINUX) that TFTP and HTTP hand out. Pure decisions over the store's
//! current releases; the protocol servers only ask.

pub mod first_stage;
pub mod ipxe;
pub mod policy;
pub mod pxelinux;

pub use first_stage::{FirstStage, FirstStageFile};
pub use policy::{BootChoice, BootPolicy, Loader, Machine};
