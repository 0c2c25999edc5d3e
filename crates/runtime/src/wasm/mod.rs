//! PLACEHOLDER: see the module's issue.
