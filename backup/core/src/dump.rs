//! What a `mariadb-dump` stream says about itself, and the rewrite that loads it under
//! another database name. Pure: it reads bytes the caller hands it.
//!
//! A dump made with `--master-data=2 --gtid` carries, as SQL comments, the binlog
//! coordinates at the top (`-- CHANGE MASTER TO MASTER_LOG_FILE='…', MASTER_LOG_POS=…;`)
//! and the GTID at the end (`-- SET GLOBAL gtid_slave_pos='D-S-N,…';`), and a whole dump
//! ends with the trailer `-- Dump completed on …`. A stream that lacks the trailer was cut
//! short (server gone, dump killed, disk full) even when the tool's exit status says nothing.

use std::collections::BTreeMap;

/// Bytes kept from each end of a dump stream to read its header and trailer.
pub const ENDS_LEN: usize = 64 * 1024;

/// The start and the end of a stream, and how its command ended.
#[derive(Debug, Clone, Default)]
pub struct StreamEnds {
    /// Up to [`ENDS_LEN`] first bytes.
    pub head: Vec<u8>,
    /// Up to [`ENDS_LEN`] last bytes.
    pub tail: Vec<u8>,
    /// Total bytes.
    pub size: u64,
}

/// Facts read from a complete dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DumpFacts {
    /// `Server version` from the header, e.g. `10.11.19-MariaDB-0+deb12u1-log`.
    pub server_version: Option<String>,
    /// Binlog file at the dump's consistent point.
    pub binlog_file: Option<String>,
    /// Binlog position at the dump's consistent point.
    pub binlog_pos: Option<u64>,
    /// GTID position (`gtid_slave_pos` to set on a replica), e.g. `0-1-42`.
    pub gtid: Option<String>,
    /// The trailer's time text (`2026-12-04  4:49:17`), in the dump host's local time.
    pub completed_on: String,
}

impl DumpFacts {
    /// As snapshot stream metadata.
    pub fn to_meta(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(v) = &self.server_version {
            m.insert("server_version".into(), v.clone());
        }
        if let Some(v) = &self.binlog_file {
            m.insert("binlog_file".into(), v.clone());
        }
        if let Some(v) = self.binlog_pos {
            m.insert("binlog_pos".into(), v.to_string());
        }
        if let Some(v) = &self.gtid {
            m.insert("gtid".into(), v.clone());
        }
        m.insert("dump_completed_on".into(), self.completed_on.clone());
        m
    }
}

/// Check that `ends` is a whole `mariadb-dump` stream and read its facts. The error text
/// says what is missing; it is recorded as the reason the stream is incomplete.
pub fn check_dump(ends: &StreamEnds) -> Result<DumpFacts, String> {
    if ends.size == 0 {
        return Err("the dump is empty: mariadb-dump wrote nothing".into());
    }
    let head = String::from_utf8_lossy(&ends.head);
    if !head.lines().take(8).any(|l| l.starts_with("-- MariaDB dump") || l.starts_with("-- MySQL dump")) {
        return Err("the stream does not start with a mariadb-dump header: it is not a dump".into());
    }
    let tail = String::from_utf8_lossy(&ends.tail);
    let last = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let Some(completed) = last.strip_prefix("-- Dump completed on ") else {
        let shown: String = last.chars().take(120).collect();
        return Err(format!(
            "the dump has no completion trailer (`-- Dump completed on …`): it was cut short after {} bytes; its last line is {shown:?}",
            ends.size
        ));
    };
    let mut f = DumpFacts { completed_on: completed.trim().to_string(), ..Default::default() };
    for l in head.lines().take(400) {
        if let Some(v) = l.strip_prefix("-- Server version") {
            f.server_version = Some(v.trim().to_string());
        }
        if let Some(rest) = l.strip_prefix("-- CHANGE MASTER TO MASTER_LOG_FILE='") {
            if let Some((file, rest)) = rest.split_once('\'') {
                f.binlog_file = Some(file.to_string());
                f.binlog_pos = rest
                    .split_once("MASTER_LOG_POS=")
                    .and_then(|(_, p)| p.trim_end_matches(';').trim().parse().ok());
            }
        }
    }
    for l in tail.lines().rev() {
        if let Some(rest) = l.strip_prefix("-- SET GLOBAL gtid_slave_pos='") {
            if let Some((g, _)) = rest.split_once('\'') {
                f.gtid = Some(g.to_string());
            }
            break;
        }
    }
    Ok(f)
}

