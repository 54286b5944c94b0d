"""`smtpgate serve` with no -c: the embedded defaults make a working
gateway for localhost (README's quick start), creating var/spool and
var/postoffice under the current directory. As root it drops to the
`smtpgate` user, which must still reach its directories."""
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile

from harness import BIN, free_port, main, test, wait_for


@test
def serve_on_embedded_defaults():
    d = tempfile.mkdtemp(prefix="smtpgate-defaults.")
    os.chmod(d, 0o755)	# as a checkout is: searchable by the server user
    port, sub = free_port(), free_port()
    log = open(os.path.join(d, "log"), "wb")
    p = subprocess.Popen([BIN, "serve", "-o", "listen=127.0.0.1:%d" % port,
                          "-o", "submission_listen=127.0.0.1:%d" % sub],
                         cwd=d, stdout=log, stderr=subprocess.STDOUT)
    try:
        def up():
            assert p.poll() is None, open(os.path.join(d, "log")).read()
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                return True
            except OSError:
                return False
        wait_for(up, 10, "the server to listen")
        c = smtplib.SMTP("127.0.0.1", port, timeout=10)
        c.sendmail("someone@example.org", ["postmaster@localhost"],
                   "Subject: quick start\r\n\r\nhello\r\n")
        c.quit()
        new = os.path.join(d, "var", "postoffice", "postmaster", "new")
        wait_for(lambda: os.path.isdir(new) and os.listdir(new), 10,
                 "the message in var/postoffice/postmaster/new")
        with open(os.path.join(new, os.listdir(new)[0]), "rb") as f:
            assert b"quick start" in f.read()
        for sub_dir in ("var/spool", "var/postoffice",
                        "var/postoffice/postmaster"):
            mode = os.stat(os.path.join(d, sub_dir)).st_mode & 0o777
            assert mode == 0o700, (sub_dir, oct(mode))
        if os.geteuid() == 0:
            st = os.stat(os.path.join(new, os.listdir(new)[0]))
            import pwd
            assert pwd.getpwuid(st.st_uid).pw_name == "smtpgate", st
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 0, p.returncode


main()
