//! Conformance suite (being written)
