pub mod capabilities;
pub mod model;
pub mod runtime;
