//! Tests of the public validation API against Kubernetes' behaviour.
