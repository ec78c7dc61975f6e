//! Library target so `chaos-daemon` can name this crate as a build-dependency (rebuild trigger).
#![no_std]