/// What to do about a failed `mariadb-dump`, read from its error text: the known ways a dump
/// fails, each with its likely cause and the fix. `None` when the text matches none of them.
pub fn dump_hint(stderr: &str) -> Option<String> {
    let table = |s: &str| {
        s.split("when dumping table `").nth(1).and_then(|r| r.split('`').next()).map(str::to_string)
    };
    if stderr.contains("max_allowed_packet") || stderr.contains("Got packet bigger than") {
        return Some(
            "a row is larger than max_allowed_packet: raise max_allowed_packet on the server and for the dump tool \
             (e.g. [mariadb-dump] max_allowed_packet=512M), or shrink the row"
                .into(),
        );
    }
    if stderr.contains("Lost connection to server during query") || stderr.contains("Lost connection to MySQL server during query") {
        let at = table(stderr).map(|t| format!(" while reading table `{t}`")).unwrap_or_default();
        return Some(format!(
            "the connection to the server was lost{at}: either a row is larger than the dump tool's \
             max_allowed_packet (24 MB by default for mariadb-dump; raise it) or the server restarted or was \
             killed during the dump (see the server's error log)"
        ));
    }
    if stderr.contains("server has gone away") || stderr.contains("Can't connect") {
        return Some("the database server is not reachable or went away: check that it runs and that host, port or socket are right".into());
    }
    if stderr.contains("Access denied") {
        return Some(
            "the backup user lacks a privilege: it needs SELECT, SHOW VIEW, TRIGGER, EVENT and LOCK TABLES on the \
             tenant's schema (GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON `ca_…`.* TO …) and \
             BINLOG MONITOR for the binlog coordinates"
                .into(),
        );
    }
    None
}

/// What [`Renamer`] changed, for the restore report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RenameReport {
    /// Statements (lines) whose references to the old database name were rewritten.
    pub references_rewritten: u64,
    /// `DEFINER=` clauses replaced by `DEFINER=CURRENT_USER`.
    pub definers_rewritten: u64,
}

/// A line filter over a `mariadb-dump` stream that makes it load under a new database name:
/// in schema statements (views, triggers, routines, events) references to the old name
/// (`` `old`.`t` `` or `old.t`) become the new name, and `DEFINER=user@host` becomes
/// `DEFINER=CURRENT_USER` (the old definer may not exist, or may have no rights on the
/// new database). Row data (`INSERT` statements, one row per line) is never touched, so a
/// value that happens to contain the old name is restored as it was.
#[derive(Debug)]
pub struct Renamer {
    old: String,
    new: String,
    in_insert: bool,
    /// Counts.
    pub report: RenameReport,
}

impl Renamer {
    /// Rewrite `old` to `new` (both plain identifiers: letters, digits, `_`, `$`).
    pub fn new(old: &str, new: &str) -> Renamer {
        Renamer { old: old.to_string(), new: new.to_string(), in_insert: false, report: RenameReport::default() }
    }

    /// Rewrite one line (with or without its `\n`), appending the result to `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let starts_insert = line.starts_with(b"INSERT INTO ") || line.starts_with(b"REPLACE INTO ");
        if self.in_insert || starts_insert {
            // Rows: one per line; the statement ends with a line ending in `;`.
            let body = trim_newline(line);
            self.in_insert = !body.ends_with(b";");
            out.extend_from_slice(line);
            return;
        }
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            Err(_) => {
                out.extend_from_slice(line);
                return;
            }
        };
        if text.starts_with("--") {
            out.extend_from_slice(line);
            return;
        }
        let (t, n) = rewrite_definer(text);
        self.report.definers_rewritten += n;
        let (t, n) = rewrite_db_refs(&t, &self.old, &self.new);
        if n > 0 {
            self.report.references_rewritten += 1;
        }
        out.extend_from_slice(t.as_bytes());
    }
}

