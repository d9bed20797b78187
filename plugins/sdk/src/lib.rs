//! The kefu plugin SDK (work in progress: see the skills issue).
