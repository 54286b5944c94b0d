#!/usr/bin/python3
"""bench.py - smtpgate against Postfix, on loopback, in one interleaved run.

Called by bench/run.sh (`make bench`, `make bench-quick`); see
bench/README.md for what each workload measures and how.

    bench.py full     rounds of W1..W6 for smtpgate and Postfix, interleaved
                      (A B A B ...), then the W7 soak (smtpgate); writes
                      bench/RESULTS.md
    bench.py quick    smtpgate only: W1, W2, W4 with small counts and the
                      probe's serial create rate; well under a minute

Environment overrides: BENCH_ROUNDS (3), BENCH_MSGS (3000), BENCH_SEQ (1000),
BENCH_BIG_MB (50), BENCH_LAT (300 samples), BENCH_W3 ("1000,10000"),
BENCH_W3_POSTFIX (1000), BENCH_SOAK (100000; 0 skips W7), SMTPGATE_BIN.

Only loopback addresses are used; every wait is bounded; only processes this
script started are stopped, by PID (Postfix with `postfix -c DIR stop` on
the private instance this script configured).
"""

import asyncio
import json
import os
import platform
import pwd
import re
import resource
import shlex
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.join(BENCH, "work")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"

SENDER = "sender@bench.local"
LOCAL_RCPT = "rcpt@bench.local"
REMOTE_RCPT = "rcpt@remote.test"
MSG_LEN = 5120


# a copy of the binary, taken at the start, so that a rebuild during the
# run (others work in this tree) cannot change what is measured
BINARY_UNDER_TEST = os.path.join(WORK, "smtpgate-under-test")


