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


def fleet(tmp, tenants, latency):
    print(f"\n1. status --all --live over {tenants} tenants, {latency} ms per response")
    emu = Emulator(tmp, "--tenants", str(tenants), "--latency-ms", str(latency))
    cert = os.path.join(ROOT, "fixtures", "certs", "sfb.pem")
    state = os.path.join(tmp, "fleet-state")
    os.makedirs(state)
    # The ledger of a fleet recorded without network (what `tenant add` writes), made directly.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True).stdout
    import base64, hashlib
    tp = hashlib.sha1(der).hexdigest().upper()
    rec = lambda t: {"domain": t["domain"], "tenant_id": t["tenant_id"], "cloud": "emulator", "app_ids": [SFB],
                     "cert": {"thumbprint_sha1": tp, "subject": "CN=sfb.contoso.com", "not_before": "2026-01-01T00:00:00Z", "not_after": "2126-01-01T00:00:00Z", "der_base64": base64.b64encode(der).decode()},
                     "added_at": now}
    json.dump({"format": 1, "tenants": [rec(t) for t in emu.info["tenants"]]}, open(os.path.join(state, "ledger.json"), "w"))
    admin = emu.info["tenants"][0]["admin"]
    env = dict(os.environ, HYBRID_TRUST_CLOUD_FILE=emu.cloud_file, HYBRID_TRUST_STATE_DIR=state, HYBRID_TRUST_CLIENT_ID=admin["client_id"], HT_SECRET=admin["client_secret"])
    for conc in (64, 128, 256, tenants):
        emu.control("requests", "DELETE")
        wall, _, out = run([HT, "--output", "json", "--client-secret-env", "HT_SECRET", "status", "--all", "--live", "--concurrency", str(conc)], env)
        # Peak RSS of this run alone, measured with /usr/bin/time when present.
        rss = "?"
        if shutil.which("/usr/bin/time"):
            p = subprocess.run(["/usr/bin/time", "-f", "%M", HT, "--output", "json", "--client-secret-env", "HT_SECRET", "status", "--all", "--live", "--concurrency", str(conc)], env=env, capture_output=True, text=True)
            rss = f"{int(p.stderr.strip().splitlines()[-1]) / 1024:.0f} MB"
            emu.control("requests", "DELETE")
            wall, _, out = run([HT, "--output", "json", "--client-secret-env", "HT_SECRET", "status", "--all", "--live", "--concurrency", str(conc)], env)
        counts = emu.control("requests")
        reqs = counts["total"]
        per_tenant = reqs / tenants
        seq_floor = reqs * latency / 1000
        par_floor = per_tenant * latency / 1000
        ok = sum(1 for t in json.loads(out)["tenants"] if not t.get("live_error"))
        print(f"   concurrency {conc:>5}: {wall:6.2f} s wall, {reqs} requests ({per_tenant:.1f} per tenant: {counts['by_route']}), {ok}/{tenants} read, peak RSS {rss}")
        print(f"                      {seq_floor / wall:6.1f}x faster than the sequential floor ({seq_floor:.1f} s); {wall / par_floor:5.1f}x the fully parallel floor ({par_floor * 1000:.0f} ms)")
    emu.stop()


def onboard(tmp, latency):
    print(f"\n2. one onboard, {latency} ms per response")
    emu = Emulator(tmp, "--latency-ms", str(latency))
    d = os.path.join(tmp, "onboard")
    os.makedirs(d)
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "700", "-subj", "/CN=contoso.com"], check=True, capture_output=True)
    pem = os.path.join(d, "oauth.pem")
    open(pem, "w").write(open(key).read() + open(crt).read())
    t = emu.info["tenants"][0]
    env = dict(os.environ, HYBRID_TRUST_CLOUD_FILE=emu.cloud_file, HYBRID_TRUST_STATE_DIR=os.path.join(d, "state"), HYBRID_TRUST_CLIENT_ID=t["admin"]["client_id"], HT_SECRET=t["admin"]["client_secret"])
    emu.control("requests", "DELETE")
    wall, _, _ = run([HT, "--client-secret-env", "HT_SECRET", "onboard", "--tenant", t["domain"], "--cert", pem, "--sip-domain", "contoso.com", "--pool-fqdn", "webext.contoso.com", "--yes"], env)
    counts = emu.control("requests")
    floor = counts["total"] * latency / 1000
    print(f"   {counts['total']} HTTP requests: {json.dumps(counts['by_route'])}")
    print(f"   {wall:.2f} s wall against a floor of {floor:.2f} s (requests x latency): {wall / floor:.2f}x")
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
    a = ap.parse_args()
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as tmp:
        cold_start()
        onboard(tmp, a.latency_ms)
        fleet(tmp, a.tenants, a.latency_ms)


if __name__ == "__main__":
    main()
