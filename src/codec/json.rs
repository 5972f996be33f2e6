//! Json codec (being written)
/// JSON codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Json;