def copy_binary():
    import hashlib
    src = os.environ.get("SMTPGATE_BIN", os.path.join(ROOT, "smtpgate"))
    shutil.copy2(src, BINARY_UNDER_TEST)
    with open(BINARY_UNDER_TEST, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return "%s (sha256 %s…, built %s)" % (
        os.path.relpath(os.path.abspath(src), ROOT), digest,
        time.strftime("%Y-%m-%d %H:%M:%S",
                      time.localtime(os.stat(src).st_mtime)))


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


# every external command run during the measurements, in order, for
# RESULTS.md ("the exact commands")
COMMANDS = []


def note_cmd(what, argv, prefix=""):
    """Record the first command run for each label (the first round's)."""
    line = prefix + " ".join(shlex.quote(a) for a in argv)
    if what not in [w for w, _ in COMMANDS]:
        COMMANDS.append((what, line))


def log(msg):
    print(msg, flush=True)


def free_port():
    """A bindable loopback port below the ephemeral range."""
    import random
    for _ in range(200):
        port = random.randint(20000, 32000)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback port")


def wait_port(port, timeout):
    """Wait until a 220 greeting arrives on 127.0.0.1:port."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    want = min(want, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- /proc


def proc_children(root):
    """root and its direct children (Postfix: master and its daemons)."""
    pids = [root]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        if ppid == root:
            pids.append(int(d))
    return pids


def proc_kb(pid, path, key):
    try:
        with open("/proc/%d/%s" % (pid, path)) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pids):
    return sum(proc_kb(p, "smaps_rollup", "Pss:") for p in pids)


def rss_kb(pids):
    return sum(proc_kb(p, "status", "VmRSS:") for p in pids)


# ---------------------------------------------------------------- mailboxes


def count_dir(path):
    try:
        return sum(1 for e in os.scandir(path) if e.is_file())
    except FileNotFoundError:
        return 0


# Files of finished runs are set aside here, not deleted, until the
# benchmark is over: on ext4 without a journal (this machine's root file
# system) making an inode steps over every inode freed in the last minute
# or more in its group (fs/ext4/ialloc.c, recently_deleted()), about half a
# millisecond of CPU per create after a few thousand deletions, so deleting
# one run's files would slow the next run of either server. W1d measures
# that case on purpose.
TRASH = os.path.join(WORK, "trash")
_trash_seq = [0]


def _trash_slot():
    os.makedirs(TRASH, exist_ok=True)
    _trash_seq[0] += 1
    return os.path.join(TRASH, "%d.%d" % (os.getpid(), _trash_seq[0]))


def spread_dirs(path):
    """Marks path as the top of directory hierarchies for ext4's Orlov
    allocator (chattr +T): each server's directory, made anew under it
    at its start, then lies in a block group of its own, and its files'
    inodes with it. Otherwise both trees share one flexible group, and
    the queue files Postfix deletes in W1/W2 make smtpgate's creates in
    W4 step over them (see TRASH), as smtpgate's would Postfix's. Best
    effort: other file systems have no such flag."""
    chattr = shutil.which("chattr")
    if chattr:
        subprocess.run([chattr, "+T", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def set_aside(path):
    """Moves path (file or directory) into the trash."""
    if os.path.lexists(path):
        os.rename(path, _trash_slot())


def clear_dir(path):
    """Sets the files in path aside, keeping the directory."""
    try:
        names = [e.name for e in os.scandir(path) if e.is_file()]
    except FileNotFoundError:
        return
    if names:
        dest = _trash_slot()
        os.mkdir(dest)
        for n in names:
            os.rename(os.path.join(path, n), os.path.join(dest, n))


def delete_files(path):
    """Really deletes the files in path (W1d)."""
    try:
        for e in os.scandir(path):
            if e.is_file():
                os.unlink(e.path)
    except FileNotFoundError:
        pass


def empty_trash():
    shutil.rmtree(TRASH, ignore_errors=True)


def stop_proc(proc, grace):
    """SIGTERM to a process this script started (by PID), SIGKILL after
    grace seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def quiesce():
    """Before every measured run: sync(2), so that no run pays for the
    write-back of the one before (on this machine the metadata of files a
    run deleted, Postfix's queue files say, is written back 5-30 s later,
    in the middle of the next run, and every fsync then waits for it)."""
    os.sync()
    time.sleep(0.5)


class Sink:
    """Postfix's smtp-sink on a loopback port, counting messages (-c)."""

    def __init__(self):
        self.port = free_port()
        self.out = os.path.join(WORK, "sink.out")
        self.proc = None

    def start(self):
        argv = [SMTP_SINK, "-c", "-u", "nobody", "-m", "1000",
                "127.0.0.1:%d" % self.port, "1000"]
        note_cmd("sink", argv)
        self.outf = open(self.out, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.outf,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        if not wait_port(self.port, 15):
            raise RuntimeError("smtp-sink did not start")

    def count(self):
        """Messages received so far (the last "mesg=N" it printed)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 256))
                tail = f.read().decode("ascii", "replace")
        except OSError:
            return 0
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def stop(self):
        stop_proc(self.proc, 10)
        self.proc = None


# ---------------------------------------------------------------- servers


class Smtpgate:
    name = "smtpgate"

    def __init__(self, sink_port):
        self.dir = os.path.join(WORK, "smtpgate")
        self.bin = BINARY_UNDER_TEST
        self.port = free_port()
        self.sink_port = sink_port
        self.proc = None
        self.conf = os.path.join(self.dir, "smtpgate.conf")

    def start(self):
        set_aside(self.dir)
        os.makedirs(self.dir)
        with open(self.conf, "w") as f:
            f.write(
                "# generated by bench/bench.py\n"
                "hostname = smtpgate.bench.test\n"
                "listen = 127.0.0.1:%d\n"
                "submission_listen =\n"
                "spool_dir = %s/spool\n"
                "postoffice_dir = %s/mail\n"
                "local_domains = bench.local\n"
                "relay_host = 127.0.0.1:%d\n"
                "max_connections = 20000\n"
                "max_connections_per_ip = 20000\n"
                "max_message_size = 100M\n"
                "user = root\n" % (self.port, self.dir, self.dir,
                                   self.sink_port))
        argv = [self.bin, "serve", "-c", self.conf]
        note_cmd("smtpgate start", argv,
                 prefix="ulimit -n %d; " % raise_nofile())
        self.logf = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.logf,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile, cwd=ROOT)
        if not wait_port(self.port, 30):
            self.stop()
            raise RuntimeError("smtpgate did not start (see %s/log)"
                               % self.dir)

    def pids(self):
        return proc_children(self.proc.pid) if self.proc else []

    def main_pid(self):
        return self.proc.pid

    def maildir_new(self):
        return os.path.join(self.dir, "mail", "rcpt", "new")

    def queued(self):
        return count_dir(os.path.join(self.dir, "spool", "queue"))

    def stop(self):
        stop_proc(self.proc, 30)
        self.proc = None


class Postfix:
    name = "postfix"

    def __init__(self, sink_port):
        self.dir = os.path.join(WORK, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.data = os.path.join(self.dir, "data")
        self.mail = os.path.join(self.dir, "mail")
        self.port = free_port()
        self.sink_port = sink_port
        self.master = None
        try:
            pw = pwd.getpwnam("smtpgate")
        except KeyError:
            pw = pwd.getpwnam("nobody")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def _render(self, name, subst):
        with open(os.path.join(BENCH, "postfix", name + ".in")) as f:
            text = f.read()
        for k, v in subst.items():
            text = text.replace("@%s@" % k, str(v))
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise RuntimeError("unfilled %s in %s" % (left, name))
        with open(os.path.join(self.etc, name), "w") as f:
            f.write(text)

    def running_master(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "master":
                    return pid
        except (OSError, ValueError, IndexError):
            pass
        return None

    def stop_leftover(self):
        """A private instance left by an interrupted earlier run."""
        if os.path.exists(os.path.join(self.etc, "main.cf")) and \
                self.running_master():
            subprocess.run([POSTFIX, "-c", self.etc, "stop"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            end = time.monotonic() + 30
            while self.running_master() and time.monotonic() < end:
                time.sleep(0.2)

    def start(self):
        self.stop_leftover()
        set_aside(self.dir)
        for d in (self.etc, self.spool, self.data, self.mail):
            os.makedirs(d)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        os.chown(self.mail, self.uid, self.gid)
        subst = {
            "CONFIG_DIR": self.etc, "QUEUE_DIR": self.spool,
            "DATA_DIR": self.data, "MAIL_BASE": self.mail,
            "UID": self.uid, "GID": self.gid, "SINK_PORT": self.sink_port,
            "WORK_DIR": WORK, "SMTP_ADDR": "127.0.0.1:%d" % self.port,
            "SMTPD_MAXPROC": max(env_int("BENCH_W3_POSTFIX", 1000) + 100,
                                 200),
        }
        self._render("main.cf", subst)
        self._render("master.cf", subst)
        argv = [POSTFIX, "-c", self.etc, "start"]
        note_cmd("postfix start", argv)
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120,
                           preexec_fn=raise_nofile)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s"
                               % r.stdout.decode(errors="replace"))
        end = time.monotonic() + 30
        while not self.running_master() and time.monotonic() < end:
            time.sleep(0.1)
        self.master = self.running_master()
        if not self.master or not wait_port(self.port, 30):
            self.stop()
            raise RuntimeError("postfix did not start (see %s/maillog)"
                               % self.dir)

    def pids(self):
        return proc_children(self.master) if self.master else []

    def main_pid(self):
        return self.master

    def maildir_new(self):
        return os.path.join(self.mail, "bench", "new")

    def queued(self):
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.spool, q)):
                n += len(files)
        return n

    def version(self):
        r = subprocess.run([POSTCONF, "-c", self.etc, "-h", "mail_version"],
                           stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        return r.stdout.decode().strip() or "?"

    def stop(self):
        if not self.master:
            return
        argv = [POSTFIX, "-c", self.etc, "stop"]
        note_cmd("postfix stop", argv)
        if not hasattr(Postfix, "postconf_n"):
            r = subprocess.run([POSTCONF, "-c", self.etc, "-n"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
            Postfix.postconf_n = r.stdout.decode(errors="replace")
        subprocess.run(argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if not os.path.exists("/proc/%d" % self.master):
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(self.master, signal.SIGKILL)
            except OSError:
                pass
        self.master = None


# ---------------------------------------------------------------- load


def smtp_source(port, sessions, msgs, rcpt, length=MSG_LEN, reuse=False,
                what=None):
    argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(msgs),
            "-l", str(length)]
    if reuse:
        argv.append("-d")
    argv += ["-f", SENDER, "-t", rcpt, "127.0.0.1:%d" % port]
    if what:
        note_cmd(what, argv)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for(count_fn, target, timeout, procs=(), poll=0.01):
    """Poll until count_fn() >= target; returns (seconds or None, count)."""
    t0 = time.monotonic()
    end = t0 + timeout
    n = count_fn()
    while n < target and time.monotonic() < end:
        time.sleep(poll)
        n = count_fn()
    if n >= target:
        return time.monotonic(), n
    return None, n


def exactly_once(server, count_fn, target, settle):
    """After the target count, no more arrive and the queue is empty."""
    time.sleep(settle)
    end = time.monotonic() + 15
    while server.queued() and time.monotonic() < end:
        time.sleep(0.2)
    n = count_fn()
    q = server.queued()
    if n == target and q == 0:
        return True, ""
    return False, "got %d of %d, %d still queued" % (n, target, q)


def finish(procs, timeout=120):
    """Wait for load generators; return their error text, if any."""
    errs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            errs.append("smtp-source rc=%d: %s" % (
                p.returncode, err.decode(errors="replace").strip()[-300:]))
    return "; ".join(errs)


class Bench:
    def __init__(self, quick):
        self.quick = quick
        self.settle = 1.0 if quick else 2.0
        self.sink = None
        self.servers = []

    # W1 / W2 / W4: N messages, timed until all arrived
    def run_batch(self, srv, what, sessions, msgs, remote, reuse=False,
                  keep=False):
        if remote:
            base = self.sink.count()
            count = lambda: self.sink.count() - base
        else:
            newdir = srv.maildir_new()
            clear_dir(newdir)
            count = lambda: count_dir(newdir)
        rcpt = REMOTE_RCPT if remote else LOCAL_RCPT
        t0 = time.monotonic()
        p = smtp_source(srv.port, sessions, msgs, rcpt, reuse=reuse,
                        what="%s %s" % (what, srv.name))
        # The client's end first, then the count: counting while the
        # messages come in took CPU from the servers (a scandir of new/
        # every 10 ms cost W4 about 15 %, FINDINGS 12). A message is
        # acknowledged before the client sends the next or quits, so
        # nothing is missed; what a server delivers after its 250 (Postfix)
        # is still waited for.
        err = finish([p], timeout=max(120, msgs / 20.0))
        t_end, n = wait_for(count, msgs, max(60, msgs / 20.0),
                            poll=0.01 if msgs < 20000 else 0.2)
        res = {"ok": False, "n": msgs}
        if t_end is None:
            res["err"] = "timeout: %d of %d arrived; %s" % (n, msgs, err)
            return res
        ok, why = exactly_once(srv, count, msgs, self.settle)
        res.update(ok=ok and not err, rate=msgs / (t_end - t0),
                   secs=t_end - t0, err=(why + " " + err).strip())
        if not remote and not keep:
            clear_dir(newdir)
        return res

    def w1(self, srv):
        return self.run_batch(srv, "W1", 20, self.msgs, False)

    def w2(self, srv):
        return self.run_batch(srv, "W2", 20, self.msgs, True)

    # W4's floor: the same client straight into smtp-sink (no storage):
    # what the client's serial round trips cost without any server work
    def w4_floor(self):
        base = self.sink.count()
        t0 = time.monotonic()
        p = smtp_source(self.sink.port, 1, self.seq, REMOTE_RCPT, reuse=True,
                        what="W4 floor (smtp-sink)")
        err = finish([p], timeout=max(120, self.seq / 20.0))
        t_end, n = wait_for(lambda: self.sink.count() - base, self.seq,
                            max(60, self.seq / 20.0))
        if t_end is None or err:
            return {"ok": False, "err": "floor: %d of %d %s" % (
                n, self.seq, err)}
        return {"ok": True, "rate": self.seq / (t_end - t0)}

    # The floor again while a spinning process keeps one CPU from going
    # idle: in a VM an idle CPU halts, and waking it costs an exit to the
    # hypervisor; the difference is what the round trips' wake-ups cost.
    def w4_floor_busy(self):
        spin = subprocess.Popen([sys.executable, "-c",
                                 "import time\nend = time.monotonic() + 60\n"
                                 "while time.monotonic() < end: pass\n"])
        try:
            time.sleep(0.2)
            return self.w4_floor()
        finally:
            stop_proc(spin, 1)

    # W1d: W1 right after the previous W1's messages were deleted from the
    # mailbox (really deleted, as a mail reader does; see TRASH)
    def w1d(self, srv):
        fill = self.run_batch(srv, "W1d-fill", 20, self.msgs, False,
                              keep=True)
        if not fill.get("ok"):
            return fill
        delete_files(srv.maildir_new())
        quiesce()
        return self.run_batch(srv, "W1d", 20, self.msgs, False)

    def w4(self, srv):
        return self.run_batch(srv, "W4", 1, self.seq, False, reuse=True)

    # W5: one big message, MB/s and peak RSS during it
    def w5(self, srv):
        newdir = srv.maildir_new()
        clear_dir(newdir)
        size = env_int("BENCH_BIG_MB", 50) * 1024 * 1024
        peak = [0]
        stop = threading.Event()
        hwm_ok = False
        if srv.name == "smtpgate":
            try:
                with open("/proc/%d/clear_refs" % srv.main_pid(), "w") as f:
                    f.write("5\n")
                hwm_ok = True
            except OSError:
                pass

        def sampler():
            while not stop.is_set():
                peak[0] = max(peak[0], pss_kb(srv.pids()))
                stop.wait(0.02)
        th = threading.Thread(target=sampler)
        th.start()
        t0 = time.monotonic()
        p = smtp_source(srv.port, 1, 1, LOCAL_RCPT, length=size,
                        what="W5 " + srv.name)
        t_end, n = wait_for(lambda: count_dir(newdir), 1, 300)
        err = finish([p])
        stop.set()
        th.join()
        if hwm_ok:
            peak[0] = max(peak[0], proc_kb(srv.main_pid(), "status",
                                           "VmHWM:"))
        res = {"ok": False}
        if t_end is None:
            res["err"] = "timeout; " + err
            return res
        ok, why = exactly_once(srv, lambda: count_dir(newdir), 1,
                               self.settle)
        sizes = [e.stat().st_size for e in os.scandir(newdir)]
        # Postfix stores lines with LF only: 80 of every 82 bytes remain
        if sizes and sizes[0] < 0.95 * size:
            ok, why = False, "delivered file is %d bytes" % sizes[0]
        clear_dir(newdir)
        res.update(ok=ok and not err, mbps=size / 1048576.0 / (t_end - t0),
                   peak_mem_mb=peak[0] / 1024.0,
                   err=(why + " " + err).strip())
        return res

    # W6: end-of-data -> 250 latency while W1's load runs
    def w6(self, srv):
        newdir = srv.maildir_new()
        clear_dir(newdir)
        nsamples = env_int("BENCH_LAT", 300)
        done = threading.Event()
        batches = [0]
        errs = []

        def loader():
            while not done.is_set():
                p = smtp_source(srv.port, 20, self.msgs, LOCAL_RCPT,
                                what="W6 load, %s (with bench.py's "
                                "latency client on one more connection)"
                                % srv.name)
                e = finish([p])
                batches[0] += 1
                if e:
                    errs.append(e)
                    break
        th = threading.Thread(target=loader)
        th.start()
        time.sleep(0.3)
        samples = []
        try:
            samples = latency_client(srv.port, nsamples)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            errs.append("latency client: %r" % (e,))
        done.set()
        th.join()
        total = batches[0] * self.msgs + len(samples)
        t_end, n = wait_for(lambda: count_dir(newdir), total, 120,
                            poll=0.05)
        res = {"ok": False}
        if t_end is None or len(samples) < nsamples:
            res["err"] = "got %d of %d; %d samples; %s" % (
                n, total, len(samples), "; ".join(errs))
            return res
        ok, why = exactly_once(srv, lambda: count_dir(newdir), total,
                               self.settle)
        clear_dir(newdir)
        samples.sort()
        res.update(ok=ok and not errs, p50=pct(samples, 50) * 1000,
                   p99=pct(samples, 99) * 1000, batches=batches[0],
                   err=(why + " " + "; ".join(errs)).strip())
        return res

    # W3: N idle sessions after EHLO; PSS per connection; a transaction
    def w3(self, srv, n):
        newdir = srv.maildir_new()
        clear_dir(newdir)
        time.sleep(1)
        before = pss_kb(srv.pids())
        res = asyncio.run(hold_sessions(srv, n, before))
        res["before_kb"] = before
        t_end, _ = wait_for(lambda: count_dir(newdir), 1, 30, poll=0.05)
        res["delivered"] = t_end is not None
        res["ok"] = (res["greeted"] == n and res["ehlo"] == n
                     and res["held_at_end"] == n
                     and res["txn"] and res["delivered"])
        clear_dir(newdir)
        time.sleep(1)
        return res

    # W7: soak, RSS after the first 10,000 and at the end
    def w7(self, srv, total):
        first = min(10000, total // 2)
        out = {"ok": True, "err": ""}
        rss = []
        for phase, n in (("first", first), ("rest", total - first)):
            newdir = srv.maildir_new()
            clear_dir(newdir)
            half_l = n // 2
            half_r = n - half_l
            base = self.sink.count()
            t0 = time.monotonic()
            pl = smtp_source(srv.port, 10, half_l, LOCAL_RCPT,
                             what="W7 %s local" % phase)
            pr = smtp_source(srv.port, 10, half_r, REMOTE_RCPT,
                             what="W7 %s relay" % phase)
            count = lambda: count_dir(newdir) + self.sink.count() - base
            t_end, got = wait_for(count, n, max(120, n / 20.0), poll=0.5)
            err = finish([pl, pr])
            if t_end is None:
                out.update(ok=False, err="%s: timeout, %d of %d; %s" % (
                    phase, got, n, err))
                return out
            ok, why = exactly_once(srv, count, n, self.settle)
            if not ok or err:
                out.update(ok=False, err=(out["err"] + " %s: %s %s" % (
                    phase, why, err)).strip())
            clear_dir(newdir)
            time.sleep(1)
            rss.append(rss_kb(srv.pids()))
            out["rate_" + phase] = n / (t_end - t0)
            log("  W7 %s %d messages: %.0f msg/s, RSS %d KB" % (
                phase, n, n / (t_end - t0), rss[-1]))
        out["rss_first_kb"], out["rss_end_kb"] = rss
        out["growth"] = (rss[1] - rss[0]) / float(rss[0])
        out["total"] = total
        return out


def pct(sorted_vals, p):
    """Nearest-rank percentile of sorted values."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1,
                   int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def read_reply(f):
    """One SMTP reply (multi-line aware) from a binary file; its code."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


def latency_client(port, n):
    """n sequential messages on one connection; seconds from sending the
    final ".\\r\\n" to reading the 250."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    out = []
    try:
        if read_reply(f) != 220:
            raise RuntimeError("no greeting")
        s.sendall(b"EHLO latency.bench.test\r\n")
        if read_reply(f) != 250:
            raise RuntimeError("EHLO refused")
        line = b"L" * 78 + b"\r\n"
        body = line * (MSG_LEN // len(line))
        for i in range(n):
            hdr = ("From: <%s>\r\nTo: <%s>\r\nSubject: latency %d\r\n"
                   "Message-ID: <lat%d.%f@bench.test>\r\n\r\n"
                   % (SENDER, LOCAL_RCPT, i, i, time.time())).encode()
            s.sendall(("MAIL FROM:<%s>\r\n" % SENDER).encode())
            if read_reply(f) != 250:
                raise RuntimeError("MAIL refused")
            s.sendall(("RCPT TO:<%s>\r\n" % LOCAL_RCPT).encode())
            if read_reply(f) != 250:
                raise RuntimeError("RCPT refused")
            s.sendall(b"DATA\r\n")
            if read_reply(f) != 354:
                raise RuntimeError("DATA refused")
            s.sendall(hdr + body)
            t0 = time.perf_counter()
            s.sendall(b".\r\n")
            code = read_reply(f)
            t1 = time.perf_counter()
            if code != 250:
                raise RuntimeError("end of data: %d" % code)
            out.append(t1 - t0)
        s.sendall(b"QUIT\r\n")
    finally:
        s.close()
    return out


async def hold_sessions(srv, n, before_kb):
    """Open n sessions (greeting + EHLO), hold them, measure, close."""
    sem = asyncio.Semaphore(256)
    writers = []
    stats = {"greeted": 0, "ehlo": 0, "errors": {}}

    async def reply(r):
        while True:
            line = await r.readline()
            if not line:
                raise ConnectionError("closed")
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3])

    async def one(i):
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", srv.port), 60)
            except Exception as e:  # noqa: BLE001 - counted
                k = type(e).__name__
                stats["errors"][k] = stats["errors"].get(k, 0) + 1
                return
            try:
                if await asyncio.wait_for(reply(r), 90) == 220:
                    stats["greeted"] += 1
                w.write(b"EHLO idle%d.bench.test\r\n" % i)
                if await asyncio.wait_for(reply(r), 90) == 250:
                    stats["ehlo"] += 1
                writers.append((r, w))
            except Exception as e:  # noqa: BLE001 - counted
                k = type(e).__name__
                stats["errors"][k] = stats["errors"].get(k, 0) + 1
                w.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    stats["open_secs"] = time.monotonic() - t0
    await asyncio.sleep(2)
    after = pss_kb(srv.pids())
    stats["after_kb"] = after
    stats["rss_kb"] = rss_kb(srv.pids())
    stats["per_conn_kb"] = (after - before_kb) / float(n)
    stats["processes"] = len(srv.pids())

    def txn():
        msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: during W3\r\n\r\n"
               "served while %d sessions are held\r\n"
               % (SENDER, LOCAL_RCPT, n))
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=60) as c:
            c.sendmail(SENDER, [LOCAL_RCPT], msg)
        return True
    try:
        stats["txn"] = await asyncio.to_thread(txn)
    except Exception as e:  # noqa: BLE001 - reported
        stats["txn"] = False
        stats["errors"]["txn " + type(e).__name__] = 1
    stats["held_at_end"] = sum(1 for r, w in writers if not r.at_eof())
    for _, w in writers:
        w.close()
    await asyncio.sleep(0.5)
    return stats


