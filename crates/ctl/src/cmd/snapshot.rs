//! `snapshot status FILE` and `snapshot restore FILE`: offline work on the files `snapshot
//! save` writes. Against retcd such a file is the store's image (RETCDSNAP1, see
//! `docs/backend.md`), zero padding to a multiple of 512 bytes and the SHA-256 of both; a
//! copy of a member's `member/snap/db` (a redb file) can be restored too, with
//! `--skip-hash-check`, as etcdctl restores a copied bbolt file. etcd's own (bbolt) snapshots
//! are refused with a clear message: retcd's store is not bbolt.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use retcd_mvcc::{SNAPSHOT_MAGIC, SnapshotInfo, Store, StoreConfig};
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::error::CtlError;
use crate::gofmt::{self, json_string, quote};
use crate::output::{Format, table};

const SHA_LEN: u64 = 32;

/// What a snapshot file holds.
#[derive(Debug)]
pub enum SnapshotFile {
    /// A retcd snapshot image. `db_size`: the bytes before the SHA-256 (image and padding).
    Image {
        info: SnapshotInfo,
        db_size: u64,
        hash: HashCheck,
    },
    /// A copy of a member's redb backend file (no integrity hash).
    RawDb,
}

/// The SHA-256 trailer of an image file.
#[derive(Debug, PartialEq, Eq)]
pub enum HashCheck {
    Valid,
    Missing,
    /// (expected: the trailer, got: computed).
    Mismatch(Vec<u8>, Vec<u8>),
}

fn io_error(path: &Path, op: &str, e: io::Error) -> CtlError {
    // Go's *PathError text: "open x.db: no such file or directory"
    let msg = e.to_string();
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_lowercase();
    CtlError::Other(format!("{op} {}: {msg}", path.display()))
}

fn sha256_of(f: &mut File, len: u64) -> io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    io::copy(&mut f.take(len), &mut h)?;
    Ok(h.finalize().to_vec())
}

/// Reads and checks a snapshot file (see [`SnapshotFile`]); format errors, a cut-short or
/// corrupt image, are errors here whatever the hash.
pub fn examine(path: &Path) -> Result<SnapshotFile, CtlError> {
    let mut f = File::open(path).map_err(|e| io_error(path, "open", e))?;
    let len = f.metadata().map_err(|e| io_error(path, "stat", e))?.len();
    let mut head = [0u8; 20];
    let n = f.read(&mut head).map_err(|e| io_error(path, "read", e))?;
    let head = &head[..n];
    if head.starts_with(b"redb") {
        return Ok(SnapshotFile::RawDb);
    }
    if head.len() >= 20 && head[16..20] == 0xED0C_DAEDu32.to_le_bytes() {
        return Err(CtlError::Other(format!(
            "{} is an etcd (bbolt) snapshot: retcd restores only snapshots saved from retcd",
            path.display()
        )));
    }
    if !head.starts_with(SNAPSHOT_MAGIC) {
        return Err(CtlError::Other(format!(
            "{} is not a retcd snapshot (no RETCDSNAP1 header) nor a copy of a retcd db file",
            path.display()
        )));
    }
    f.seek(SeekFrom::Start(0))
        .map_err(|e| io_error(path, "seek", e))?;
    let info = retcd_mvcc::inspect_snapshot(BufReader::new(&mut f)).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.trim_start_matches("mvcc: corrupt backend: snapshot: ");
        CtlError::Other(format!(
            "snapshot file {} is corrupt or truncated: {detail}",
            path.display()
        ))
    })?;
    let after = len - info.size;
    if after == 0 {
        return Ok(SnapshotFile::Image {
            db_size: info.size,
            info,
            hash: HashCheck::Missing,
        });
    }
    if after < SHA_LEN {
        return Err(CtlError::Other(format!(
            "snapshot file {} is corrupt or truncated: {after} stray bytes after the image",
            path.display()
        )));
    }
    let db_size = len - SHA_LEN;
    // the padding between the image and the hash must be zeros
    let mut padding = Vec::new();
    f.seek(SeekFrom::Start(info.size))
        .map_err(|e| io_error(path, "seek", e))?;
    (&mut f)
        .take(db_size - info.size)
        .read_to_end(&mut padding)
        .map_err(|e| io_error(path, "read", e))?;
    let mut expected = vec![0u8; SHA_LEN as usize];
    f.read_exact(&mut expected)
        .map_err(|e| io_error(path, "read", e))?;
    let got = sha256_of(&mut f, db_size).map_err(|e| io_error(path, "read", e))?;
    let hash = if got == expected && padding.iter().all(|b| *b == 0) {
        HashCheck::Valid
    } else {
        HashCheck::Mismatch(expected, got)
    };
    Ok(SnapshotFile::Image { info, db_size, hash })
}

/// Go's `%v` of a byte slice: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("retcdctl-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn backend(e: impl std::fmt::Display) -> CtlError {
    CtlError::Other(e.to_string())
}

