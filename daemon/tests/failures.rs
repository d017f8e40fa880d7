//! Failures end with a clear error, a non-zero exit and nothing presented as a success; a
//! SIGKILL at any point of a backup or a prune leaves the repository consistent and the next
//! backup succeeds.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use conservator_e2e::cli::{Conservator, restored};
use conservator_e2e::tree::{self, TreeSpec};
use conservator_e2e::{SeaweedFs, free_port};
use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_conservator");
const PW: &str = "correct horse battery staple";

fn local(work: &Path) -> Conservator {
    Conservator::new(BIN, work.join("repo").to_str().unwrap(), PW)
}

/// A repository with one snapshot of a small tree; returns the source.
fn with_snapshot(c: &Conservator, work: &Path) -> PathBuf {
    let src = work.join("media");
    tree::media_tree(&src, &TreeSpec::small(11));
    c.init();
    c.backup(&src);
    src
}

fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            if !f.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

fn assert_failed(r: &conservator_e2e::cli::Run, needle: &str) {
    assert_ne!(r.code, 0, "must fail: {r}");
    assert!(r.stderr.contains(needle), "the error must say {needle:?}: {r}");
    assert!(!r.stdout.contains("restored snapshot") && !r.stdout.contains("no errors"), "presented as a success: {r}");
}

#[test]
fn wrong_passphrase() {
    let work = tempfile::tempdir().unwrap();
    let c = local(work.path());
    with_snapshot(&c, work.path());
    let wrong = c.clone().env("CONSERVATOR_PASSWORD", "Correct horse battery staple");
    for args in [vec!["snapshots"], vec!["restore", "latest", "--target", "/tmp/never"], vec!["check"]] {
        let r = wrong.run(&args);
        assert_failed(&r, "wrong passphrase or key");
    }
    assert!(!Path::new("/tmp/never").exists());
    let none = c.clone().env_remove("CONSERVATOR_PASSWORD");
    assert_failed(&none.run(["snapshots"]), "no repository secret given");
}

#[test]
fn missing_repository() {
    let work = tempfile::tempdir().unwrap();
    let c = local(work.path());
    let r = c.run(["snapshots"]);
    assert_failed(&r, "no repository at");
    assert!(r.stderr.contains("conservator repo init"), "the fix must be named: {r}");
    let r = c.run(["backup", work.path().to_str().unwrap()]);
    assert_failed(&r, "no repository at");
    assert!(!work.path().join("repo").exists(), "a failed backup must not create a repository");
    let r = Conservator::new(BIN, "s3:ftp://host/bucket", PW).run(["snapshots"]);
    assert_failed(&r, "bad store location");
    // init twice refuses.
    c.init();
    assert_failed(&c.run(["init"]), "already holds a repository");
}

