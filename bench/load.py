"""HTTP benchmark: gunicorn with production settings on loopback, measured with wrk.

Usage: bin/bench   (or .venv/bin/python bench/load.py [--seconds 8] [--connections 16])

Starts gunicorn (2 workers, DEBUG off, https as seen through a trusted proxy header) on a
throw-away SQLite database with a team key, then measures requests per second and
p50/p99 latency for a whitenoise static file (this machine's ceiling), security.txt, the
report form, a form submission (sealed to the team key by the server, as without
JavaScript; encrypted in the browser, as the form's JavaScript does by default, which the
server checks with gpg; and with no team key work at all), the status page and the admin
queue, and the floor (bench/floor.py: the same middleware, one indexed query, a small
template). Every figure is also given as a ratio to the static file,
measured again right before and after each endpoint (the ratio uses the mean of the two),
because absolute numbers on a shared machine are not stable and drift within a run.
Results are printed and written to bench/results/load.md, or load-<database>-<cache>.md with
--database-url/--redis-url (not with --only).
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
HOST = "security.example.test"
PORT = 8799
# What each endpoint must reach (issue 13): a share of the static file or of the floor (a
# minimal view with the same middleware, one indexed query and a small template, measured in
# the same run), and a p99 latency. Hush Line, the peer, measured here with the same wrk
# settings: submission page 212 req/s (p99 142 ms), submission POST 0.043 of its static file
# (p99 234 ms), reader's status page 342 req/s (p99 74 ms).
TARGETS = {
    "security.txt": ("static", 0.9, None),
    "report form": ("floor", 0.5, 50),
    "status page": ("floor", 0.5, 50),
    "submission": ("static", 0.045, 250),
}


def run(*args, env, capture=True):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=capture, text=True, check=False)
    if result.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


def prepare(env) -> dict:
    """Migrate, collect static files, make a team key, a report, and a verified staff session."""
    run(PY, "manage.py", "migrate", "--no-input", env=env)
    run(PY, "manage.py", "collectstatic", "--no-input", env=env)
    env["TEAM_KEY_FINGERPRINT"] = run(PY, "manage.py", "pgp_generate_team_key", "--quiet", env=env)
    script = """
import json
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django_otp.plugins.otp_totp.models import TOTPDevice
from disclosure.models import Report, StatusLink
report, token = Report.submit(fields={"title": "Benchmark report", "description": "Some **markdown** text."})
user = User.objects.create_superuser("bench", "bench@example.com", "bench-password-123")
device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
session = SessionStore()
session.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": user.get_session_auth_hash(), "otp_device_id": device.persistent_id})
session.create()
print(json.dumps({"token": token, "session": session.session_key}))
"""
    import json

    return json.loads(run(PY, "manage.py", "shell", "-c", script, env=env).splitlines()[-1])


class Gunicorn:
    def __init__(self, env, data_dir, workers=2):
        self.env, self.pidfile, self.workers = env, Path(data_dir) / "gunicorn.pid", workers

    def __enter__(self):
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{PORT}",
             "--workers", str(self.workers), "--pid", str(self.pidfile), "--log-level", "warning"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = urllib.request.Request(f"http://127.0.0.1:{PORT}/healthz",
                                       headers={"Host": HOST, "X-Forwarded-Proto": "https"})
        for _ in range(100):
            try:
                urllib.request.urlopen(probe, timeout=1)  # noqa: S310 - loopback
            except urllib.error.HTTPError:
                return self  # 503 before the first sweep: the server is up
            except OSError:
                time.sleep(0.2)
                continue
            return self
        self.__exit__()
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc):
        pid = int(self.pidfile.read_text()) if self.pidfile.exists() else self.process.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


def wrk(path, seconds, connections, headers=(), script=None) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Host: {HOST}",
            "-H", "X-Forwarded-Proto: https"]
    for header in headers:
        args += ["-H", header]
    if script:
        args += ["-s", script]
    output = subprocess.run([*args, f"http://127.0.0.1:{PORT}{path}"], capture_output=True, text=True,
                            check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def percentile(name):
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rps, "p50": percentile("50"), "p99": percentile("99"),
            "errors": int(non_2xx.group(1)) if non_2xx else 0}


def encrypted_description(env) -> str:
    """The description as the form's JavaScript sends it: encrypted to the team key."""
    result = subprocess.run(["gpg", "--homedir", f"{env['DATA_DIR']}/gnupg", "--batch", "--trust-model", "always",
                             "--encrypt", "--armor", "--recipient", env["TEAM_KEY_FINGERPRINT"]],
                            input=b"A reflected XSS in the search box. Steps follow.", capture_output=True, check=True)
    return result.stdout.decode()


