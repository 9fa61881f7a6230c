//! retcdctl: etcdctl's commands, flags and output over the plain etcd v3 gRPC API.
//! Depends only on `retcd-api` (never on the server's crates), so it works against any etcd.

fn main() {
    eprintln!("retcdctl: not built yet (issue 7)");
    std::process::exit(1);
}
