//! Recovery: how a replica that fell behind gets back in step. Through its peers first
//! ([`catch_up`]: finished blocks f+1 of them vouch for), and when they no longer hold what it
//! misses, from the certified chain ([`settled`] asks what is settled at a chain block;
//! [`rejoin`] says what a claim may say and how f+1 claims combine).

pub mod catch_up;
pub mod rejoin;
pub mod settled;
