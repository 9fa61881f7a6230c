//! `defrag --data-dir DIR`: offline defragmentation of a stopped member's backend, as
//! etcdctl 3.4 does it for etcd's bbolt file. retcd's backend is a redb file at the same path
//! (`DIR/member/snap/db`); it is opened as the server opens it and rewritten by the server's
//! own defragmentation (`retcd_mvcc::Store::defragment`). etcdctl's messages and exit codes:
//! nothing on success; a file that cannot be opened is etcd's backend's critical log line
//! (exit 2; etcdctl then panics with a Go stack trace, not reproduced); a file a running
//! server holds is waited for, with etcdctl's note after a second; a failed defragmentation
//! is `Failed to defragment etcd data[DIR] (ERR)`, exit 1.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use retcd_mvcc::{MvccError, Store, StoreConfig};

use crate::error::{CtlError, exit};
use crate::gofmt;

/// Go's `filepath.Clean`: one slash between elements, no `.` elements, `..` resolved
/// lexically, `.` for nothing.
pub(crate) fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's text of a system call's error (`no such file or directory`).
fn go_reason(e: &io::Error) -> String {
    gofmt::os_error(e)
}

/// etcd's backend failing to open its file: capnslog's critical line, then the exit code
/// of etcdctl's panic (Go's 2).
fn cannot_open(db: &str, why: &str) -> ! {
    eprintln!(
        "{} C | mvcc/backend: cannot open database at {db} ({why})",
        gofmt::capnslog_now()
    );
    std::process::exit(2);
}

/// `defrag --data-dir DIR`.
pub fn defrag_data_dir(dir: &str) -> Result<(), CtlError> {
    let db = go_clean(&format!("{dir}/member/snap/db"));
    // bbolt opens its file read-write, creating it if missing (its directory must exist),
    // never truncating it
    {
        use std::os::unix::fs::OpenOptionsExt;
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&db)
        {
            cannot_open(&db, &format!("open {db}: {}", go_reason(&e)));
        }
    }
    let started = Instant::now();
    let mut told = false;
    let store = loop {
        match Store::open(Path::new(&db), StoreConfig::default()) {
            // an unfinished compaction is left for the server to resume
            Ok((store, _unfinished)) => break store,
            Err(MvccError::InUse) => {
                if !told && started.elapsed() >= Duration::from_secs(1) {
                    eprintln!(
                        "waiting for etcd to close and release its lock on {}. To defrag a running etcd instance, omit --data-dir.",
                        gofmt::quote(db.as_bytes())
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => cannot_open(&db, &e.to_string()),
        }
    };
    if let Err(e) = store.defragment() {
        eprintln!("Failed to defragment etcd data[{dir}] ({e})");
        std::process::exit(exit::ERROR);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cleaned_as_go_does() {
        for (raw, clean) in [
            ("/tmp/d/member/snap/db", "/tmp/d/member/snap/db"),
            ("/tmp/d//member/snap/db", "/tmp/d/member/snap/db"),
            ("./d/member/snap/db", "d/member/snap/db"),
            ("//tmp/a/../b/member", "/tmp/b/member"),
            ("../x/./y", "../x/y"),
            ("/../x", "/x"),
            ("a/..", "."),
            ("", "."),
        ] {
            assert_eq!(go_clean(raw), clean, "{raw}");
        }
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(go_reason(&e), "no such file or directory");
    }
}
