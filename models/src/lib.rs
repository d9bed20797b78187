//! kefu's understanding models (work in progress: see the understanding issue).
