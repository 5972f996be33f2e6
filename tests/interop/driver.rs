//! The Python side's process: `flask_app.py` run by the interpreter in
//! `SERVER_SESSION_INTEROP_PYTHON`, one for the whole test binary, spoken to in JSON lines; and
//! a log capture to see the library's log lines.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Duration;

use serde_json::{Value as Json, json};

/// The Python interpreter that has Flask-Session 0.8 (`target/interop-venv/bin/python`).
const PYTHON_ENV: &str = "SERVER_SESSION_INTEROP_PYTHON";
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/flask_app.py");
/// How long one answer of the Python driver may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The Python driver
// ---------------------------------------------------------------------------------------------

/// The Flask-Session driver process, shared by every test of this binary.
pub(crate) struct Python {
    stdin: ChildStdin,
    answers: Receiver<String>,
    next_id: u64,
    _child: Child,
}

impl Python {
    fn spawn(python: &str) -> Self {
        let mut child = Command::new(python)
            .arg(DRIVER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON_ENV}={python}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, answers) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take().expect("piped stdin");
        let mut python = Python {
            stdin,
            answers,
            next_id: 0,
            _child: child,
        };
        let hello = python.call(json!({"op": "hello"}));
        assert_eq!(hello["flask-session"], "0.8.0", "{hello}");
        assert_eq!(hello["flask"], "3.1.3", "{hello}");
        python
    }

    /// Sends one request and returns its answer; panics with the Python traceback on failure.
    pub(crate) fn call(&mut self, mut request: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        request["id"] = json!(id);
        writeln!(self.stdin, "{request}").expect("write to the Python driver");
        self.stdin.flush().expect("flush to the Python driver");
        loop {
            let line = self
                .answers
                .recv_timeout(ANSWER_TIMEOUT)
                .unwrap_or_else(|e| panic!("no answer from the Python driver ({e}) to {request}"));
            let answer: Json = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the Python driver wrote {line:?}: {e}"));
            if answer["id"] != json!(id) {
                continue; // the late answer to a request that timed out
            }
            if answer["ok"] != json!(true) {
                let error = answer["error"].as_str().unwrap_or("?");
                panic!("the Python driver failed on {request}:\n{error}");
            }
            return answer;
        }
    }
}

static PYTHON: OnceLock<Option<Mutex<Python>>> = OnceLock::new();

/// The driver, started on first use; `None` when `SERVER_SESSION_INTEROP_PYTHON` is unset.
pub(crate) fn python() -> Option<MutexGuard<'static, Python>> {
    let python = PYTHON.get_or_init(|| {
        let path = std::env::var(PYTHON_ENV).ok().filter(|p| !p.is_empty())?;
        Some(Mutex::new(Python::spawn(&path)))
    });
    // A test that panicked while holding the lock left the driver between requests.
    Some(
        python
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    )
}

pub(crate) fn python_available() -> bool {
    python().is_some()
}

pub(crate) fn call(request: Json) -> Json {
    python().expect("checked by the test").call(request)
}

// ---------------------------------------------------------------------------------------------
// Log capture, to see the pickle policy's log line
// ---------------------------------------------------------------------------------------------

struct Capture;

static PICKLE_LINES: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record
            .args()
            .to_string()
            .contains("pickled by Flask-Session")
        {
            let mut lines = PICKLE_LINES.lock().unwrap_or_else(PoisonError::into_inner);
            lines.push(thread::current().id());
        }
    }
    fn flush(&self) {}
}

/// How many pickle-policy log lines this thread (this test) has logged.
pub(crate) fn pickle_lines_here() -> usize {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
    let lines = PICKLE_LINES.lock().unwrap_or_else(PoisonError::into_inner);
    let here = thread::current().id();
    lines.iter().filter(|id| **id == here).count()
}
