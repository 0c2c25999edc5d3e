//! End-to-end tests: the real `skiff` binary driven by the real kubectl
//! (1.27 and 1.33, and the `/usr/bin/kubectl` dispatcher), the Python
//! `kubernetes` client and raw HTTPS requests with curl.
//!
//! One test binary with a module per area keeps link time down. Tools that
//! a test needs are checked up front and a missing one fails the test with
//! what to install; nothing is skipped silently.

mod bad_input;
mod harness;
mod kubectl;
mod python;
mod restart;
mod watch;
