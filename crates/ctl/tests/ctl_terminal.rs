//! retcdctl on a terminal (a pseudo-terminal from util-linux `script`): keys in colour for
//! `get` (not with `NO_COLOR` or `-w`), tables for `member list`, `endpoint status`,
//! `lease list`, `user list`, `role list`; and password prompts that do not echo, byte for
//! byte what etcdctl shows. Piped output is compared with etcdctl's in ctl_vs_etcdctl.rs.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ETCDCTL, RETCDCTL, Server as Etcd};

const SCRIPT: &str = "/usr/bin/script";

impl Etcd {
    /// Runs `tool --endpoints EP ARGS` on a pseudo-terminal, typing `keys` (each after a
    /// pause, so that the prompt is up); returns what the terminal showed.
    fn on_tty(&self, env: &str, tool: &str, args: &str, keys: &[&str]) -> String {
        let cmd = format!(
            "{env} {tool} --endpoints {} {args}; echo \"rc=$?\"",
            self.endpoint
        );
        let mut child = Command::new(SCRIPT)
            .args(["-qec", &cmd, "/dev/null"])
            .env("ETCDCTL_API", "3")
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script");
        let mut stdin = child.stdin.take().expect("stdin");
        for k in keys {
            std::thread::sleep(Duration::from_millis(1500));
            stdin.write_all(k.as_bytes()).expect("type");
            stdin.flush().expect("flush");
        }
        std::thread::sleep(Duration::from_millis(if keys.is_empty() { 0 } else { 1500 }));
        drop(stdin);
        let out = child.wait_with_output().expect("script output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn have_script() -> bool {
    let ok = Path::new(SCRIPT).exists();
    if !ok {
        eprintln!("skipped: needs util-linux `script` for a pseudo-terminal");
    }
    ok
}

#[test]
fn colour_and_tables_only_on_a_terminal() {
    if !have_script() {
        return;
    }
    let e = Etcd::etcd();
    let put = e.on_tty("", RETCDCTL, "put foo bar", &[]);
    assert_eq!(put, "OK\r\nrc=0\r\n");
    assert_eq!(
        e.on_tty("", RETCDCTL, "get foo", &[]),
        "\x1b[1;34mfoo\x1b[0m\r\nbar\r\nrc=0\r\n"
    );
    // NO_COLOR, -w and ETCDCTL_WRITE_OUT give etcdctl's bytes
    let plain = e.on_tty("", ETCDCTL, "get foo", &[]);
    assert_eq!(plain, "foo\r\nbar\r\nrc=0\r\n");
    assert_eq!(e.on_tty("NO_COLOR=1", RETCDCTL, "get foo", &[]), plain);
    assert_eq!(e.on_tty("", RETCDCTL, "get foo -w simple", &[]), plain);
    assert_eq!(
        e.on_tty("ETCDCTL_WRITE_OUT=simple", RETCDCTL, "get foo", &[]),
        plain
    );
    // tables: what `-w table` prints, where etcdctl has one
    for args in ["member list", "endpoint status"] {
        let table = e.on_tty("", ETCDCTL, &format!("{args} -w table"), &[]);
        let got = e.on_tty("", RETCDCTL, args, &[]);
        if args == "endpoint status" {
            // the raft index moves with every command; compare the frame
            let frame = |s: &str| {
                s.lines()
                    .map(|l| l.chars().filter(|c| !c.is_ascii_digit()).count())
                    .collect::<Vec<_>>()
            };
            assert_eq!(frame(&got), frame(&table), "{got}");
        } else {
            assert_eq!(got, table);
        }
    }
    let lease = e.on_tty("", RETCDCTL, "lease grant 100", &[]);
    let id = lease.split_whitespace().nth(1).expect("lease id").to_string();
    let list = e.on_tty("", RETCDCTL, "lease list", &[]);
    assert!(
        list.contains("|        ID        | TTL | GRANTED TTL | KEYS |"),
        "{list}"
    );
    assert!(list.contains(&format!("| {id} |")), "{list}");
    let users = e.on_tty("", RETCDCTL, "user add bob --new-user-password=x", &[]);
    assert!(users.starts_with("User bob created"), "{users}");
    e.on_tty("", RETCDCTL, "role add reader", &[]);
    e.on_tty("", RETCDCTL, "role grant-permission reader read a --prefix", &[]);
    e.on_tty("", RETCDCTL, "user grant-role bob reader", &[]);
    assert_eq!(
        e.on_tty("", RETCDCTL, "user list", &[]),
        "+------+--------+\r\n| USER | ROLES  |\r\n+------+--------+\r\n|  bob | reader |\r\n+------+--------+\r\nrc=0\r\n"
    );
    assert_eq!(
        e.on_tty("", RETCDCTL, "role list", &[]),
        "+--------+---------------+\r\n|  ROLE  |  PERMISSIONS  |\r\n+--------+---------------+\r\n| reader | read prefix a |\r\n+--------+---------------+\r\nrc=0\r\n"
    );
}

#[test]
fn password_prompts_do_not_echo() {
    if !have_script() {
        return;
    }
    let e = Etcd::etcd();
    for (name, typed) in [("u1", ["secret\r", "secret\r"]), ("u2", ["secret\r", "other\r"])] {
        let want = e.on_tty("", ETCDCTL, &format!("user add {name}"), &typed);
        let got = e.on_tty("", RETCDCTL, &format!("user add {name}x"), &typed);
        assert_eq!(got.replace(&format!("{name}x"), name), want);
        assert!(!got.contains("secret"), "{got}");
    }
    // backspace edits, Ctrl-C leaves with the terminal's echo back on
    let got = e.on_tty("", RETCDCTL, "user add u3", &["secrex\x7ft\r", "secret\r"]);
    assert!(got.ends_with("User u3 created\r\nrc=0\r\n"), "{got}");
    let got = e.on_tty(
        "",
        RETCDCTL,
        "user add u4; echo \"rc=$?\"; stty -a | grep -o ' -*echo ' | head -1 #",
        &["sec\x03"],
    );
    assert_eq!(got, "Password of u4: \r\nrc=130\r\n echo \r\n");
    // --user NAME asks for the password the same way
    let want = e.on_tty("", ETCDCTL, "--user u3 get foo", &["secret\r"]);
    let got = e.on_tty("", RETCDCTL, "--user u3 get foo", &["secret\r"]);
    assert!(
        got.starts_with("Password: \r\n") && !got.contains("secret"),
        "{got}"
    );
    assert_eq!(got.lines().last(), want.lines().last(), "{got}");
}
