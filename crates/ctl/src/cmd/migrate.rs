//! `migrate`: etcdctl 3.4 moves the keys of a stopped member's v2 store (its WAL and v2
//! snapshots) into its v3 store. retcd has no v2 store, so a retcd data dir never has
//! anything to migrate: retcdctl says so in etcdctl's words for that case (`no v2 keys to
//! migrate`, exit 0) and changes nothing. Up to that point it goes etcdctl's way, with its
//! messages: the transformer program checked as Go starts it (`fork/exec ...`,
//! `exec: "name": executable file not found in $PATH`; not run: no key would reach it),
//! else `using default transformer`; `DIR/member/snap` read (`open ...: no such file or
//! directory`), files other than `db` warned about; the WAL dir read (`--wal-dir`, else
//! `DIR/member/wal`), then:
//! - retcd's WAL chunks, or retcd's backend at `member/snap/db` (a restored member has no
//!   WAL yet): `no v2 keys to migrate`;
//! - etcd's WAL files or v2 snapshots (`*.snap`): an etcd member's data, which retcdctl
//!   cannot read (etcdctl migrates it);
//! - neither: each other file is ignored with etcdctl's warning, then `wal: file not found`
//!   (exit 1), as etcdctl.
//!
//! Global flags and `ETCDCTL_*` variables are not looked at (no client), arguments ignored.

use std::path::Path;

use crate::cli::MigrateArgs;
use crate::cmd::defrag::go_clean;
use crate::error::CtlError;
use crate::gofmt::{self, json_string};

/// zap's example logger (etcdctl's `zap.NewExample()`): JSON on stdout, no time or caller.
fn example_warn(msg: &str, path: &str) {
    println!(
        "{{\"level\":\"warn\",\"msg\":{},\"path\":{}}}",
        json_string(msg),
        json_string(path)
    );
}

/// Go's `filepath.Join(dir, "member", sub)`.
fn member_path(dir: &str, sub: &str) -> String {
    if dir.is_empty() {
        format!("member/{sub}")
    } else {
        go_clean(&format!("{dir}/member/{sub}"))
    }
}

/// A directory's entries as Go's `os.Open` and `Readdirnames` give them (directory order),
/// with Go's errors.
fn read_dir_names(dir: &str) -> Result<Vec<String>, CtlError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if Path::new(dir).is_file() => {
            let _ = e;
            return Err(CtlError::Other(format!("readdirent {dir}: not a directory")));
        }
        Err(e) => return Err(CtlError::Other(format!("open {dir}: {}", gofmt::os_error(&e)))),
    };
    entries
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(|e| CtlError::Other(format!("readdirent {dir}: {}", gofmt::os_error(&e))))
        })
        .collect()
}

/// The transformer program as Go's `exec.Command(name).Start()` finds it.
fn check_transformer(name: &str) -> Result<(), CtlError> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !name.contains('/') {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path.split(':').any(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            executable(&Path::new(dir).join(name)).unwrap_or(false)
        });
        if !found {
            return Err(CtlError::Other(format!(
                "exec: {}: executable file not found in $PATH",
                gofmt::quote(name.as_bytes())
            )));
        }
        return Ok(());
    }
    match executable(Path::new(name)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CtlError::Other(format!("fork/exec {name}: permission denied"))),
        Err(e) => Err(CtlError::Other(format!(
            "fork/exec {name}: {}",
            gofmt::os_error(&e)
        ))),
    }
}

/// etcd's WAL file names (`%016x-%016x.wal`).
fn etcd_wal_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".wal") else {
        return false;
    };
    let hex = |s: &str| (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    stem.split_once('-')
        .is_some_and(|(seq, index)| hex(seq) && hex(index))
}

/// retcd's WAL chunk names (`r-00_000_000_000_000_000_001.wal`).
fn retcd_wal_name(name: &str) -> bool {
    name.strip_prefix("r-")
        .and_then(|n| n.strip_suffix(".wal"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

/// Whether `path` is a redb file (retcd's backend).
fn is_redb(path: &str) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"redb")
}

fn etcd_data(what: &str) -> CtlError {
    CtlError::Other(format!(
        "{what} is etcd's: retcdctl cannot read an etcd member's v2 store (migrate it with etcdctl)"
    ))
}

/// `migrate --data-dir DIR [--wal-dir DIR] [--transformer PROG] [--no-ttl]`.
pub fn migrate(a: &MigrateArgs) -> Result<(), CtlError> {
    if a.transformer.is_empty() {
        println!("using default transformer");
    } else {
        check_transformer(&a.transformer)?;
    }
    let snap_dir = member_path(&a.data_dir, "snap");
    for name in read_dir_names(&snap_dir)? {
        if name.ends_with(".snap") {
            return Err(etcd_data(&format!("{snap_dir}/{name}")));
        }
        if name != "db" {
            example_warn("found unexpected non-snap file; skipping", &name);
        }
    }
    let wal_dir = if a.wal_dir.is_empty() {
        member_path(&a.data_dir, "wal")
    } else {
        a.wal_dir.clone()
    };
    let mut names = read_dir_names(&wal_dir)?;
    names.sort();
    if let Some(wal) = names.iter().find(|n| etcd_wal_name(n)) {
        return Err(etcd_data(&format!("{wal_dir}/{wal}")));
    }
    if names.iter().any(|n| retcd_wal_name(n)) || is_redb(&format!("{snap_dir}/db")) {
        // retcd keeps no v2 store
        println!("no v2 keys to migrate");
        return Ok(());
    }
    for name in &names {
        example_warn("ignored file in WAL directory", name);
    }
    Err(CtlError::Other("wal: file not found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_names() {
        assert!(etcd_wal_name("0000000000000000-0000000000000000.wal"));
        assert!(etcd_wal_name("000000000000000a-00000000000000ff.wal"));
        assert!(!etcd_wal_name("r-00_000_000_000_000_000_000.wal"));
        assert!(!etcd_wal_name("0.tmp"));
        assert!(retcd_wal_name("r-00_000_000_000_000_000_001.wal"));
        assert!(!retcd_wal_name("LOCK"));
        assert_eq!(member_path("", "snap"), "member/snap");
        assert_eq!(member_path("/d//x/", "wal"), "/d/x/member/wal");
    }
}
