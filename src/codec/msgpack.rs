//! MsgPack codec (being written)
/// MessagePack codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgPack;
