pub mod bundle;
pub mod images;
pub mod keys;
pub mod publish;
pub mod verify;
