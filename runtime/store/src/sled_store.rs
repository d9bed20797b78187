//! The sled back-end (work in progress).
