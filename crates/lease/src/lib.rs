//! The lessor (etcd's `lease` package), filled in by issue 5.
