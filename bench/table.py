"""Turns a bench/run.sh JSON-lines file into a Markdown table with Postern/Postfix ratios."""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = {}
for r in rows:
    cases.setdefault(r["case"], {})[r["mta"]] = r["result"]
def rate(res):
    return res.get("relay_rate") or res.get("accept_rate") or res.get("rate")
print("| case | Postfix msg/s | Postern msg/s | ratio | Postfix p50/p99 ms | Postern p50/p99 ms | Postfix CPU ms/msg | Postern CPU ms/msg |")
print("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |")
for case, by in cases.items():
    if case == "relay-tls-reuse 1KB":
        by.setdefault("postern", cases.get("relay-tls 1KB", {}).get("postern", {}))
    pf, pt = by.get("postfix", {}), by.get("postern", {})
    a, b = rate(pf), rate(pt)
    ratio = f"{b / a:.2f}" if a and b else "-"
    lat = lambda r: f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}" if "p50_ms" in r else "-"
    cpu = lambda r: f"{r['cpu_ms'] / r['messages']:.2f}" if r.get("cpu_ms") is not None and r.get("messages") else "-"
    print(f"| {case} | {a or '-'} | {b or '-'} | {ratio} | {lat(pf)} | {lat(pt)} | {cpu(pf)} | {cpu(pt)} |")
