"""Runs a command on a pseudo-terminal and answers its confirmation prompts ("[y/N]") with "y",
as an admin at a terminal would. Before the first answer it creates the file argv[1] (the test
then knows the prompt is open) and waits until the file argv[2] exists (the test has done what
happens "while the admin reads the plan"), at most 60 s. Relays the terminal's text and the exit
code. Stdlib only."""
import os, pty, select, sys, time

marker, go, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
out, answered = b"", 0
while True:
    ready, _, _ = select.select([fd], [], [], 60)
    if not ready:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if out.count(b"[y/N]") > answered:
        if answered == 0:
            open(marker, "w").close()
            deadline = time.time() + 60
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.05)
        os.write(fd, b"y\n")
        answered += 1
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
