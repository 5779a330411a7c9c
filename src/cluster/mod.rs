//! Cluster mode's ephemeral plane: state that every node must agree on but that no message
//! depends on, kept in Redis (see docs/ARCHITECTURE.md, "Cluster mode"). The durable plane,
//! messages and their order, is PostgreSQL's (`db::pg`); losing Redis loses none of it.
//!
//! - [`caps`]: connection caps counted over every node.

pub mod caps;
