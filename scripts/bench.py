"""The benchmark driver behind scripts/bench.sh (stdlib only). Prints figures; asserts nothing."""
import argparse, json, os, platform, resource, shutil, subprocess, sys, tempfile, time, urllib.request, ssl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
HT, EMU = os.path.join(BIN, "hybrid-trust"), os.path.join(BIN, "m365-emulator")
SFB = "00000004-0000-0ff1-ce00-000000000000"


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {rustc}"


class Emulator:
    def __init__(self, tmp, *args):
        self.ready = os.path.join(tmp, f"ready-{len(os.listdir(tmp))}.json")
        self.proc = subprocess.Popen([EMU, "--tls", "--quiet", "--ready-file", self.ready, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not os.path.exists(self.ready):
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit("the emulator did not start")
            time.sleep(0.05)
        self.info = json.load(open(self.ready))
        self.ctx = ssl.create_default_context(cafile=self.info["cloud"]["ca_file"])
        self.cloud_file = os.path.join(tmp, "cloud.json")
        json.dump(self.info["cloud"], open(self.cloud_file, "w"))

    def control(self, path, method="GET"):
        req = urllib.request.Request(self.info["control_url"] + "/" + path, method=method)
        with urllib.request.urlopen(req, context=self.ctx) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run(args, env, quiet=True):
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {p.stderr}")
    return wall, max(rss, before), p.stdout


def fleet(tmp, tenants, latency, default_conc):
    print(f"\n1. status --all --live over {tenants} tenants, {latency} ms per response")
    # Two emulators: one signing a fresh token per request as Entra does (its RSA signatures
    # then share this machine's cores with the client being measured), and one with
    # --reuse-tokens, whose figures are the client's own (Entra's signing runs on Microsoft's
    # machines, not the admin's).
    # A third run at 0 ms shows this machine's own processing floor: what the 2,000 requests
    # cost the client and the emulator together with no waiting at all.
    for n, (label, lat, extra, concs) in enumerate((
            ("emulator signs every token", latency, (), sorted({100, 256, 500, default_conc, tenants})),
            ("emulator reuses tokens (--reuse-tokens)", latency, ("--reuse-tokens",), sorted({100, 256, 500, default_conc, tenants})),
            ("emulator reuses tokens, 0 ms per response: the processing floor of this machine", 0, ("--reuse-tokens",), [default_conc]))):
        print(f"   {label}:")
        emu = Emulator(tmp, "--tenants", str(tenants), "--latency-ms", str(lat), *extra)
        state = os.path.join(tmp, f"fleet-state-{n}")
        write_fleet_ledger(emu, state)
        admin = emu.info["tenants"][0]["admin"]
        env = dict(os.environ, HYBRID_TRUST_CLOUD_FILE=emu.cloud_file, HYBRID_TRUST_STATE_DIR=state, HYBRID_TRUST_CLIENT_ID=admin["client_id"], HT_SECRET=admin["client_secret"])
        for conc in concs:
            cmd = [HT, "--output", "json", "--client-secret-env", "HT_SECRET", "status", "--all", "--live", "--concurrency", str(conc)]
            # Peak RSS from a first run under /usr/bin/time (it also warms --reuse-tokens).
            rss = "?"
            if shutil.which("/usr/bin/time"):
                p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, capture_output=True, text=True)
                rss = f"{int(p.stderr.strip().splitlines()[-1]) / 1024:.0f} MB"
            walls = []
            for _ in range(3):
                emu.control("requests", "DELETE")
                wall, _, out = run(cmd, env)
                walls.append(wall)
            wall = sorted(walls)[1]
            counts = emu.control("requests")
            reqs = counts["total"]
            per_tenant = reqs / tenants
            seq_floor = reqs * latency / 1000
            par_floor = per_tenant * latency / 1000
            waves = -(-tenants // conc)
            ok = sum(1 for t in json.loads(out)["tenants"] if not t.get("live_error"))
            mark = " (default)" if conc == default_conc else ""
            print(f"     concurrency {conc:>5}{mark}: {wall:5.2f} s wall (median of 3), {reqs} requests ({per_tenant:.1f}/tenant), {ok}/{tenants} read, peak RSS {rss}")
            if lat == 0:
                print(f"         with no waiting at all this run already takes {wall / par_floor:.1f}x the {par_floor * 1000:.0f} ms fully parallel floor of the {latency} ms runs")
                continue
            print(f"         {seq_floor / wall:6.1f}x faster than the sequential floor ({seq_floor:.0f} s); {wall / par_floor:4.1f}x the fully parallel floor ({par_floor * 1000:.0f} ms); {wall / (waves * par_floor):4.1f}x the floor at this concurrency ({waves} wave(s), {waves * par_floor * 1000:.0f} ms)")
        emu.stop()


def write_fleet_ledger(emu, state):
    """The ledger of a fleet recorded without network (what `tenant add` writes), made directly."""
    import base64, hashlib
    cert = os.path.join(ROOT, "fixtures", "certs", "sfb.pem")
    os.makedirs(state)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True).stdout
    tp = hashlib.sha1(der).hexdigest().upper()
    rec = lambda t: {"domain": t["domain"], "tenant_id": t["tenant_id"], "cloud": "emulator", "app_ids": [SFB],
                     "cert": {"thumbprint_sha1": tp, "subject": "CN=sfb.contoso.com", "not_before": "2026-01-01T00:00:00Z", "not_after": "2126-01-01T00:00:00Z", "der_base64": base64.b64encode(der).decode()},
                     "added_at": now}
    json.dump({"format": 1, "tenants": [rec(t) for t in emu.info["tenants"]]}, open(os.path.join(state, "ledger.json"), "w"))


def onboard(tmp, latency, runs=5):
    print(f"\n2. onboard, {latency} ms per response: {runs} tenants onboarded from scratch, one after another")
    emu = Emulator(tmp, "--latency-ms", str(latency), "--tenants", str(runs))
    d = os.path.join(tmp, "onboard")
    os.makedirs(d)
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "700", "-subj", "/CN=contoso.com"], check=True, capture_output=True)
    pem = os.path.join(d, "oauth.pem")
    open(pem, "w").write(open(key).read() + open(crt).read())
    ratios = []
    for i, t in enumerate(emu.info["tenants"]):
        env = dict(os.environ, HYBRID_TRUST_CLOUD_FILE=emu.cloud_file, HYBRID_TRUST_STATE_DIR=os.path.join(d, f"state-{i}"), HYBRID_TRUST_CLIENT_ID=t["admin"]["client_id"], HT_SECRET=t["admin"]["client_secret"])
        emu.control("requests", "DELETE")
        wall, _, _ = run([HT, "--client-secret-env", "HT_SECRET", "onboard", "--tenant", t["domain"], "--cert", pem, "--sip-domain", "contoso.com", "--pool-fqdn", "webext.contoso.com", "--yes"], env)
        counts = emu.control("requests")
        floor = counts["total"] * latency / 1000
        ratios.append(wall / floor)
        if i == 0:
            print(f"   {counts['total']} HTTP requests: {json.dumps(counts['by_route'])}")
        print(f"   run {i + 1}: {wall:.2f} s wall against a floor of {floor:.2f} s (requests x latency): {wall / floor:.2f}x")
    ratios.sort()
    print(f"   median {ratios[len(ratios) // 2]:.2f}x, worst {ratios[-1]:.2f}x (the two verify requests, token and signing keys, go together)")
    emu.stop()


def cold_start(runs=40):
    print(f"\n3. cold start, median of {runs} runs")
    cert = os.path.join(ROOT, "fixtures", "certs", "sfb.pem")
    def median(cmd):
        xs = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            xs.append(time.perf_counter() - t)
        return sorted(xs)[runs // 2]
    a = median([HT, "cert", "inspect", cert])
    b = median(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-dates"])
    print(f"   hybrid-trust cert inspect: {a * 1000:.1f} ms; openssl x509: {b * 1000:.1f} ms; ratio {a / b:.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=1000, help="the default of status --concurrency, marked in the table")
    a = ap.parse_args()
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as tmp:
        cold_start()
        onboard(tmp, a.latency_ms)
        fleet(tmp, a.tenants, a.latency_ms, a.concurrency)


if __name__ == "__main__":
    main()