/// The status of a copied db file: opened (in a temporary copy) and imaged.
fn raw_db_info(path: &Path) -> Result<(SnapshotInfo, u64), CtlError> {
    let tmp = TempDir::new().map_err(backend)?;
    let db = tmp.0.join("db");
    std::fs::copy(path, &db).map_err(|e| io_error(path, "open", e))?;
    let (store, _) = Store::open(&db, StoreConfig::default()).map_err(backend)?;
    let mut image = Vec::new();
    store.write_snapshot(&mut image).map_err(backend)?;
    let info = retcd_mvcc::inspect_snapshot(image.as_slice()).map_err(backend)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok((info, size))
}

/// `snapshot status FILE`: hash, revision, total keys and size, as etcdctl prints them.
/// The hash is the store's state hash (what Maintenance.Hash answered when the snapshot
/// was taken); keys count every row of every table; the size is the file's without the
/// SHA-256.
pub fn status(ctx: &Ctx, args: &[String]) -> Result<(), CtlError> {
    let [path] = args else {
        return Err(CtlError::BadArgs(
            "snapshot status requires exactly one argument".into(),
        ));
    };
    // etcdctl sets up its printer (and so refuses an unknown format) here, without a client
    ctx.settings.check_format()?;
    if ctx.out.format == Format::Protobuf {
        return Err(ctx.out.unsupported());
    }
    let path = Path::new(path);
    std::fs::metadata(path).map_err(|e| io_error(path, "stat", e))?;
    let (info, size) = match examine(path)? {
        SnapshotFile::Image { info, db_size, .. } => (info, db_size),
        SnapshotFile::RawDb => raw_db_info(path)?,
    };
    let row = vec![
        format!("{:x}", info.hash),
        info.revision.to_string(),
        info.total_keys.to_string(),
        gofmt::humanize_bytes(size),
    ];
    match ctx.out.format {
        Format::Simple => println!("{}", row.join(", ")),
        Format::Table => print!(
            "{}",
            table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &[row])
        ),
        Format::Fields => {
            println!("\"Hash\" : {}", info.hash);
            println!("\"Revision\" : {}", info.revision);
            println!("\"Keys\" : {}", info.total_keys);
            println!("\"Size\" : {size}");
        }
        _ => println!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{size}}}",
            info.hash, info.revision, info.total_keys
        ),
    }
    Ok(())
}

/// A zap info line with epoch timestamps, as etcd's snapshot package logs.
fn zap(caller: &str, msg: &str, fields: &[(&str, String)]) {
    let mut line = format!(
        "{{\"level\":\"info\",\"ts\":{},\"caller\":\"{caller}\",\"msg\":\"{msg}\"",
        gofmt::zap_epoch_now()
    );
    for (k, v) in fields {
        line += &format!(",\"{k}\":{v}");
    }
    line.push('}');
    eprintln!("{line}");
}

/// Parses `name=url,name=url` as etcd's `types.NewURLsMap` (a name may repeat).
fn parse_cluster(s: &str) -> Result<BTreeMap<String, Vec<String>>, CtlError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| CtlError::Other(format!("parse {}: missing name", quote(part.as_bytes()))))?;
        out.entry(name.to_string()).or_default().push(url.to_string());
    }
    Ok(out)
}

fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// `snapshot restore FILE`: builds a new member's data dir from a snapshot, as etcdctl 3.4:
/// the keys, leases and auth of the snapshot, a fresh raft log, and the membership and ids
/// of the new cluster from the flags.
pub fn restore(a: &RestoreArgs) -> Result<(), CtlError> {
    let [path] = a.args.as_slice() else {
        return Err(CtlError::BadArgs(
            "snapshot restore requires exactly one argument".into(),
        ));
    };
    // etcd's ServerConfig.VerifyBootstrap, then the cluster from the flags
    let cluster = parse_cluster(&a.initial_cluster)?;
    let mine = cluster.get(&a.name).ok_or_else(|| {
        CtlError::Other(format!(
            "couldn't find local name {} in the initial cluster configuration",
            quote(a.name.as_bytes())
        ))
    })?;
    let advertise = split_urls(&a.initial_advertise_peer_urls);
    let (mut want, mut have) = (mine.clone(), advertise.clone());
    want.sort();
    have.sort();
    if want != have {
        return Err(CtlError::Other(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (resolved urls: {} != {})",
            a.name,
            mine.join(","),
            advertise.join(","),
            quote(have.join(",").as_bytes()),
            quote(want.join(",").as_bytes()),
        )));
    }
    let mut members: Vec<(u64, String, Vec<String>)> = cluster
        .iter()
        .map(|(name, urls)| {
            (
                retcd_api::ids::member_id(urls, &a.initial_cluster_token),
                name.clone(),
                urls.clone(),
            )
        })
        .collect();
    members.sort_by_key(|m| m.0);
    let ids: Vec<u64> = members.iter().map(|m| m.0).collect();
    let cluster_id = retcd_api::ids::cluster_id(&ids);
    let member_id = retcd_api::ids::member_id(&advertise, &a.initial_cluster_token);

    let data_dir = if a.data_dir.is_empty() {
        format!("{}.etcd", a.name)
    } else {
        a.data_dir.clone()
    };
    let data = PathBuf::from(&data_dir);
    if data.exists() {
        return Err(CtlError::Other(format!(
            "data-dir {} exists",
            quote(data_dir.as_bytes())
        )));
    }
    let member = data.join("member");
    let snap_dir = member.join("snap");
    let wal_dir = if a.wal_dir.is_empty() {
        member.join("wal")
    } else {
        PathBuf::from(&a.wal_dir)
    };
    let dirs = [
        ("path", json_string(path)),
        ("wal-dir", json_string(&wal_dir.to_string_lossy())),
        ("data-dir", json_string(&data_dir)),
        ("snap-dir", json_string(&snap_dir.to_string_lossy())),
    ];
    zap("snapshot/v3_snapshot.go:296", "restoring snapshot", &dirs);

    // Everything is checked before anything is written.
    let src = Path::new(path);
    let file = examine(src)?;
    match &file {
        SnapshotFile::Image { hash, .. } if !a.skip_hash_check => match hash {
            HashCheck::Valid => {}
            HashCheck::Missing => {
                return Err(CtlError::Other(
                    "snapshot missing hash but --skip-hash-check=false".into(),
                ));
            }
            HashCheck::Mismatch(expected, got) => {
                return Err(CtlError::Other(format!(
                    "expected sha256 {}, got {}",
                    go_bytes(expected),
                    go_bytes(got)
                )));
            }
        },
        SnapshotFile::RawDb if !a.skip_hash_check => {
            return Err(CtlError::Other(
                "snapshot missing hash but --skip-hash-check=false".into(),
            ));
        }
        _ => {}
    }

    let written = write_member(src, &file, &snap_dir, &wal_dir, member_id, cluster_id, &members);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&data);
        if !a.wal_dir.is_empty() {
            let _ = std::fs::remove_dir_all(&wal_dir);
        }
        return Err(e);
    }
    for (id, _, urls) in &members {
        let urls: Vec<String> = urls.iter().map(|u| json_string(u)).collect();
        zap(
            "membership/cluster.go:392",
            "added member",
            &[
                ("cluster-id", json_string(&format!("{cluster_id:x}"))),
                ("local-member-id", json_string("0")),
                ("added-peer-id", json_string(&format!("{id:x}"))),
                ("added-peer-peer-urls", format!("[{}]", urls.join(","))),
            ],
        );
    }
    zap("snapshot/v3_snapshot.go:309", "restored snapshot", &dirs);
    Ok(())
}

fn create_dir(p: &Path) -> Result<(), CtlError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| io_error(p, "mkdir", e))
}

/// Writes the member's backend (`<snap_dir>/db`) and an empty WAL directory.
fn write_member(
    src: &Path,
    file: &SnapshotFile,
    snap_dir: &Path,
    wal_dir: &Path,
    member_id: u64,
    cluster_id: u64,
    members: &[(u64, String, Vec<String>)],
) -> Result<(), CtlError> {
    create_dir(snap_dir)?;
    create_dir(wal_dir)?;
    let db = snap_dir.join("db");
    let store = match file {
        SnapshotFile::Image { .. } => {
            let (store, _) = Store::open(&db, StoreConfig::default()).map_err(backend)?;
            let f = File::open(src).map_err(|e| io_error(src, "open", e))?;
            store.restore_snapshot(BufReader::new(f)).map_err(backend)?;
            store
        }
        SnapshotFile::RawDb => {
            std::fs::copy(src, &db).map_err(|e| io_error(src, "open", e))?;
            let (store, _) = Store::open(&db, StoreConfig::default()).map_err(backend)?;
            store
        }
    };
    // The old cluster's raft position, identity and membership go; the new ones come from
    // the flags (read by retcd when it first starts on this directory).
    let restored: Vec<serde_json::Value> = members
        .iter()
        .map(|(id, name, urls)| serde_json::json!({"id": id, "name": name, "peer_urls": urls}))
        .collect();
    let restored = serde_json::to_vec(&restored).map_err(backend)?;
    let mut b = store.begin_batch().map_err(backend)?;
    for name in retcd_mvcc::LOCAL_APP_META {
        b.delete_meta(name).map_err(backend)?;
    }
    b.set_consistent_index(0, 0).map_err(backend)?;
    b.set_meta("member_id", &member_id.to_be_bytes())
        .map_err(backend)?;
    b.set_meta("cluster_id", &cluster_id.to_be_bytes())
        .map_err(backend)?;
    b.set_meta("restored_members", &restored).map_err(backend)?;
    b.commit(true).map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_byte_slices() {
        assert_eq!(go_bytes(&[1, 200, 0]), "[1 200 0]");
        assert_eq!(go_bytes(&[]), "[]");
    }

    #[test]
    fn clusters() {
        let c = parse_cluster("a=http://1,b=http://2,a=http://3").unwrap();
        assert_eq!(c["a"], vec!["http://1", "http://3"]);
        assert!(parse_cluster("nonsense").is_err());
    }
}
