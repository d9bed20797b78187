//! kefu-tickets (in progress).
