//! What this kernel offers (placeholder, filled in below).