fn trim_newline(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn rewrite_definer(text: &str) -> (String, u64) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut n = 0;
    while let Some(i) = rest.find("DEFINER=") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "DEFINER=".len()..];
        match definer_len(after) {
            Some(len) => {
                out.push_str("DEFINER=CURRENT_USER");
                rest = &after[len..];
                n += 1;
            }
            None => {
                out.push_str("DEFINER=");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, n)
}

/// Length of `user@host` in its dump spelling: `` `u`@`h` `` or `'u'@'h'` or `CURRENT_USER`.
fn definer_len(s: &str) -> Option<usize> {
    if s.starts_with("CURRENT_USER") {
        return None;
    }
    let user = quoted_len(s)?;
    let rest = &s[user..];
    let rest = rest.strip_prefix('@')?;
    let host = quoted_len(rest)?;
    Some(user + 1 + host)
}

fn quoted_len(s: &str) -> Option<usize> {
    let q = s.chars().next()?;
    if q != '`' && q != '\'' {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        if b[i] == q as u8 {
            if i + 1 < b.len() && b[i + 1] == q as u8 {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// Replace `` `old` `` (any backquoted occurrence) and bare `old` followed by `.` at an
/// identifier boundary, outside string literals.
fn rewrite_db_refs(text: &str, old: &str, new: &str) -> (String, u64) {
    let b = text.as_bytes();
    let ob = old.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut n = 0;
    let mut quote: Option<u8> = None;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' && q != b'`' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == b'\'' || c == b'"' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c == b'`' {
            // a backquoted identifier: `old` exactly?
            let end = b[i + 1..].iter().position(|&x| x == b'`').map(|p| i + 1 + p);
            if let Some(end) = end {
                if &b[i + 1..end] == ob {
                    out.push_str(&text[last..i]);
                    out.push('`');
                    out.push_str(new);
                    out.push('`');
                    last = end + 1;
                    n += 1;
                }
                i = end + 1;
                continue;
            }
            i += 1;
            continue;
        }
        if b[i..].starts_with(ob)
            && (i == 0 || !is_ident(b[i - 1]))
            && b.get(i + ob.len()) == Some(&b'.')
        {
            out.push_str(&text[last..i]);
            out.push_str(new);
            i += ob.len();
            last = i;
            n += 1;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_cause_and_the_fix() {
        let h = dump_hint("mariadb-dump: Error 2013: Lost connection to server during query when dumping table `big_blob` at row: 0").unwrap();
        assert!(h.contains("`big_blob`") && h.contains("max_allowed_packet") && h.contains("restarted"), "{h}");
        let h = dump_hint("mariadb-dump: Couldn't execute 'show events': Access denied for user 'reader'@'localhost' to database 'ca_x' (1044)").unwrap();
        assert!(h.contains("EVENT") && h.contains("GRANT"), "{h}");
        let h = dump_hint("mariadb-dump: Got error: 2002: \"Can't connect to local server through socket '/x' (2)\" when trying to connect").unwrap();
        assert!(h.contains("not reachable"), "{h}");
        assert!(dump_hint("Error 2020: Got packet bigger than 'max_allowed_packet' bytes").unwrap().contains("larger than max_allowed_packet"));
        assert_eq!(dump_hint("mariadb-dump: some new failure"), None);
    }

    const HEAD: &str = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: localhost    Database: ca_1a2b3c4d\n-- ------------------------------------------------------\n-- Server version\t10.11.19-MariaDB-0+deb12u1-log\n\n-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n--\n-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000003', MASTER_LOG_POS=1513;\n";
    const TAIL: &str = "\n-- Preferably use GTID to start replication from GTID position:\n\n-- SET GLOBAL gtid_slave_pos='0-1-6,1-2-9';\n/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2026-12-04  4:49:17\n";

    fn ends(head: &str, tail: &str) -> StreamEnds {
        StreamEnds { head: head.as_bytes().to_vec(), tail: tail.as_bytes().to_vec(), size: 100_000 }
    }

    #[test]
    fn complete_dump_facts() {
        let f = check_dump(&ends(HEAD, TAIL)).unwrap();
        assert_eq!(f.binlog_file.as_deref(), Some("mysql-bin.000003"));
        assert_eq!(f.binlog_pos, Some(1513));
        assert_eq!(f.gtid.as_deref(), Some("0-1-6,1-2-9"));
        assert_eq!(f.server_version.as_deref(), Some("10.11.19-MariaDB-0+deb12u1-log"));
        assert_eq!(f.completed_on, "2026-12-04  4:49:17");
        assert_eq!(f.to_meta()["binlog_pos"], "1513");
    }

    #[test]
    fn cut_short_dump_is_refused() {
        let cut = "INSERT INTO `ca_objects` VALUES (1,'a'),\n(2,'b'";
        let e = check_dump(&ends(HEAD, cut)).unwrap_err();
        assert!(e.contains("no completion trailer") && e.contains("(2,'b'"), "{e}");
        // a trailer followed by more data is not the end
        let e = check_dump(&ends(HEAD, &format!("{TAIL}INSERT INTO `x` VALUES (1);\n"))).unwrap_err();
        assert!(e.contains("no completion trailer"), "{e}");
        let e = check_dump(&StreamEnds::default()).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = check_dump(&ends("mysqldump: Got error: 1045\n", TAIL)).unwrap_err();
        assert!(e.contains("header"), "{e}");
    }

    fn rename(input: &str) -> (String, RenameReport) {
        let mut r = Renamer::new("ca_old", "ca_new");
        let mut out = Vec::new();
        for l in input.split_inclusive('\n') {
            r.line(l.as_bytes(), &mut out);
        }
        (String::from_utf8(out).unwrap(), r.report)
    }

    #[test]
    fn rename_rewrites_schema_statements_only() {
        let input = "\
-- Host: localhost    Database: ca_old
INSERT INTO `notes` VALUES (1,'see ca_old.ca_objects and `ca_old`'),
(2,'DEFINER=`x`@`y`');
/*!50003 CREATE*/ /*!50017 DEFINER=`ca_old`@`%`*/ /*!50003 TRIGGER t AFTER INSERT ON a FOR EACH ROW INSERT INTO `ca_old`.`log` VALUES (ca_old.f(1), 'ca_old.x') */;;
CREATE DEFINER='ca_old'@'localhost' PROCEDURE `p`()
select count(*) from ca_old.a join `ca_old`.b join my_ca_old.c join `ca_old_2`.d
/*!50013 DEFINER=CURRENT_USER SQL SECURITY DEFINER */
";
        let (out, rep) = rename(input);
        let want = "\
-- Host: localhost    Database: ca_old
INSERT INTO `notes` VALUES (1,'see ca_old.ca_objects and `ca_old`'),
(2,'DEFINER=`x`@`y`');
/*!50003 CREATE*/ /*!50017 DEFINER=CURRENT_USER*/ /*!50003 TRIGGER t AFTER INSERT ON a FOR EACH ROW INSERT INTO `ca_new`.`log` VALUES (ca_new.f(1), 'ca_old.x') */;;
CREATE DEFINER=CURRENT_USER PROCEDURE `p`()
select count(*) from ca_new.a join `ca_new`.b join my_ca_old.c join `ca_old_2`.d
/*!50013 DEFINER=CURRENT_USER SQL SECURITY DEFINER */
";
        assert_eq!(out, want);
        assert_eq!(rep, RenameReport { references_rewritten: 2, definers_rewritten: 2 });
    }
}
