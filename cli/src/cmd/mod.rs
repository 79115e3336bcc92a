pub mod bundle;
pub mod images;
pub mod keys;
pub mod node;
pub mod publish;
pub mod repair;
pub mod status;
pub mod verify;