/// Damage in a pack: `check --read-data` names the pack, the snapshots and the files it
/// affects; restore fails instead of writing wrong bytes.
fn damaged_pack(damage: impl Fn(&Path)) {
    let work = tempfile::tempdir().unwrap();
    let c = local(work.path());
    let src = with_snapshot(&c, work.path());
    c.check_clean();
    // The biggest pack holds file data.
    let packs = pack_files(&work.path().join("repo"));
    let victim = packs.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    damage(victim);
    let name = victim.file_name().unwrap().to_string_lossy().to_string();

    let r = c.run(["check", "--read-data"]);
    assert_failed(&r, "error(s)");
    assert!(r.stdout.contains(&name[..8]), "the damaged pack must be named: {r}");
    assert!(r.stdout.contains("affects"), "the affected snapshot/files must be named: {r}");
    assert!(r.stdout.contains(src.to_str().unwrap()), "affected files are listed by path: {r}");

    let t = work.path().join("t");
    let r = c.run(["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_failed(&r, "damaged");
}

#[test]
fn truncated_pack() {
    damaged_pack(|p| {
        let len = std::fs::metadata(p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len / 2).unwrap();
    });
}

#[test]
fn corrupted_pack() {
    damaged_pack(|p| {
        let mut b = std::fs::read(p).unwrap();
        let i = b.len() / 3;
        b[i] ^= 0x10;
        std::fs::write(p, b).unwrap();
    });
}

#[test]
fn unreachable_s3() {
    let port = free_port();
    let c = Conservator::new(BIN, &format!("s3:http://127.0.0.1:{port}/backups/ca-1a2b3c4d"), PW)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret-value");
    let t = Instant::now();
    for args in [vec!["init"], vec!["snapshots"]] {
        let r = c.run(&args);
        assert_failed(&r, "unreachable");
        assert!(r.stderr.contains(&format!("127.0.0.1:{port}")), "the endpoint must be named: {r}");
        assert!(!r.all().contains("wJalrXUtnFEMI"), "the secret leaks: {r}");
    }
    assert!(t.elapsed() < Duration::from_secs(120), "giving up took {:?}", t.elapsed());
    let nocreds = Conservator::new(BIN, &format!("s3:http://127.0.0.1:{port}/backups"), PW);
    assert_failed(&nocreds.env_remove("AWS_ACCESS_KEY_ID").run(["snapshots"]), "AWS_ACCESS_KEY_ID");
}

#[test]
fn s3_wrong_secret_is_denied() {
    let sw = SeaweedFs::start();
    let c = Conservator::new(BIN, &format!("s3:{}/backups/x", sw.endpoint()), PW)
        .env("AWS_ACCESS_KEY_ID", sw.access_key())
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let r = c.run(["init"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("refused") || r.stderr.contains("credentials"), "{r}");
    assert!(!r.all().contains("not-the-secret"), "the secret leaks: {r}");
}

/// A restore target on a 4 MiB tmpfs: the restore fails with "out of space", names the target.
#[test]
fn full_disk_at_restore_target() {
    let work = tempfile::tempdir().unwrap();
    let c = local(work.path());
    with_snapshot(&c, work.path());
    let mnt = work.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(st.success(), "this test mounts a 4 MiB tmpfs and needs root (CI runs as root)");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Umount(mnt.clone());
    let r = c.run(["restore", "latest", "--target", mnt.to_str().unwrap()]);
    assert_failed(&r, "out of space");
    assert!(r.stderr.contains(mnt.to_str().unwrap()), "the target must be named: {r}");
}

/// Run `cmd` once to learn its duration; then until `kills` SIGKILLs have landed while it
/// ran (at most 3× as many rounds): start it, SIGKILL it at a random moment, check
/// --read-data must be clean, and a backup must then succeed. A kill that finds the process
/// already done shortens the window the next kills are drawn from.
fn kill_loop(c: &Conservator, src: &Path, kills: usize, mut prepare: impl FnMut(usize), args: &[&str]) {
    let mut rng = rand::thread_rng();
    prepare(0);
    let t = Instant::now();
    c.ok(args);
    let mut window = t.elapsed().max(Duration::from_millis(50));
    eprintln!("{args:?} takes {window:?} uninterrupted");
    let mut killed_mid = 0;
    let mut round = 0;
    while killed_mid < kills && round < kills * 3 {
        round += 1;
        prepare(round);
        let mut child = c.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let at = window.mul_f64(rng.gen_range(0.02..0.95));
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            killed_mid += 1;
        } else {
            window = at.max(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        c.check_clean();
        let b = c.backup(src);
        assert_eq!(b["complete"], true, "round {round}: {b}");
    }
    eprintln!("{args:?}: {killed_mid} kills landed while it ran, in {round} rounds");
    assert!(killed_mid >= kills, "only {killed_mid} of {round} kills hit a running process");
}

#[test]
fn sigkill_during_backup() {
    let work = tempfile::tempdir().unwrap();
    let key = String::from_utf8(std::process::Command::new(BIN).args(["repo", "key", "generate"]).output().unwrap().stdout).unwrap();
    let c = local(work.path()).env_remove("CONSERVATOR_PASSWORD").env("CONSERVATOR_KEY", key.trim());
    let src = work.path().join("media");
    let info = tree::media_tree(&src, &TreeSpec::small(5));
    c.init();
    let mut seed = 100;
    kill_loop(&c, &src, 20, |_| {
        seed += 1;
        tree::change_share(&src, &info, 0.2, seed);
    }, &["backup", "--force", src.to_str().unwrap()]);
    let t = work.path().join("t");
    c.restore("latest", &t);
    tree::assert_same_tree(&src, &restored(&t, &src));
}

#[test]
fn sigkill_during_prune() {
    let work = tempfile::tempdir().unwrap();
    let key = String::from_utf8(std::process::Command::new(BIN).args(["repo", "key", "generate"]).output().unwrap().stdout).unwrap();
    let c = local(work.path()).env_remove("CONSERVATOR_PASSWORD").env("CONSERVATOR_KEY", key.trim());
    let src = work.path().join("media");
    let info = tree::media_tree(&src, &TreeSpec::small(6));
    c.init();
    let mut seed = 200;
    let (c2, src2) = (c.clone(), src.clone());
    kill_loop(&c, &src, 20, move |_| {
        // Garbage to prune: two changed backups, the older forgotten.
        for _ in 0..2 {
            seed += 1;
            tree::change_share(&src2, &info, 0.15, seed);
            c2.backup(&src2);
        }
        c2.ok(["forget", "--keep-last", "1"]);
    }, &["prune"]);
    let t = work.path().join("t");
    c.restore("latest", &t);
    tree::assert_same_tree(&src, &restored(&t, &src));
}
