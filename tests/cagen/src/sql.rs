//! SQL text generation (escaping, multi-row INSERTs, transactions) and the `mariadb` client
//! processes that run it.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};

/// Largest multi-row INSERT statement written (the server's `max_allowed_packet` is 16 MiB).
const STATEMENT_BYTES: usize = 1 << 20;
/// A `COMMIT; START TRANSACTION;` is written after about this many bytes of statements.
const TRANSACTION_BYTES: u64 = 48 << 20;

/// Appends `s` as a single-quoted MariaDB string literal (default `sql_mode`, backslash escapes).
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// `s` as a quoted SQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    push_str(&mut out, s);
    out
}

/// Appends binary data as a hex literal (`X'..'`, which is also right for the empty string).
pub fn push_bin(out: &mut String, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2 + 3);
    out.push_str("X'");
    for &x in b {
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 15) as usize] as char);
    }
    out.push('\'');
}

/// One row of values, in column order, as SQL text.
#[derive(Default)]
pub struct Row {
    buf: String,
    n: usize,
}

impl Row {
    pub fn new() -> Row {
        Row { buf: String::with_capacity(256), n: 0 }
    }
    fn sep(&mut self) -> &mut String {
        if self.n > 0 {
            self.buf.push(',');
        }
        self.n += 1;
        &mut self.buf
    }
    /// An integer value.
    pub fn int(mut self, v: impl Into<i128>) -> Row {
        let v: i128 = v.into();
        self.sep().push_str(&v.to_string());
        self
    }
    /// An integer or NULL.
    pub fn opt_int<T: Into<i128>>(self, v: Option<T>) -> Row {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    /// A string value.
    pub fn str(mut self, v: &str) -> Row {
        push_str(self.sep(), v);
        self
    }
    /// A string or NULL.
    pub fn opt_str(self, v: Option<&str>) -> Row {
        match v {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }
    /// Binary data (hex literal).
    pub fn bin(mut self, v: &[u8]) -> Row {
        push_bin(self.sep(), v);
        self
    }
    /// SQL text put in as is (a decimal literal, an expression).
    pub fn raw(mut self, v: &str) -> Row {
        self.sep().push_str(v);
        self
    }
    /// NULL.
    pub fn null(mut self) -> Row {
        self.sep().push_str("NULL");
        self
    }
}

/// Counts of what a [`SqlWriter`] wrote.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Rows inserted, per table.
    pub inserted: BTreeMap<String, u64>,
    /// Rows targeted by UPDATE statements, per table.
    pub updated: BTreeMap<String, u64>,
    /// Rows targeted by DELETE statements, per table.
    pub deleted: BTreeMap<String, u64>,
    /// Bytes of SQL text written.
    pub bytes: u64,
}

/// Writes SQL statements to a sink (a `mariadb` client's stdin), inside transactions.
pub struct SqlWriter<W: Write> {
    w: W,
    pub counts: Counts,
    since_commit: u64,
}

impl<W: Write> SqlWriter<W> {
    /// Starts the session: `SET NAMES utf8mb4`, foreign key checks on, `START TRANSACTION`.
    pub fn begin(w: W) -> Result<SqlWriter<W>> {
        let mut s = SqlWriter { w, counts: Counts::default(), since_commit: 0 };
        s.raw("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci;\nSET SESSION foreign_key_checks = 1, unique_checks = 1;\nSET SESSION time_zone = '+00:00';\nSTART TRANSACTION;\n")?;
        Ok(s)
    }

    fn raw(&mut self, s: &str) -> Result<()> {
        self.w.write_all(s.as_bytes()).context("writing SQL to the mariadb client")?;
        self.counts.bytes += s.len() as u64;
        self.since_commit += s.len() as u64;
        Ok(())
    }

    /// Writes one complete statement (with its `;`), committing first when the open
    /// transaction has grown large.
    pub fn stmt(&mut self, s: &str) -> Result<()> {
        if self.since_commit > TRANSACTION_BYTES {
            self.raw("COMMIT;\nSTART TRANSACTION;\n")?;
            self.since_commit = 0;
        }
        self.raw(s)?;
        if !s.ends_with('\n') {
            self.raw("\n")?;
        }
        Ok(())
    }

    /// An UPDATE statement that changes `rows` rows of `table`.
    pub fn update(&mut self, table: &str, rows: u64, sql: &str) -> Result<()> {
        *self.counts.updated.entry(table.to_string()).or_default() += rows;
        self.stmt(sql)
    }

    /// A DELETE statement that removes `rows` rows of `table`.
    pub fn delete(&mut self, table: &str, rows: u64, sql: &str) -> Result<()> {
        *self.counts.deleted.entry(table.to_string()).or_default() += rows;
        self.stmt(sql)
    }

    /// Starts a multi-row INSERT into `table`.
    pub fn insert<'s>(&'s mut self, table: &str, columns: &[&str]) -> Insert<'s, W> {
        let mut head = format!("INSERT INTO {table} (");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                head.push(',');
            }
            head.push('`');
            head.push_str(c);
            head.push('`');
        }
        head.push_str(") VALUES\n");
        Insert { w: self, table: table.to_string(), ncols: columns.len(), head, buf: String::new(), rows: 0 }
    }

    /// Commits the last transaction and returns the sink.
    pub fn commit(mut self) -> Result<(W, Counts)> {
        self.raw("COMMIT;\n")?;
        self.w.flush().context("flushing SQL to the mariadb client")?;
        Ok((self.w, self.counts))
    }
}

