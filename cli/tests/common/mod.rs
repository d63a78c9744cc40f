//! Running the real `bookend` binary from tests.

#![allow(dead_code)]

pub mod nats;
pub mod writers;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn bookend() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bookend"))
}

/// Runs `bookend append --dir DIR extra…` with `input` on stdin.
pub fn append(dir: &Path, input: &str, extra: &[&str]) -> Output {
    let mut child = bookend()
        .arg("append")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bookend append");
    // Written from a thread, so acks filling the stdout pipe cannot
    // deadlock a large input. A writer that refuses to open closes its
    // stdin early: that is its answer.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = child.wait_with_output().unwrap();
    let _ = writer.join();
    output
}

/// The JSON lines of a command's stdout.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

pub fn run(args: &[&str], dir: &Path) -> Output {
    bookend().args(args).arg("--dir").arg(dir).output().expect("run bookend")
}

pub fn tail(dir: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = bookend().arg("tail").arg("--dir").arg(dir).args(extra).output().unwrap();
    assert!(out.status.success(), "tail failed: {}", String::from_utf8_lossy(&out.stderr));
    json_lines(&out)
}

/// A `bookend serve` child process on a random loopback port.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut command = bookend();
        command.args(["serve", "--listen", "127.0.0.1:0", "--dir"]).arg(dir).args(extra);
        Self::spawn(command)
    }

    /// `bookend serve` under `ulimit -n nofile` (through the shell's ulimit).
    pub fn start_with_fd_limit(dir: &Path, extra: &[&str], nofile: u32) -> Server {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_bookend"))
            .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .args(extra);
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Server {
        use std::io::BufRead;
        let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn bookend serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "unexpected first line {line:?}");
        Server { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Waits for the server's exit (after `terminate`).
    pub fn stop_status(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        http(&self.addr, method, path, headers, body)
    }

    /// GET `path`; the body as JSON (Null if it is not JSON).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.request("GET", path, &[], None);
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    pub fn post_json(&self, body: &str) -> (u16, serde_json::Value) {
        let (status, text) =
            self.request("POST", "/v1/commands", &[("Content-Type", "application/json")], Some(body));
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(rest.as_bytes()) } else { rest.to_string() })
}

fn dechunk(mut data: &[u8]) -> String {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    String::from_utf8(out).unwrap()
}

/// A Server-Sent Events client over a raw socket.
pub struct SseClient {
    reader: std::io::BufReader<std::net::TcpStream>,
    pending: String,
    pub status: u16,
    content_length: Option<usize>,
}

/// One SSE event: its id, event name and data.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseClient {
    pub fn connect(addr: &str, path: &str, headers: &[(&str, &str)]) -> SseClient {
        use std::io::BufRead;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut content_length = None;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().ok();
            }
        }
        SseClient { reader, pending: String::new(), status, content_length }
    }

    /// The body of a non-streaming answer (an error).
    pub fn body(&mut self) -> String {
        use std::io::Read;
        let mut body = vec![0u8; self.content_length.unwrap_or(0)];
        let _ = self.reader.read_exact(&mut body);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Reads chunks until one whole event (not a comment) is available.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        use std::io::{BufRead, Read};
        loop {
            while let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut event = SseEvent { id: None, event: None, data: String::new() };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                if event.id.is_some() || !event.data.is_empty() {
                    return Some(event);
                }
            }
            let mut size_line = String::new();
            if self.reader.read_line(&mut size_line).ok()? == 0 {
                return None;
            }
            let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
            if size == 0 {
                return None;
            }
            let mut chunk = vec![0u8; size + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.pending.push_str(&String::from_utf8_lossy(&chunk[..size]));
        }
    }
}
