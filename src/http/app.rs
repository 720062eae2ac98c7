//! What the HTTP edge serves: the application ([`crate::app::App`]), and the transport limits
//! it was built with ([`crate::config::Limits`]), under the names the edge's files use.

pub use crate::app::App;
pub use crate::config::Limits;
