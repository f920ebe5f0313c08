//! Hash maps and sets on the per-message path. Their keys include ids and names the peers
//! choose, so the hasher must resist collision flooding (a per-process random key); std's
//! SipHash does, but costs more than the rest of a lookup, and a message takes a dozen
//! lookups. aHash resists flooding at a fraction of the cost.

pub type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub type Set<K> = std::collections::HashSet<K, ahash::RandomState>;
