"""Turns a bench/run.sh or bench/relay.sh JSON-lines file into a Markdown table with Postern/Postfix ratios."""
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]


def run_table(rows):
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


def relay_table(rows):
    """bench/relay.sh: one line per run; every figure is the median over a row's runs."""
    # Per-run figures, derived from one smtpbench result.
    figures = {
        "rate": lambda r: r["relay_rate"],
        "cpu": lambda r: r["cpu_ms"] / r["relayed"] if r["relayed"] else None,
        "conns": lambda r: r["sink_sessions"] / r["relayed"] if r["relayed"] else None,
        "tls": lambda r: r["sink_tls_sessions"] / r["relayed"] if r["relayed"] else None,
        "session_p99": lambda r: r["session_p99_ms"],
        "accept_p99": lambda r: r["p99_ms"],
    }
    order, by = [], {}
    for r in rows:
        key = r["row"]
        if key not in by:
            order.append(key)
            by[key] = {"meta": r, "postfix": [], "postern": []}
        by[key][r["mta"]].append(r["result"])

    def med(results, name):
        values = [v for v in (figures[name](r) for r in results) if v is not None]
        return statistics.median(values) if values else None

    def pair(a, b, fmt):
        f = lambda v: "-" if v is None else format(v, fmt)
        return f"{f(a)} / {f(b)}"

    print("| outbound | size | msgs/session | Postfix msg/s | Postern msg/s | ratio | CPU ms/msg Postfix / Postern "
          "| conns/msg Postfix / Postern | TLS handshakes/msg Postfix / Postern | session p99 ms Postfix / Postern "
          "| accept p99 ms Postfix / Postern |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    incomplete, unverified = [], []
    for key in order:
        m, pf, pt = by[key]["meta"], by[key]["postfix"], by[key]["postern"]
        for mta, results in (("Postfix", pf), ("Postern", pt)):
            for r in results:
                if r["relayed"] != r["messages"] or r["failures"]:
                    incomplete.append(f"{key} {mta}: {r['messages']} accepted, {r['relayed']} relayed, {r['failures']} failures")
                if m["outbound"] == "tls" and r.get("mta_verified_tls") != r["sink_tls_sessions"]:
                    unverified.append(f"{key} {mta}: {r['sink_tls_sessions']} TLS sessions at the sink, {r.get('mta_verified_tls')} logged as verified")
        a, b = med(pf, "rate"), med(pt, "rate")
        ratio = f"{b / a:.2f}" if a and b else "-"
        outbound = "verified TLS" if m["outbound"] == "tls" else "plain"
        size = m["size"].replace("KB", " KB")
        print(f"| {outbound} | {size} | {m['per_session']} | {a if a is not None else '-'} | {b if b is not None else '-'} | {ratio} "
              f"| {pair(med(pf, 'cpu'), med(pt, 'cpu'), '.2f')} | {pair(med(pf, 'conns'), med(pt, 'conns'), '.3f')} "
              f"| {pair(med(pf, 'tls'), med(pt, 'tls'), '.3f')} | {pair(med(pf, 'session_p99'), med(pt, 'session_p99'), '.1f')} "
              f"| {pair(med(pf, 'accept_p99'), med(pt, 'accept_p99'), '.1f')} |")
    runs = max(len(v["postfix"]) + len(v["postern"]) for v in by.values()) // 2
    print(f"\nMedians of {runs} run(s) per row and MTA.")
    if any(by[k]["meta"]["outbound"] == "tls" for k in order):
        print("Verified TLS: " + ("every sink TLS session was logged as verified by the MTA (Postfix: \"Verified TLS connection "
              "established\", Postern: \"TLS certificate verified\")." if not unverified else "MISMATCH"))
    for line in unverified:
        print(f"- UNVERIFIED: {line}")
    for line in incomplete:
        print(f"- INCOMPLETE: {line}")


if rows and rows[0].get("bench") == "relay":
    relay_table(rows)
else:
    run_table(rows)
