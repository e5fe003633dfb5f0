//! An OS pipe.

/// An anonymous OS pipe, `(read end, write end)`, both close-on-exec: a source that cannot seek
/// and whose length cannot be known, as stdin is under a shell pipeline. (`std::io::pipe` would
/// do, but it is newer than the workspace's minimum Rust.)
pub fn pipe() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two file descriptors, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) })
}
