//! The files of a [`FileStore`] on disk, in either [`FileLayout`]: what is found under an
//! entry name, its header (the native one here, cachelib's in `cachelib.rs`), and the names
//! of entries and temp files.

use super::*;

/// What is found under an entry name.
pub(super) enum Slot {
    Missing,
    /// Truncated, wrong magic or version, or a length that does not match the header.
    Corrupt,
    /// A well-formed file, open and positioned at the payload.
    Found {
        expires_ms: u64,
        file: File,
        len: usize,
    },
}

pub(super) enum ReadError {
    Corrupt,
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

pub(super) fn is_live(slot: &Slot, now: u64) -> bool {
    matches!(slot, Slot::Found { expires_ms, .. } if *expires_ms > now)
}

pub(super) fn is_dead(slot: Slot, now: u64) -> bool {
    match slot {
        Slot::Missing => false,
        Slot::Corrupt => true,
        Slot::Found { expires_ms, .. } => expires_ms <= now,
    }
}

/// What differs between the layouts, file by file.
impl FileLayout {
    pub(super) fn lock_file(self) -> &'static str {
        match self {
            Self::Native => LOCK_FILE,
            Self::Cachelib => cachelib::LOCK_FILE,
        }
    }

    /// The subdirectory of the user index.
    pub(super) fn users_dir(self) -> &'static str {
        match self {
            Self::Native => users::USERS_DIR,
            Self::Cachelib => cachelib::USERS_DIR,
        }
    }

    /// Which names in the directory are session files.
    pub(super) fn entry_filter(self) -> fn(&str) -> bool {
        match self {
            Self::Native => is_entry_name,
            Self::Cachelib => cachelib::is_entry_name,
        }
    }

    pub(super) fn header_len(self) -> usize {
        match self {
            Self::Native => HEADER_LEN,
            Self::Cachelib => cachelib::HEADER_LEN,
        }
    }

    /// The header of a file holding `len` payload bytes until `expires`.
    pub(super) fn header(self, expires: SystemTime, len: usize) -> ArrayVec<u8, HEADER_LEN> {
        match self {
            Self::Native => encode_header(unix_ms(expires), len as u64).into(),
            Self::Cachelib => cachelib::header(expires).into_iter().collect(),
        }
    }

    /// `(expiry in Unix ms, payload length)` of a file of `file_len` bytes starting with
    /// `header`; `None` when it is not a valid entry.
    pub(super) fn parse_header(self, header: &[u8], file_len: u64) -> Option<(u64, usize)> {
        match self {
            Self::Native => {
                let (expires_ms, len) = decode_header(header.try_into().ok()?)?;
                let fits = len.checked_add(HEADER_LEN as u64) == Some(file_len);
                fits.then_some((expires_ms, usize::try_from(len).ok()?))
            }
            Self::Cachelib => cachelib::parse_header(header, file_len),
        }
    }
}

/// Opens an entry and checks its header against the file's length; never reads the payload.
pub(super) fn open_entry(layout: FileLayout, path: &Path) -> io::Result<Slot> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Slot::Missing),
        Err(e) => return Err(e),
    };
    let file_len = file.metadata()?.len();
    let mut header = [0u8; HEADER_LEN];
    let header = &mut header[..layout.header_len()];
    match file.read_exact(header) {
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Slot::Corrupt),
        other => other?,
    }
    Ok(match layout.parse_header(header, file_len) {
        Some((expires_ms, len)) => Slot::Found {
            expires_ms,
            file,
            len,
        },
        None => Slot::Corrupt,
    })
}

/// The payload of a live entry; `Ok(None)` when missing or expired.
pub(super) fn read_live(
    layout: FileLayout,
    path: &Path,
    now: u64,
) -> std::result::Result<Option<Vec<u8>>, ReadError> {
    match open_entry(layout, path)? {
        Slot::Missing => Ok(None),
        Slot::Corrupt => Err(ReadError::Corrupt),
        Slot::Found { expires_ms, .. } if expires_ms <= now => Ok(None),
        Slot::Found { mut file, len, .. } => {
            let mut payload = Vec::with_capacity(len);
            file.read_to_end(&mut payload)?;
            if payload.len() != len {
                return Err(ReadError::Corrupt);
            }
            Ok(Some(payload))
        }
    }
}

pub(super) fn encode_header(expires_ms: u64, len: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..7].copy_from_slice(MAGIC);
    header[7] = VERSION;
    header[8..16].copy_from_slice(&expires_ms.to_be_bytes());
    header[16..24].copy_from_slice(&len.to_be_bytes());
    header
}

/// `(expiry, payload length)` from a header with the right magic and version.
pub(super) fn decode_header(header: &[u8; HEADER_LEN]) -> Option<(u64, u64)> {
    if &header[..7] != MAGIC || header[7] != VERSION {
        return None;
    }
    let expires_ms = u64::from_be_bytes(header[8..16].try_into().ok()?);
    let len = u64::from_be_bytes(header[16..24].try_into().ok()?);
    Some((expires_ms, len))
}

/// The entry file name of `key`: 64 lowercase hex digits of its SHA-256.
pub(super) fn file_name(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = digest::digest(&digest::SHA256, key.as_bytes());
    let mut name = String::with_capacity(64);
    for byte in hash.as_ref() {
        name.push(char::from(HEX[usize::from(byte >> 4)]));
        name.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    name
}

pub(super) fn is_entry_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A temp file name no other writer (thread or process) picks: pid plus 64 random bits (and
/// in cachelib's layout the suffix cachelib never counts).
pub(super) fn temp_name(layout: FileLayout) -> Result<String> {
    let random = getrandom::u64().map_err(Error::Random)?;
    let suffix = match layout {
        FileLayout::Native => "",
        FileLayout::Cachelib => cachelib::TEMP_SUFFIX,
    };
    let pid = std::process::id();
    Ok(format!("{TEMP_PREFIX}{pid}-{random:016x}{suffix}"))
}

pub(super) fn is_stale(entry: &fs::DirEntry) -> bool {
    let modified = entry.metadata().and_then(|m| m.modified());
    modified.is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMP_AGE))
}

/// The names of the session files in `directory`.
pub(super) fn entry_names(directory: &Path, layout: FileLayout) -> io::Result<Vec<String>> {
    let is_entry = layout.entry_filter();
    let mut names = Vec::new();
    for entry in fs::read_dir(directory)? {
        if let Some(name) = entry?.file_name().to_str().filter(|n| is_entry(n)) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

pub(super) fn count_entries(directory: &Path, layout: FileLayout) -> io::Result<usize> {
    Ok(entry_names(directory, layout)?.len())
}
