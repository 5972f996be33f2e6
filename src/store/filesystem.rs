//! FileStore (being written)
/// Files.
#[derive(Debug)]
pub struct FileStore;
/// Builder.
#[derive(Debug)]
pub struct FileStoreBuilder;