# ---------------------------------------------------------------- probe


def run_probe(seconds, threads, pattern=None):
    exe = os.path.join(WORK, "probe")
    argv = [exe, os.path.join(WORK, "probe.d"), str(seconds), str(threads)]
    if pattern:
        argv.append(pattern)
    note_cmd("probe", argv)
    r = subprocess.run(argv, stdout=subprocess.PIPE, timeout=600)
    out = {}
    for line in r.stdout.decode().splitlines():
        name, thr, rate = line.split()
        out["%s/%s" % (name, thr)] = float(rate)
    set_aside(os.path.join(WORK, "probe.d"))
    return out


# ---------------------------------------------------------------- report


def machine():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL).stdout.decode(
                                      ).strip()
        except OSError:
            return "?"
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("grep MemTotal /proc/meminfo | awk '{print $2}'")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or "?",
        "mem_gib": "%.0f" % (int(mem) / 1048576.0) if mem.isdigit() else "?",
        "kernel": platform.release(),
        "fs": sh("df -T %s | awk 'NR==2{print $2\" on \"$1}'"
                 % shlex.quote(WORK)),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "commit": sh("git -C %s rev-parse --short HEAD" % shlex.quote(ROOT)),
        "dirty": bool(sh("git -C %s status --porcelain -uno -- src"
                         % shlex.quote(ROOT))),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt(vals, f="%.0f"):
    m, lo, hi = med(vals)
    if m is None:
        return "n/a"
    if len([v for v in vals if v is not None]) == 1:
        return f % m
    return (f + " (" + f + "–" + f + ")") % (m, lo, hi)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode not in ("full", "quick"):
        sys.exit("usage: bench.py [full|quick]")
    quick = mode == "quick"
    if not quick and os.geteuid() != 0:
        sys.exit("bench: the full benchmark runs Postfix and must be root")
    os.makedirs(WORK, exist_ok=True)
    spread_dirs(WORK)
    raise_nofile()
    b = Bench(quick)
    b.msgs = env_int("BENCH_MSGS", 1000 if quick else 3000)
    b.seq = env_int("BENCH_SEQ", 500 if quick else 1000)
    rounds = 1 if quick else max(1, env_int("BENCH_ROUNDS", 3))
    w3_sizes = [int(x) for x in os.environ.get(
        "BENCH_W3", "1000,10000").split(",") if x.strip()]
    w3_pf = env_int("BENCH_W3_POSTFIX", 1000)
    soak = env_int("BENCH_SOAK", 100000)
    info = machine()
    info["binary"] = copy_binary()
    log("bench %s: %d round(s), %d messages (W1/W2), %d sequential (W4); "
        "%s, %s cores, kernel %s, %s" % (
            mode, rounds, b.msgs, b.seq, info["cpu"], info["nproc"],
            info["kernel"], info["fs"]))

    for s in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, s),
                      lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    b.sink = Sink()
    results = {"smtpgate": {}, "postfix": {}, "probe": []}
    sg = pf = None
    try:
        b.sink.start()
        if quick:
            quiesce()
            results["probe"].append(run_probe(2, 1, "create"))
            results["probe"][0].update(run_probe(2, 1, "append"))
            results["probe"][0].update(run_probe(2, 1, "overwrite"))
            results["probe"][0].update(run_probe(2, 1, "direct"))
            results["floor"] = [b.w4_floor()]
            results["floor_busy"] = [b.w4_floor_busy()]
            log("probe: serial create+write+fdatasync %.0f/s"
                % results["probe"][0]["create/1"])
            sg = Smtpgate(b.sink.port)
            sg.start()
            for wname, fn in (("W1", b.w1), ("W2", b.w2), ("W4", b.w4)):
                quiesce()
                r = fn(sg)
                results["smtpgate"].setdefault(wname, []).append(r)
                log("  smtpgate %s: %s" % (wname, brief(wname, r)))
            sg.stop()
            sg = None
            return report_quick(results, b, info)
        for rnd in range(1, rounds + 1):
            log("round %d/%d" % (rnd, rounds))
            quiesce()
            results["probe"].append(run_probe(2, 20))
            results.setdefault("floor", []).append(b.w4_floor())
            results.setdefault("floor_busy", []).append(b.w4_floor_busy())
            log("  probe: " + ", ".join("%s %.0f/s" % kv for kv in
                                        results["probe"][-1].items()))
            sg = Smtpgate(b.sink.port)
            pf = Postfix(b.sink.port)
            sg.start()
            pf.start()
            plan = [("W1", lambda s: b.w1(s)), ("W2", lambda s: b.w2(s)),
                    ("W4", lambda s: b.w4(s)), ("W5", lambda s: b.w5(s)),
                    ("W6", lambda s: b.w6(s))]
            for size in w3_sizes:
                plan.append(("W3/%d" % size,
                             lambda s, size=size: b.w3(s, size)))
            for wname, fn in plan:
                if wname == "W3/%d" % w3_sizes[0]:
                    # memory per session: measured on servers started
                    # afresh, so that neither reuses what earlier workloads
                    # left (freed heap, idle smtpd processes)
                    results["postfix_version"] = pf.version()
                    sg.stop()
                    pf.stop()
                    sg.start()
                    pf.start()
                for srv in (sg, pf):
                    if wname.startswith("W3/") and srv is pf and \
                            int(wname[3:]) > w3_pf:
                        continue
                    quiesce()
                    r = fn(srv)
                    results[srv.name].setdefault(wname, []).append(r)
                    log("  %-8s %-8s %s" % (srv.name, wname,
                                            brief(wname, r)))
            results["postfix_version"] = pf.version()
            sg.stop()
            pf.stop()
            sg = pf = None
        if soak > 0:
            log("W7 soak: %d messages (smtpgate)" % soak)
            sg = Smtpgate(b.sink.port)
            sg.start()
            quiesce()
            results["smtpgate"]["W7"] = [b.w7(sg, soak)]
            sg.stop()
            sg = None
        if env_int("BENCH_W1D", 1):
            # last: its deletions would slow whatever ran after it
            log("W1d: W1 right after deleting the previous run's %d "
                "messages" % b.msgs)
            for cls in (Smtpgate, Postfix):
                srv = cls(b.sink.port)
                if cls is Smtpgate:
                    sg = srv
                else:
                    pf = srv
                srv.start()
                quiesce()
                r = b.w1d(srv)
                results[srv.name]["W1d"] = [r]
                log("  %-8s W1d      %s" % (srv.name, brief("W1d", r)))
                srv.stop()
            sg = pf = None
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        report_full(results, b, info, rounds, w3_sizes, w3_pf, soak)
    finally:
        for srv in (sg, pf):
            if srv:
                srv.stop()
        b.sink.stop()
        empty_trash()


