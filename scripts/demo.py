"""`make demo`: start a directory and two peers on loopback and tell the whole story as a transcript.

Every step is checked; the demo exits 0 only when all of them worked, 1 with one line naming the
failed step otherwise, and 130 when interrupted. Whatever happens, every process it started is
stopped by its PID before it exits. Running it again resets the folders it owns under the demo
root (peer1/, peer2/, peer1.ini, peer2.ini, tls/) and uses a fresh database.

    python scripts/demo.py [--root demo] [--big-mib 64] [--tls]     (DEMO_BIG_MIB sets the default size)

--tls (`make demo-tls`): `p2p certs` makes a local CA and certificates first; the peers serve
gRPC over TLS, the clients and the directory's probe verify them against the CA, and a client
without the CA is shown being refused.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from peer_node.hashing import sha256_file

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
BIG_NAME = "big-video.bin"
READY_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class DemoFailed(Exception):
    """A step did not do what it should; the message is the one line the user sees."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so that the children are stopped."""


def say(text=""):
    """Print one transcript line now."""
    print(text, flush=True)


def shown(path):
    """A path as the user would type it: relative to the current folder when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def human(size):
    """A byte count for people: 1.5 KiB, 64.0 MiB."""
    for unit, scale in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


class Children:
    """The processes this demo started: started in their own session, stopped by their PID."""

    def __init__(self, logs):
        self.logs = Path(logs)
        self.procs = []  # (name, Popen, log path or None)

    def start_server(self, name, argv, ready, env):
        """Start a long-running child whose output goes to a log file; wait for a line matching ready."""
        log_path = self.logs / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log_path))
        match = self.wait_for(name, ready)
        return proc, match

    def wait_for(self, name, pattern, timeout=READY_TIMEOUT):
        """Wait until the named server's log has a line matching pattern; return the match."""
        proc, log_path = next((p, lp) for n, p, lp in self.procs if n == name)
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(log_path.read_text(errors="replace"))
            if found:
                return found
            if proc.poll() is not None:
                raise DemoFailed(f"{name} exited with code {proc.returncode} before printing "
                                 f"/{pattern}/; last lines:\n{self.tail(name)}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"{name} did not print /{pattern}/ within {timeout:.0f} s; "
                                 f"last lines:\n{self.tail(name)}")
            time.sleep(0.05)

    def tail(self, name, lines=15):
        """The last lines a server printed, indented."""
        log_path = next(lp for n, _, lp in self.procs if n == name)
        text = log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("    | " + line for line in text)

    def run(self, argv, env, capture=False):
        """Run a short command to completion with a timeout; its output goes to ours unless captured."""
        proc = subprocess.Popen(argv, cwd=Path.cwd(), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if capture else None,
                                stderr=subprocess.STDOUT if capture else None, start_new_session=True)
        self.procs.append(("command", proc, None))
        try:
            out, _ = proc.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DemoFailed(f"{' '.join(map(str, argv))} did not finish within {COMMAND_TIMEOUT:.0f} s")
        finally:
            if proc.poll() is not None:
                self.procs.remove(("command", proc, None))
        return proc.returncode, (out.decode(errors="replace") if capture else "")

    def stop(self, name):
        """SIGTERM one server by its PID, SIGKILL it if it lingers; return its exit code."""
        for entry in list(self.procs):
            if entry[0] == name:
                code = self._stop(entry[1])
                self.procs.remove(entry)
                return code
        return None

    @staticmethod
    def _stop(proc):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
            except ProcessLookupError:
                proc.wait(timeout=STOP_TIMEOUT)
        return proc.returncode

    def stop_all(self):
        """Stop every child still running, newest first; return the names of those that needed stopping."""
        stopped = []
        for name, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                self._stop(proc)
                stopped.append(f"{name} (pid {proc.pid})")
        self.procs.clear()
        return stopped


