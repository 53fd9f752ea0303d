//! Execution: committed commands wait for the block their fence names ([`blocks`]); a block's
//! members are ordered by the dependency graph ([`order`]).

pub mod blocks;
pub mod order;
