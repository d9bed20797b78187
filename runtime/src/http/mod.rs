//! The HTTP/WebSocket API (work in progress).
