//! kefu's dialog flow language (work in progress: see the flow-language issue).