def brief(wname, r):
    if not r.get("ok"):
        tail = "FAILED: %s" % r.get("err") or r.get("errors")
    else:
        tail = "ok"
    if wname in ("W1", "W1d", "W2", "W4") and "rate" in r:
        return "%.0f msg/s (%.2f s) %s" % (r["rate"], r["secs"], tail)
    if wname == "W5" and "mbps" in r:
        return "%.1f MB/s, peak memory %.1f MB %s" % (
            r["mbps"], r["peak_mem_mb"], tail)
    if wname == "W6" and "p99" in r:
        return "p50 %.1f ms, p99 %.1f ms %s" % (r["p50"], r["p99"], tail)
    if wname.startswith("W3/") and "per_conn_kb" in r:
        return ("%.1f KB/conn, greeted %d, EHLO %d, txn %s, %d processes, "
                "opened in %.1f s %s" % (
                    r["per_conn_kb"], r["greeted"], r["ehlo"], r["txn"],
                    r["processes"], r["open_secs"],
                    tail if r["ok"] else "FAILED %s" % r["errors"]))
    return tail


def cheapest_write(p):
    """The probe's fastest serial durable write of 5 KB, ops/s: an append
    or an overwrite in place + fdatasync, or an overwrite in place past the
    page cache (O_DIRECT | O_DSYNC), on a file kept open."""
    rates = [r for r in (p.get("append/1"), p.get("overwrite/1"),
                         p.get("direct/1")) if r]
    return max(rates) if rates else None


