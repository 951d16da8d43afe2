pub mod routing;
pub mod signature;
pub mod simulate;