def submission_script(directory, csrf, description="A reflected XSS in the search box. Steps follow.",
                      name="submit") -> str:
    path = Path(directory) / f"{name}.lua"
    body = (f"title=Benchmark+finding&description={quote_plus(description)}"
            "&asset=https%3A%2F%2Fapp.example.com&reporter_email=bench%40researcher.example"
            f"&csrfmiddlewaretoken={csrf}")
    path.write_text(f"""
wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "csrftoken={csrf}"
wrk.headers["Origin"] = "https://{HOST}"
wrk.headers["Referer"] = "https://{HOST}/report/"
""")
    return str(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database-url", default="", help="e.g. postgres://postgres@127.0.0.1:5432/bench "
                        "(default: SQLite in a temporary folder)")
    parser.add_argument("--redis-url", default="", help="e.g. redis://127.0.0.1:6379/14 (default: database cache)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the Procfile's default is 2)")
    parser.add_argument("--only", default="", help="comma-separated endpoints, e.g. 'status page,submission'")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    data_dir = tempfile.mkdtemp(prefix="disclosure-bench-http-")
    env = {**os.environ, "DATA_DIR": data_dir, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50),
           "SITE_URL": f"https://{HOST}", "BEHIND_PROXY": "true", "MAILER": "smtp", "SMTP_HOST": "127.0.0.1",
           "LOG_LEVEL": "WARNING", "RATELIMIT_SUBMIT": "100000000/s", "RATELIMIT_STATUS": "100000000/s",
           "RATELIMIT_FORM_POST": "100000000/s",
           "MIN_FORM_SECONDS": "0", "DJANGO_SETTINGS_MODULE": "bench.settings"}
    for name in ("DATABASE_URL", "REDIS_URL", "TEAM_KEY_FINGERPRINT"):
        env.pop(name, None)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    try:
        seeded = prepare(env)
        csrf = secrets.token_hex(16)  # CSRF tokens are 32 alphanumeric characters
        script = submission_script(data_dir, csrf)
        static = "/static/" + next(p.relative_to(Path(data_dir) / "staticfiles").as_posix() for p in
                                   (Path(data_dir) / "staticfiles" / "css").glob("site.*.css"))
        rows, statics = {}, []

        def measure(name, path, headers=(), lua=None):
            # The ceiling is measured again next to every endpoint and each ratio uses the
            # mean of the static runs on either side, so drift on a shared machine cancels.
            if not statics:
                statics.append(wrk(static, args.seconds, args.connections))
            rows[name] = wrk(path, args.seconds, args.connections, headers, lua)
            statics.append(wrk(static, args.seconds, args.connections))
            rows[name]["ceiling"] = (statics[-2]["rps"] + statics[-1]["rps"]) / 2

        wanted = set(args.only.split(",")) if args.only else None
        plan = [
            ("floor", "/bench-floor/", (), None),
            ("security.txt", "/.well-known/security.txt", (), None),
            ("report form", "/report/", (), None),
            ("status page", f"/status/{seeded['token']}/", (), None),
            ("admin queue", "/admin/disclosure/report/", (f"Cookie: sessionid={seeded['session']}",), None),
            ("submission", "/report/", (), script),
            ("submission (encrypted in the browser)", "/report/", (),
             submission_script(data_dir, csrf, encrypted_description(env), "submit-encrypted")),
        ]
        with Gunicorn(env, data_dir, args.workers):
            for name, path, headers, lua in plan:
                if wanted is None or name in wanted:
                    measure(name, path, headers, lua)
        if wanted is None or "submission" in wanted:
            with Gunicorn({**env, "STORE_ENCRYPTED": "false"}, data_dir, args.workers):
                statics.clear()
                measure("submission (no PGP)", "/report/", (), script)
        rows = {"static file": {**statics[0], "ceiling": statics[0]["rps"]}, **rows}
        reports = run(PY, "manage.py", "shell", "-c",
                      "from disclosure.models import Report; print(Report.objects.count())", env=env).splitlines()[-1]
    finally:
        subprocess.run(["gpgconf", "--homedir", f"{data_dir}/gnupg", "--kill", "gpg-agent"], capture_output=True,
                       check=False)
        shutil.rmtree(data_dir, ignore_errors=True)
    stores = f"{'PostgreSQL' if args.database_url else 'SQLite'} + {'Redis' if args.redis_url else 'database cache'}"
    lines = [
        f"HTTP benchmark: gunicorn, {args.workers} sync workers, production settings, {stores}; "
        f"wrk -t2 -c{args.connections} "
        f"-d{args.seconds}s on loopback; {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs "
        f"({reports} reports created by the submission runs).",
        "",
        "| endpoint | req/s | static next to it | ratio to static | ratio to floor | target | p50 ms | p99 ms "
        "| non-2xx/3xx |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    floor = rows.get("floor", {}).get("rps")
    for name, row in rows.items():
        target = TARGETS.get(name.split(" (")[0] if name.startswith("submission") else name)
        target_text = ""
        if target:
            base, share, p99 = target
            target_text = f">= {share} of {base}" + (f", p99 < {p99} ms" if p99 else "")
        to_floor = f"{row['rps'] / floor:.2f}" if floor else ""
        lines.append(f"| {name} | {row['rps']:,.0f} | {row['ceiling']:,.0f} | {row['rps'] / row['ceiling']:.3f} | "
                     f"{to_floor} | {target_text} | {row['p50']:.1f} | {row['p99']:.1f} | {row['errors']} |")
    table = "\n".join(lines)
    print(table)
    if not args.only:
        out = ROOT / "bench" / "results" / ("load.md" if not (args.database_url or args.redis_url) else
                                            f"load-{stores.lower().replace(' + ', '-').replace(' ', '-')}.md")
        out.write_text(table + "\n")
        print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