def w4_bound(floor, write):
    """The most a server can do on W4: the client's serial round trips
    (floor: the same client into smtp-sink, no storage) plus, per message,
    the cheapest durable write the probe found, one after the other (the
    250 must follow the write, the next command follows the 250)."""
    return 1.0 / (1.0 / floor + 1.0 / write)


def report_quick(results, b, info):
    sgr = results["smtpgate"]
    probe = results["probe"][0]["create/1"]
    lines = ["", "bench-quick (smtpgate %s%s, %s; 1 round):" % (
        info["commit"], "+changes" if info["dirty"] else "",
        info["binary"])]
    last = {}
    lastf = os.path.join(WORK, "quick-last.json")
    try:
        with open(lastf) as f:
            last = json.load(f)
    except (OSError, ValueError):
        pass
    now = {}
    ok = True
    for w, label in (("W1", "W1 local, 20 sessions, %d msgs" % b.msgs),
                     ("W2", "W2 relay, 20 sessions, %d msgs" % b.msgs),
                     ("W4", "W4 one session, %d msgs" % b.seq)):
        r = sgr[w][0]
        ok = ok and r.get("ok", False)
        rate = r.get("rate")
        now[w] = rate
        prev = last.get(w)
        delta = (" (previous run %.0f, %+.0f%%)" % (prev, 100.0 * (
            rate - prev) / prev)) if prev and rate else ""
        lines.append("  %-38s %s msg/s%s%s" % (
            label, "%.0f" % rate if rate else "n/a", delta,
            "" if r.get("ok") else "  FAILED: %s" % r.get("err")))
    lines.append("  %-38s %.0f /s" % ("probe serial create+write+fdatasync",
                                      probe))
    if now.get("W4"):
        lines.append("  W4 / probe = %.0f%% (target >= 80%%: %s)" % (
            100.0 * now["W4"] / probe,
            "PASS" if now["W4"] >= 0.8 * probe else "MISS"))
    floor = results["floor"][0].get("rate")
    write = cheapest_write(results["probe"][0])
    if floor and write:
        bound = w4_bound(floor, write)
        lines.append("  %-38s %.0f msg/s" % (
            "W4 floor: client into smtp-sink", floor))
        lines.append("  W4 bound, floor + cheapest durable write: %.0f "
                     "msg/s = %.0f%% of probe" % (bound, 100.0 * bound /
                                                   probe))
    busy = results.get("floor_busy", [{}])[0].get("rate")
    if busy:
        lines.append("  %-38s %.0f msg/s" % (
            "W4 floor, one CPU kept busy", busy))
    lines.append("  every message arrived exactly once: %s" % (
        "yes" if ok else "NO"))
    lines.append("  load average before/after: %s / %s (other work on the "
                 "machine moves these rates)" % (
                     " ".join(info["loadavg"]),
                     " ".join(open("/proc/loadavg").read().split()[:3])))
    log("\n".join(lines))
    if ok:
        with open(lastf, "w") as f:
            json.dump(now, f)
    return 0 if ok else 1