/// A multi-row INSERT in progress; call [`Insert::finish`] at the end.
pub struct Insert<'s, W: Write> {
    w: &'s mut SqlWriter<W>,
    table: String,
    ncols: usize,
    head: String,
    buf: String,
    rows: u64,
}

impl<W: Write> Insert<'_, W> {
    /// Adds a row (its values in column order).
    pub fn row(&mut self, r: Row) -> Result<()> {
        if r.n != self.ncols {
            bail!("internal error: {} values for {} columns of {}", r.n, self.ncols, self.table);
        }
        if self.buf.is_empty() {
            self.buf.push_str(&self.head);
        } else {
            self.buf.push_str(",\n");
        }
        self.buf.push('(');
        self.buf.push_str(&r.buf);
        self.buf.push(')');
        self.rows += 1;
        if self.buf.len() >= STATEMENT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf.push_str(";\n");
        let stmt = std::mem::take(&mut self.buf);
        self.w.stmt(&stmt)?;
        *self.w.counts.inserted.entry(self.table.clone()).or_default() += self.rows;
        self.rows = 0;
        Ok(())
    }

    /// Writes what is left.
    pub fn finish(mut self) -> Result<()> {
        self.flush()
    }
}

/// A running `mariadb` client reading SQL from its stdin.
pub struct Client {
    what: String,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Client {
    /// Starts `argv` (the client command and its options) plus `extra` arguments.
    pub fn spawn(argv: &[String], extra: &[String], what: &str) -> Result<Client> {
        let (prog, args) = argv.split_first().context("empty mariadb client command")?;
        let mut child = Command::new(prog)
            .args(args)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the mariadb client `{}` ({what})", argv.join(" ")))?;
        let stdin = child.stdin.take().map(|s| BufWriter::with_capacity(1 << 20, s));
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = e.read_to_end(&mut buf);
                buf
            })
        });
        Ok(Client { what: what.to_string(), child, stdin, stderr })
    }

    /// Closes stdin, waits for the client and fails with its stderr when it did not exit 0.
    pub fn finish(mut self) -> Result<()> {
        let flushed = match self.stdin.take() {
            Some(mut w) => w.flush().map_err(anyhow::Error::from),
            None => Ok(()),
        };
        let status = self.child.wait().with_context(|| format!("waiting for the mariadb client ({})", self.what))?;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        if !status.success() {
            bail!("mariadb client failed ({}): {status}: {}", self.what, stderr.trim());
        }
        flushed.with_context(|| format!("writing to the mariadb client ({})", self.what))?;
        Ok(())
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.stdin.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("mariadb client stdin closed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Only reached without finish() on an error path: make sure the child goes away.
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `sql` to completion through a fresh client session with `database` as default
/// database (if given), then combines errors: the client's own message wins over a write error.
pub fn run_script(argv: &[String], database: Option<&str>, what: &str, f: impl FnOnce(&mut Client) -> Result<()>) -> Result<()> {
    let extra: Vec<String> = database.map(|d| vec![d.to_string()]).unwrap_or_default();
    let mut client = Client::spawn(argv, &extra, what)?;
    let produced = f(&mut client);
    let finished = client.finish();
    match (produced, finished) {
        (_, Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Runs one query with `-N -B -e` and returns its stdout (tab-separated rows).
pub fn query(argv: &[String], database: Option<&str>, sql: &str) -> Result<String> {
    let (prog, args) = argv.split_first().context("empty mariadb client command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args).arg("-N").arg("-B").arg("-e").arg(sql);
    if let Some(d) = database {
        cmd.arg(d);
    }
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running the mariadb client `{}`", argv.join(" ")))?;
    if !out.status.success() {
        bail!("query failed ({}): {}: {}", out.status, sql.chars().take(200).collect::<String>(), String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).context("query output is not UTF-8")
}

/// Rows of a `query` result, split on tabs.
pub fn rows(out: &str) -> impl Iterator<Item = Vec<&str>> {
    out.lines().filter(|l| !l.is_empty()).map(|l| l.split('\t').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(quote("it's a \\ \"test\"\n\0"), "'it\\'s a \\\\ \"test\"\\n\\0'");
        let mut s = String::new();
        push_bin(&mut s, &[0, 0xab]);
        assert_eq!(s, "X'00ab'");
    }

    #[test]
    fn inserts_are_batched() {
        let mut w = SqlWriter::begin(Vec::new()).unwrap();
        let mut ins = w.insert("t", &["a", "b"]);
        ins.row(Row::new().int(1).str("x")).unwrap();
        ins.row(Row::new().null().raw("1.5")).unwrap();
        ins.finish().unwrap();
        let (out, counts) = w.commit().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("INSERT INTO t (`a`,`b`) VALUES\n(1,'x'),\n(NULL,1.5);\n"), "{text}");
        assert_eq!(counts.inserted["t"], 2);
    }
}