def get_json(url):
    """GET a JSON document from the directory; DemoFailed when it cannot."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DemoFailed(f"GET {url} failed: {exc}") from None


def holders_of(api, sha):
    """The peer ids the directory lists as live holders of sha (empty when it knows none)."""
    try:
        with urllib.request.urlopen(f"{api}/files/{sha}", timeout=5) as answer:
            return sorted(h["peer_id"] for h in json.load(answer).get("holders", []))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise DemoFailed(f"GET {api}/files/{sha} failed: {exc}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DemoFailed(f"GET {api}/files/{sha} failed: {exc}") from None


def wait_until(what, check, timeout=20.0):
    """Poll check() until it returns a true value; DemoFailed naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def write_file(path, data):
    """Write bytes to path; return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_random(path, size):
    """Write size random bytes to path in 1 MiB chunks, hashing on the way; return the sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(MiB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def prepare_folders(root, big_mib):
    """Reset root/peer1 and root/peer2 with a few real files; return {name: (size, sha256)} of peer1."""
    for owned in ("peer1", "peer2"):
        shutil.rmtree(root / owned, ignore_errors=True)
    p1, p2 = root / "peer1", root / "peer2"
    p1.mkdir(parents=True)
    p2.mkdir(parents=True)
    lines = "".join(f"{i},sensor-{i % 7},{(i * 37) % 1000 / 10:.1f}\n" for i in range(40000))
    files = {
        "hello.txt": b"Hello from peer1! This file travels over gRPC, never through the directory.\n",
        "notes/reading-list.md": "".join(f"- book {i}: a title worth reading\n" for i in range(500)).encode(),
        "measurements.csv": ("id,sensor,value\n" + lines).encode(),
    }
    shared = {name: (len(data), write_file(p1 / name, data)) for name, data in files.items()}
    shared[BIG_NAME] = (big_mib * MiB, write_random(p1 / BIG_NAME, big_mib * MiB))
    write_file(p2 / "recipes.txt", b"Pancakes: flour, milk, eggs. Mix, rest, fry.\n" * 200)
    write_random(p2 / "holiday-photos.bin", 2 * MiB)
    return shared


def write_config(path, peer_id, folder, directory_url, tls_dir=None):
    """A peerConfig.ini for one demo peer: free port, its own folder, quick rescans (and TLS from tls_dir)."""
    tls = "" if tls_dir is None else (
        "\n[tls]\n"
        f"cert = {tls_dir / (peer_id + '.pem')}\n"
        f"key = {tls_dir / (peer_id + '-key.pem')}\n"
        f"ca = {tls_dir / 'ca.pem'}\n")
    path.write_text(
        "# written by scripts/demo.py for this run; see peerConfig.ini at the top level for every key\n"
        "[peer]\n"
        f"peer_id = {peer_id}\n"
        f"secret = demo-secret-{peer_id}\n"
        "host = 127.0.0.1\n"
        "port = 0\n"
        f"folder = {folder}\n"
        "\n[directory]\n"
        f"url = {directory_url}\n"
        "\n[transfer]\n"
        "accept_uploads = true\n"
        "rescan_interval = 0.5\n" + tls
    )


def p2p_argv():
    """The argv prefix that runs the real `p2p` command of this environment."""
    script = Path(sys.executable).parent / "p2p"
    return [str(script)] if script.exists() else [sys.executable, "-m", "peer_node"]


def child_env(**extra):
    """Our environment without any P2P_* or DIRECTORY_* setting of the user's, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P2P_", "DIRECTORY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    # this checkout's packages, whatever folder the demo is started from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def step(number, total, title):
    """Print a step heading."""
    say()
    say(f"[{number}/{total}] {title}")


def p2p(children, env, *args, capture=False):
    """Show `$ p2p args` and run it; DemoFailed when it exits non-zero."""
    say("$ p2p " + " ".join(args))
    code, out = children.run(p2p_argv() + list(args), env, capture=capture)
    if code != 0:
        raise DemoFailed(f"`p2p {' '.join(args)}` exited with code {code}" + (f":\n{out}" if out else ""))
    return out


def story(args, children, work):
    """Run every step of the demo; raise DemoFailed at the first one that does not work."""
    started = time.monotonic()
    root = Path(args.root).resolve()
    total = 7
    say(f"P2P demo: one directory, two peers, and a {args.big_mib} MiB file moving between them"
        + (" over TLS" if args.tls else ""))

    step(1, total, f"Preparing the shared folders under {shown(root)}/")
    try:
        shared = prepare_folders(root, args.big_mib)
    except OSError as exc:
        raise DemoFailed(f"cannot prepare the folders under {shown(root)}: {exc}") from None
    for folder in ("peer1", "peer2"):
        listing = sorted(p for p in (root / folder).rglob("*") if p.is_file())
        say(f"  {folder}/: " + ", ".join(f"{p.relative_to(root / folder)} ({human(p.stat().st_size)})"
                                         for p in listing))
    big_size, big_sha = shared[BIG_NAME]
    tls_dir = None
    if args.tls:
        tls_dir = root / "tls"
        shutil.rmtree(tls_dir, ignore_errors=True)
        p2p(children, child_env(), "certs", shown(tls_dir), "--peers", "2")
        say("  a local CA (ca.pem) signed a certificate for the directory and for each peer")

    step(2, total, "Starting the directory (SQLite in a temporary folder, a free port)")
    database = f"sqlite:///{work}/directory.db"
    dir_argv = [sys.executable, "-m", "directory_api", "--host", "127.0.0.1", "--port", "0",
                "--database", database, "--replication", "1"]
    shown_argv = f"--database {database} --replication 1"
    if tls_dir is not None:  # the probe of a reported peer must speak TLS to the TLS peers
        dir_argv += ["--peer-ca", str(tls_dir / "ca.pem")]
        shown_argv += f" --peer-ca {shown(tls_dir / 'ca.pem')}"
    say(f"$ python -m directory_api --host 127.0.0.1 --port 0 {shown_argv}")
    proc, match = children.start_server("directory", dir_argv, r"directory listening on (http://\S+)",
                                        child_env())
    url = match.group(1).rstrip("/")
    api = f"{url}/api/v1"
    say(f"  directory listening on {url}  (pid {proc.pid})")
    if get_json(f"{api}/health").get("status") != "ok":
        raise DemoFailed(f"GET {api}/health did not answer status ok")

    step(3, total, "Starting two peers, each sharing its own folder")
    peers = {}
    for peer_id in ("peer1", "peer2"):
        config = root / f"{peer_id}.ini"
        write_config(config, peer_id, root / peer_id, url, tls_dir)
        say(f"$ p2p serve --config {shown(config)}")
        proc, match = children.start_server(
            peer_id, p2p_argv() + ["serve", "--config", str(config)],
            rf"peer {re.escape(peer_id)} serving on (\S+:\d+)", child_env())
        peers[peer_id] = match.group(1)
        say(f"  peer {peer_id} serving on {peers[peer_id]}  (pid {proc.pid})")
    for peer_id in peers:
        children.wait_for(peer_id, r"logged in to")
        say(f"  {peer_id} logged in to {url} and published its files")

    env = child_env(P2P_DIRECTORY=url)
    step(4, total, "Who is online?")
    say(f"$ export P2P_DIRECTORY={url}")
    if tls_dir is not None:
        env = child_env(P2P_DIRECTORY=url, P2P_TLS_CA=str(tls_dir / "ca.pem"))
        say(f"$ export P2P_TLS_CA={shown(tls_dir / 'ca.pem')}    # clients verify the peers against the CA")
    wait_until("both peers listed by GET /peers", lambda: {"peer1", "peer2"} <= {
        p["peer_id"] for p in get_json(f"{api}/peers")})
    p2p(children, env, "peers")

    step(5, total, "Search the network by name")
    wait_until(f"{BIG_NAME} indexed by the directory", lambda: holders_of(api, big_sha) == ["peer1"])
    p2p(children, env, "search", "big-video")

    step(6, total, f"Download {BIG_NAME} from peer1 straight into peer2's folder")
    target = root / "peer2" / BIG_NAME
    began = time.monotonic()
    # as peer2 (its config's peer_id and secret): a client session asks the directory for the ticket
    p2p(children, env, "get", big_sha, "--out", shown(target), "--config", shown(root / "peer2.ini"))
    seconds = time.monotonic() - began
    if not target.is_file():
        raise DemoFailed(f"`p2p get` exited 0 but {shown(target)} does not exist")
    got = sha256_file(target).hexdigest()
    say(f"  sha256 of the original   ({shown(root / 'peer1' / BIG_NAME)}): {big_sha}")
    say(f"  sha256 of the download   ({shown(target)}): {got}")
    if got != big_sha or target.stat().st_size != big_size:
        raise DemoFailed(f"the downloaded {BIG_NAME} differs from the original")
    say(f"  sha256 matches: {human(big_size)} arrived intact in {seconds:.1f} s "
        f"({big_size / MiB / max(seconds, 1e-6):.0f} MiB/s including start-up)")

    step(7, total, "peer2 noticed the new file and shares it too: two holders now")
    wait_until(f"peer2 listed as a holder of {BIG_NAME}",
               lambda: holders_of(api, big_sha) == ["peer1", "peer2"])
    p2p(children, env, "search", "big-video")
    say(f"  the directory lists 2 holders of {big_sha[:16]}...: peer1, peer2")
    say("  and peer2 itself, asked directly over gRPC, now serves it:")
    p2p(children, env, "ls", peers["peer2"])
    if tls_dir is not None:
        say("  a client without the CA dials plaintext and is refused, in one line:")
        say(f"$ env -u P2P_TLS_CA p2p ls {peers['peer2']}")
        code, out = children.run(p2p_argv() + ["ls", peers["peer2"]], child_env(P2P_DIRECTORY=url), capture=True)
        if code == 0 or "serves TLS" not in out:
            raise DemoFailed(f"a plaintext `p2p ls` of a TLS peer exited {code}:\n{out}")
        say("  " + out.strip())
    expected = {"recipes.txt", "holiday-photos.bin", BIG_NAME}
    browse = get_json(f"{api}/peers/peer2/files")
    names = {f["name"] for f in (browse if isinstance(browse, list) else browse.get("files", []))}
    if names != expected:
        raise DemoFailed(f"peer2 shares {sorted(names)}, expected {sorted(expected)}")

    say()
    say("Shutting down everything the demo started")
    for peer_id in ("peer2", "peer1"):
        code = children.stop(peer_id)
        if code != 0:
            raise DemoFailed(f"{peer_id} exited with code {code} on SIGTERM")
        say(f"  {peer_id} logged out and stopped (exit 0)")
    wait_until("the peers vanishing from GET /peers", lambda: not get_json(f"{api}/peers"), timeout=10)
    p2p(children, env, "peers")
    code = children.stop("directory")
    if code != 0:
        raise DemoFailed(f"the directory exited with code {code} on SIGTERM")
    say("  directory stopped (exit 0)")
    say()
    say(f"Demo finished in {time.monotonic() - started:.1f} s: every step worked.")


_INTERRUPTED: list[int] = []


def _raise_interrupted(signum, _frame):
    # Once only: a second Ctrl-C (or the SIGTERM a wrapper passes on) must not land in the
    # cleanup and end the demo with a traceback. (Setting SIG_IGN here instead makes CPython
    # report a signal already on its way as "ignored due to race condition".)
    if _INTERRUPTED:
        return
    _INTERRUPTED.append(signum)
    raise Interrupted(signal.Signals(signum).name)


def main(argv=None):
    """Parse the flags, run the story, and stop every child whatever happened; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT / "demo"),
                        help="folder for the peers' folders and configs (default: demo/)")
    parser.add_argument("--big-mib", type=int, default=int(os.environ.get("DEMO_BIG_MIB", "64")),
                        help="size of the generated big file in MiB (default: $DEMO_BIG_MIB or 64)")
    parser.add_argument("--tls", action="store_true",
                        help="run the network over TLS with certificates from `p2p certs` (make demo-tls)")
    args = parser.parse_args(argv)
    if args.big_mib < 1:
        parser.error("--big-mib must be at least 1")
    # SIGINT too: a demo started from a background job inherits SIGINT ignored, and Ctrl-C must still stop it
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    work = Path(tempfile.mkdtemp(prefix="p2p-demo-"))
    children = Children(work)
    code = 1
    try:
        story(args, children, work)
        code = 0
    except DemoFailed as exc:
        say()
        say(f"DEMO FAILED: {exc}")
        say(f"  (server logs kept in {work})")
    except (KeyboardInterrupt, Interrupted) as exc:
        say()
        say(f"Interrupted ({str(exc) or 'Ctrl-C'}): stopping everything the demo started")
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        leftover = children.stop_all()
        if leftover:
            say("  stopped: " + ", ".join(leftover))
        if code == 0 or code == 130:
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
