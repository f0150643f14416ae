"""Runs a command on a pseudo-terminal 24 rows by 100 columns (its stdin, stdout, stderr and
/dev/tty, as an interactive shell gives them) and relays everything the terminal showed, then
the exit code. With $TTY_STDOUT_FILE set, the command's standard output goes to that file
instead (as with `cmd > file` typed at a terminal), standard error staying on the terminal;
with $TTY_STDERR_FILE, the same for standard error (`cmd 2> file`).
Stdlib only."""
import fcntl, os, pty, select, struct, sys, termios

cmd = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    for var, fd in (("TTY_STDOUT_FILE", 1), ("TTY_STDERR_FILE", 2)):
        path = os.environ.get(var)
        if path:
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
            os.close(out)
    os.execvp(cmd[0], cmd)
out = b""
while True:
    ready, _, _ = select.select([fd], [], [], 120)
    if not ready:
        break
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