def report_full(results, b, info, rounds, w3_sizes, w3_pf, soak):
    S, P = results["smtpgate"], results["postfix"]

    def vals(d, w, k):
        return [r.get(k) for r in d.get(w, []) if r.get("ok")]

    def allok(d, w):
        rs = d.get(w, [])
        return bool(rs) and all(r.get("ok") for r in rs)

    rows = []
    probe_create = med([p.get("create/1") for p in results["probe"]])[0]

    def ratio(a, c):
        return a / c if a and c else None

    for w, label in (("W1", "W1 local delivery, msg/s"),
                     ("W2", "W2 relay to smtp-sink, msg/s")):
        ms, mp = med(vals(S, w, "rate"))[0], med(vals(P, w, "rate"))[0]
        r = ratio(ms, mp)
        res = "PASS" if r and r >= 3 and allok(S, w) else "MISS"
        rows.append((label, fmt(vals(S, w, "rate")), fmt(vals(P, w, "rate")),
                     "%.2f×" % r if r else "n/a", "≥ 3× Postfix",
                     res if allok(S, w) and allok(P, w) else "FAIL"))
    if S.get("W1d") or P.get("W1d"):
        ms, mp = med(vals(S, "W1d", "rate"))[0], med(vals(P, "W1d", "rate"))[0]
        r = ratio(ms, mp)
        rows.append(("W1d local delivery right after %s deletions, msg/s"
                     % format(b.msgs, ","), fmt(vals(S, "W1d", "rate")),
                     fmt(vals(P, "W1d", "rate")), "%.2f×" % r if r else "n/a",
                     "(reported)", "ok" if allok(S, "W1d") and
                     allok(P, "W1d") else "FAIL"))
    for size in w3_sizes:
        w = "W3/%d" % size
        label = "W3 %s idle sessions, PSS KB/conn" % format(size, ",")
        ms = med(vals(S, w, "per_conn_kb"))[0]
        mp = med(vals(P, w, "per_conn_kb"))[0] if size <= w3_pf else None
        res = "PASS" if ms is not None and ms <= 10 and allok(S, w) \
            else ("FAIL" if not allok(S, w) else "MISS")
        rows.append((label, fmt(vals(S, w, "per_conn_kb"), "%.1f"),
                     fmt(vals(P, w, "per_conn_kb"), "%.1f")
                     if size <= w3_pf else "not run",
                     "%.3f×" % ratio(ms, mp) if mp and ms else "—",
                     "≤ 10 KB, all %s greeted + txn" % format(size, ","),
                     res))
    ms = med(vals(S, "W4", "rate"))[0]
    mp = med(vals(P, "W4", "rate"))[0]
    rp = ratio(ms, probe_create)
    floors = [f.get("rate") for f in results.get("floor", []) if f.get("ok")]
    rf = ratio(ms, med(floors)[0])
    rows.append(("W4 one session, msg/s", fmt(vals(S, "W4", "rate")),
                 fmt(vals(P, "W4", "rate")),
                 "%.2f× (%.0f%% of probe, %.0f%% of the floor)" % (
                     ratio(ms, mp) or 0, 100 * (rp or 0), 100 * (rf or 0)),
                 "≥ 80%% of serial create+fdatasync (%.0f/s)"
                 % (probe_create or 0),
                 ("PASS" if rp and rp >= 0.8 else "MISS")
                 if allok(S, "W4") else "FAIL"))
    writes = [cheapest_write(p) for p in results["probe"]]
    mf, mw = med(floors)[0], med(writes)[0]
    if mf and mw and probe_create:
        bound = w4_bound(mf, mw)
        rows.append(("W4 floor: the same client into smtp-sink (no storage), "
                     "msg/s", fmt(floors), "—", "—",
                     "bound: floor + cheapest durable write (%.0f/s) a "
                     "message = %.0f/s = %.0f%% of probe"
                     % (mw, bound, 100.0 * bound / probe_create),
                     "(reported)"))
    busy = [f.get("rate") for f in results.get("floor_busy", [])
            if f.get("ok")]
    if busy and mf:
        rows.append(("W4 floor while a spinning process keeps one CPU busy "
                     "(no idle wake-ups), msg/s", fmt(busy), "—", "—",
                     "%.1f× the floor: the round trips' wake-ups from idle "
                     "cost %.0f µs a message" % (
                         med(busy)[0] / mf, 1e6 / mf - 1e6 / med(busy)[0]),
                     "(reported)"))
    ms = med(vals(S, "W5", "mbps"))[0]
    mp = med(vals(P, "W5", "mbps"))[0]
    rows.append(("W5 50 MB message, MB/s", fmt(vals(S, "W5", "mbps"), "%.1f"),
                 fmt(vals(P, "W5", "mbps"), "%.1f"),
                 "%.2f×" % ratio(ms, mp) if ratio(ms, mp) else "n/a",
                 "(reported)", "ok" if allok(S, "W5") else "FAIL"))
    ms = med(vals(S, "W5", "peak_mem_mb"))[0]
    mp = med(vals(P, "W5", "peak_mem_mb"))[0]
    rows.append(("W5 peak memory, MB (smtpgate RSS; Postfix PSS, all "
                 "processes)",
                 fmt(vals(S, "W5", "peak_mem_mb"), "%.1f"),
                 fmt(vals(P, "W5", "peak_mem_mb"), "%.1f"),
                 "%.2f×" % ratio(ms, mp) if ratio(ms, mp) else "n/a",
                 "(reported)", "ok" if allok(S, "W5") else "FAIL"))
    ms = med(vals(S, "W6", "p50"))[0]
    mp = med(vals(P, "W6", "p50"))[0]
    rows.append(("W6 end-of-data→250 p50, ms", fmt(vals(S, "W6", "p50"),
                                                   "%.1f"),
                 fmt(vals(P, "W6", "p50"), "%.1f"),
                 "%.2f×" % ratio(ms, mp) if ratio(ms, mp) else "n/a",
                 "(reported)", "ok" if allok(S, "W6") else "FAIL"))
    ms = med(vals(S, "W6", "p99"))[0]
    mp = med(vals(P, "W6", "p99"))[0]
    r = ratio(ms, mp)
    rows.append(("W6 end-of-data→250 p99, ms", fmt(vals(S, "W6", "p99"),
                                                   "%.1f"),
                 fmt(vals(P, "W6", "p99"), "%.1f"),
                 "%.2f×" % r if r else "n/a", "≤ Postfix's p99",
                 ("PASS" if r and r <= 1 else "MISS")
                 if allok(S, "W6") and allok(P, "W6") else "FAIL"))
    if soak > 0 and S.get("W7"):
        r7 = S["W7"][0]
        if "growth" in r7:
            rows.append(("W7 soak %s msgs: RSS after %s → end, KB"
                         % (format(soak, ","),
                            format(min(10000, soak // 2), ",")),
                         "%d → %d (%+.1f%%)" % (r7["rss_first_kb"],
                                                r7["rss_end_kb"],
                                                100 * r7["growth"]),
                         "not run", "—", "within 10 %",
                         ("PASS" if r7["growth"] <= 0.10 else "MISS")
                         if r7["ok"] else "FAIL"))
        else:
            rows.append(("W7 soak", "FAILED: %s" % r7.get("err"),
                         "not run", "—", "within 10 %", "FAIL"))

    hdr = ("| workload | smtpgate median (min–max) | Postfix median (min–max)"
           " | smtpgate/Postfix | target | result |")
    table = [hdr, "|---|---|---|---|---|---|"]
    for row in rows:
        table.append("| " + " | ".join(row) + " |")
    ptable = ["| probe pattern (5 KB) | serial, ops/s | 20 threads, ops/s |",
              "|---|---|---|"]
    for name, label in (("create", "create + write + fdatasync"),
                        ("rename", "… + rename + fsync(dir)"),
                        ("append", "append + fdatasync, one open file"),
                        ("overwrite", "overwrite 5 KB in place + fdatasync, "
                         "one open file"),
                        ("direct", "the same past the page cache: 8 KB, "
                         "O_DIRECT + O_DSYNC")):
        ptable.append("| %s | %s | %s |" % (
            label, fmt([p.get(name + "/1") for p in results["probe"]]),
            fmt([p.get(name + "/20") for p in results["probe"]])))

    log("\n" + "\n".join(table) + "\n\n" + "\n".join(ptable))

    raw = ["| round | server | W1 msg/s | W2 msg/s | W4 msg/s | W5 MB/s |"
           " W5 peak MB | W6 p50/p99 ms | " + " | ".join(
               "W3 %d KB/conn" % s for s in w3_sizes) + " |",
           "|---" * (8 + len(w3_sizes)) + "|"]
    for i in range(rounds):
        for name, d in (("smtpgate", S), ("postfix", P)):
            def g(w, k, f="%.0f"):
                rs = d.get(w, [])
                if i >= len(rs):
                    return "—"
                r = rs[i]
                if not r.get("ok"):
                    return "FAIL"
                return f % r[k] if k in r else "—"
            cells = [str(i + 1), name, g("W1", "rate"), g("W2", "rate"),
                     g("W4", "rate"), g("W5", "mbps", "%.1f"),
                     g("W5", "peak_mem_mb", "%.1f"),
                     (g("W6", "p50", "%.1f") + " / " +
                      g("W6", "p99", "%.1f"))]
            for s in w3_sizes:
                cells.append(g("W3/%d" % s, "per_conn_kb", "%.1f"))
            raw.append("| " + " | ".join(cells) + " |")

    failures = []
    for name, d in (("smtpgate", S), ("postfix", P)):
        for w, rs in sorted(d.items()):
            for i, r in enumerate(rs):
                if not r.get("ok"):
                    failures.append("- %s %s round %d: %s %s" % (
                        name, w, i + 1, r.get("err", ""),
                        r.get("errors", "")))

    cmds = []
    for what, c in COMMANDS:
        cmds.append("    # " + what)
        cmds.append("    " + c)
    md = []
    md.append("# smtpgate vs Postfix — benchmark results\n")
    md.append("Generated by `make bench` (`bench/run.sh full` → "
              "`bench/bench.py full`) on %s. Do not edit by hand: rerun "
              "`make bench`.\n" % info["date"])
    md.append("## Machine\n")
    md.append("- %s cores (%s), %s GiB RAM, %s, kernel %s" % (
        info["nproc"], info["cpu"], info["mem_gib"], info["os"],
        info["kernel"]))
    md.append("- file system of bench/work (spools, Maildirs, probe): %s"
              % info["fs"])
    md.append("- smtpgate commit %s%s, binary %s, copied at the start "
              "and run from bench/work; Postfix %s (Debian package), "
              "smtp-source/smtp-sink from the same package" % (
                  info["commit"],
                  " with uncommitted changes under src/" if info["dirty"]
                  else "", info["binary"],
                  results.get("postfix_version", "?")))
    md.append("- load average at start %s, at end %s (other work on the "
              "machine shares the 2 cores with both servers alike; the "
              "rounds are interleaved so that drift hits both)\n" % (
                  " ".join(info["loadavg"]),
                  " ".join(info.get("loadavg_end", ["?"]))))
    md.append("## Results\n")
    md.append("%d rounds, interleaved: in each round every workload runs "
              "on smtpgate, then on Postfix (A B A B …); both servers are "
              "started fresh at the start of each round. Medians with "
              "min–max over the rounds; the ratio is of the medians. "
              "Every run checks that every message arrived exactly once "
              "(exact count in Maildir new/ or at smtp-sink after a settle "
              "time, and the server's queue empty); a run that fails the "
              "check is excluded and marks its row FAIL.\n" % rounds)
    md.extend(table)
    md.append("")
    md.append("The machine's own limit, measured in the same run (bench/"
              "probe.c, 2 s per pattern, once per round, in bench/work):\n")
    md.extend(ptable)
    md.append("")
    md.append("Notes:\n")
    md.append("- W1/W2/W6 load: smtp-source, 20 parallel sessions, one "
              "message per connection (its default), %d messages of "
              "%d bytes payload; the rate is counted until the last "
              "message is in Maildir new/ (W1) or counted by smtp-sink "
              "(W2)." % (b.msgs, MSG_LEN))
    md.append("- W4: smtp-source -d -s 1, %d messages on one connection; "
              "rate until all are in new/." % b.seq)
    md.append("- W3: a Python asyncio client opens the sessions (greeting, "
              "EHLO) and holds them, on servers restarted for W3; PSS (sum "
              "over the server's processes, /proc/PID/smaps_rollup) after "
              "minus before (idle, just started), per session; "
              "then one smtplib transaction must be accepted and delivered "
              "while they are held. Postfix runs one smtpd process per "
              "session, so it is measured at %s sessions only (smtpd "
              "maxproc raised in its master.cf for that)." %
              format(w3_pf, ","))
    md.append("- W5: memory sampled every 20 ms during the transfer as "
              "the PSS summed over the server's processes; for smtpgate "
              "the larger of that and its peak RSS (VmHWM, reset before "
              "the transfer through /proc/PID/clear_refs). Postfix's PSS "
              "sum includes all its resident daemons (master, qmgr, "
              "smtpd, cleanup, virtual, ...).")
    md.append("- W6: a Python client sends %d messages one after another "
              "on one connection while W1's load runs (smtp-source batches "
              "repeated until it is done) and times sending the final "
              "\".\" line to reading the 250." % env_int("BENCH_LAT", 300))
    md.append("- W7: smtpgate only (the target is about smtpgate's own "
              "memory); half local, half relayed, 2×10 sessions; RSS after "
              "the first 10,000 delivered and after the rest.")
    md.append("- Postfix is configured for the comparison, not tuned: its "
              "defaults except the limits that would cap the load "
              "(connection count/rate limits off, message and mailbox size "
              "100 MB, smtpd maxproc for W3) and no reverse DNS lookups; "
              "see bench/postfix/*.in.")
    md.append("- W1d: after the rounds (and W7), on servers started afresh: "
              "W1 once, then its %d messages deleted from the mailbox "
              "(unlink, as a mail reader expunging them), then W1 again, "
              "measured. Everywhere else the files of finished runs are "
              "moved aside and deleted only when the benchmark is over: on "
              "this machine's file system (ext4 without a journal) a "
              "create after many deletions costs far more (see the findings "
              "below), and the harness's own clean-up must not decide the "
              "next run's speed. Before every measured run (and the probe) "
              "the harness calls sync(2) and waits half a second, so that "
              "no run pays for the write-back of the one before.\n" % b.msgs)
    if failures:
        md.append("Failed runs:\n")
        md.extend(failures)
        md.append("")
    md.append("## Every round\n")
    md.extend(raw)
    md.append("")
    if soak > 0 and S.get("W7"):
        r7 = S["W7"][0]
        md.append("W7 (smtpgate): %s\n" % json.dumps(
            {k: (round(v, 3) if isinstance(v, float) else v)
             for k, v in r7.items()}))
    findings = os.path.join(BENCH, "FINDINGS.md")
    if os.path.exists(findings):
        with open(findings) as f:
            md.append(f.read().rstrip("\n") + "\n")
    md.append("## Exact commands\n")
    md.append("Ports are picked per run among free loopback ports "
              "(these are this run's). Postfix's main.cf/master.cf are "
              "bench/postfix/*.in with the @NAME@ fields filled in; "
              "smtpgate's configuration is written by bench.py:\n")
    md.extend(cmds)
    md.append("")
    md.append("W3 uses bench.py's asyncio client (greeting, EHLO, hold) "
              "and smtplib for the transaction; W6 its latency client.\n")
    if getattr(Postfix, "postconf_n", ""):
        md.append("Postfix (`postconf -c bench/work/postfix/etc -n`, first "
                  "round):\n")
        md.extend("    " + ln for ln in Postfix.postconf_n.splitlines())
        md.append("")
    md.append("smtpgate.conf (last run):\n")
    try:
        with open(os.path.join(WORK, "smtpgate", "smtpgate.conf")) as f:
            md.extend("    " + ln.rstrip("\n") for ln in f)
    except OSError:
        pass
    md.append("")
    with open(os.path.join(BENCH, "RESULTS.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    log("\nwritten: bench/RESULTS.md")
    return 0 if not failures else 1


if __name__ == "__main__":
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        sys.exit(130)
