"""Summarises a bench/profile.sh folder as Markdown: the runs, the System.Runtime counters over the
traced run, dotnet-trace's top-N lists, the managed on-CPU view of the same samples, and the perf
(on-CPU) view: top-N self and inclusive, by binary, by thread, and by area of Postern's hot path.
   python3 bench/profile_summary.py <folder> <row> [top]"""
import collections, csv, datetime, gzip, json, os, re, sys

d, row = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 25


def load(name):
    p = os.path.join(d, name)
    return json.load(open(p)) if os.path.exists(p) else None


def text(name):
    p = os.path.join(d, name)
    return open(p).read().rstrip() if os.path.exists(p) else "(missing)"


print(f"## Profile {row}\n")
runs = {n: load(f"{n}.json") for n in ("warmup1", "warmup2", "clean", "traced", "perf", "perfdwarf", "strace")}
traced = runs["traced"] or {}
messages = traced.get("relayed") or traced.get("messages") or 1
print("| run | messages | size | per session | relay msg/s | CPU ms/msg | sink conns/msg | TLS handshakes/msg | accept p99 ms | session p99 ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, r in runs.items():
    if not r:
        continue
    n = r["relayed"] or 1
    print(f"| {name} | {r['relayed']} | {r['size']} | {r['per_session']} | {r['relay_rate']} | {r['cpu_ms'] / n:.2f} "
          f"| {r['sink_sessions'] / n:.3f} | {r['sink_tls_sessions'] / n:.3f} | {r['p99_ms']:.1f} | {r['session_p99_ms']:.1f} |")
print("\nwarmup1/2: the same row, not profiled; clean: no tool attached; traced: dotnet-trace (thread-time sampling) and "
      "dotnet-counters attached; perf: perf record attached; strace: strace -f attached (slow). CPU = the Postern process's "
      "user+system time during the run (clock ticks of 10 ms). The profiled instance runs with DOTNET_PerfMapEnabled=3 and "
      "DOTNET_EnableWriteXorExecute=0 (for perf's symbols).\n")

# ---- System.Runtime counters over the traced run ----
cpath = os.path.join(d, "counters.csv")
if os.path.exists(cpath) and os.path.exists(os.path.join(d, "traced.start")):
    start = float(open(os.path.join(d, "traced.start")).read())
    end = float(open(os.path.join(d, "traced.end")).read())
    sums, maxes, firsts = collections.Counter(), {}, {}
    for rec in csv.DictReader(open(cpath)):
        try:
            # dotnet-counters writes local time with second resolution; a rate at T covers (T-1, T].
            t = datetime.datetime.strptime(rec["Timestamp"], "%m/%d/%Y %H:%M:%S").timestamp()
        except ValueError:
            continue
        if not (start < t <= end + 2):
            continue
        name, kind, v = rec["Counter Name"], rec["Counter Type"], float(rec["Mean/Increment"])
        if kind == "Rate":
            sums[name] += v
        maxes[name] = max(maxes.get(name, v), v)
        firsts.setdefault(name, v)

    def s(prefix):
        return sum(v for k, v in sums.items() if k.startswith(prefix))

    def m(prefix):
        return max((v for k, v in maxes.items() if k.startswith(prefix)), default=0)

    g0 = s("dotnet.gc.collections ({collection} / 1 sec)[gc.heap.generation=gen0]")
    g1 = s("dotnet.gc.collections ({collection} / 1 sec)[gc.heap.generation=gen1]")
    g2 = s("dotnet.gc.collections ({collection} / 1 sec)[gc.heap.generation=gen2]")
    alloc = s("dotnet.gc.heap.total_allocated")
    pause = s("dotnet.gc.pause.time")
    cpu_user = s("dotnet.process.cpu.time (s / 1 sec)[cpu.mode=user]")
    cpu_sys = s("dotnet.process.cpu.time (s / 1 sec)[cpu.mode=system]")
    k = 1000 / messages
    print(f"### Runtime counters (dotnet-counters, System.Runtime, 1 s intervals over the traced run of {messages} messages)\n")
    print("| figure | total | per 1000 messages | per message |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| GC gen0 collections | {g0:.0f} | {g0 * k:.1f} | |")
    print(f"| GC gen1 collections | {g1:.0f} | {g1 * k:.1f} | |")
    print(f"| GC gen2 collections (full; LOH allocations trigger these) | {g2:.0f} | {g2 * k:.1f} | |")
    print(f"| GC pause time | {pause * 1000:.0f} ms | {pause * 1000 * k:.0f} ms | {pause * 1000 / messages:.3f} ms |")
    print(f"| bytes allocated | {alloc / 1e6:.1f} MB | {alloc * k / 1e6:.1f} MB | {alloc / messages / 1024:.1f} KB |")
    print(f"| process CPU (user + system) | {cpu_user:.2f} + {cpu_sys:.2f} s | | {(cpu_user + cpu_sys) * 1000 / messages:.2f} ms |")
    print(f"| thread-pool work items | {s('dotnet.thread_pool.work_item.count'):.0f} | | {s('dotnet.thread_pool.work_item.count') / messages:.1f} |")
    print(f"| lock contentions | {s('dotnet.monitor.lock_contentions'):.0f} | | {s('dotnet.monitor.lock_contentions') / messages:.2f} |")
    exc = {k2.split('error.type=')[1].rstrip(']'): v for k2, v in sums.items() if k2.startswith("dotnet.exceptions") and v}
    print(f"| exceptions thrown | {sum(exc.values()):.0f} {exc if exc else ''} | | |")
    print(f"| JIT-compiled methods during the run | {s('dotnet.jit.compiled_methods'):.0f} | | |")
    print(f"\nLargest values seen: LOH size after a GC {m('dotnet.gc.last_collection.heap.size (By)[gc.heap.generation=loh]') / 1e6:.1f} MB, "
          f"gen0 {m('dotnet.gc.last_collection.heap.size (By)[gc.heap.generation=gen0]') / 1e6:.1f} MB, "
          f"gen2 {m('dotnet.gc.last_collection.heap.size (By)[gc.heap.generation=gen2]') / 1e6:.1f} MB, "
          f"committed {m('dotnet.gc.last_collection.memory.committed_size') / 1e6:.1f} MB, "
          f"working set {m('dotnet.process.memory.working_set') / 1e6:.1f} MB; "
          f"thread-pool threads changed by {s('dotnet.thread_pool.thread.count'):+.0f} during the run.\n")

# ---- dotnet-trace ----
print("### dotnet-trace report topN (thread time: waiting threads count too)\n")
print("Exclusive:\n```\n" + text("topN-exclusive.txt") + "\n```\n")
print("Inclusive:\n```\n" + text("topN-inclusive.txt") + "\n```\n")

# The same samples, managed code only and only while it ran: the speedscope export keeps the
# thread-time computer's pseudo-frames, CPU_TIME (the thread was in managed code) and
# UNMANAGED_CODE_TIME (native code or a wait: not separable). Counting only CPU_TIME gives the
# managed on-CPU profile.
sp = os.path.join(d, "trace.speedscope.json")
if os.path.exists(sp):
    doc = json.load(open(sp))
    frames = [f["name"] for f in doc["shared"]["frames"]]
    self_t, incl_t, total_cpu, total_all = collections.Counter(), collections.Counter(), 0.0, 0.0
    for prof in doc["profiles"]:
        if prof.get("type") == "evented":
            stack, last = [], None
            for ev in prof["events"]:
                if last is not None and stack:
                    dt = ev["at"] - last
                    total_all += dt
                    if frames[stack[-1]] == "CPU_TIME":
                        total_cpu += dt
                        real = [frames[i] for i in stack if frames[i] not in ("CPU_TIME",)]
                        if real:
                            self_t[real[-1]] += dt
                        for name in set(real):
                            incl_t[name] += dt
                last = ev["at"]
                if ev["type"] == "O":
                    stack.append(ev["frame"])
                elif stack:
                    stack.pop()
        elif prof.get("type") == "sampled":
            for st, w in zip(prof["samples"], prof["weights"]):
                total_all += w
                if st and frames[st[-1]] == "CPU_TIME":
                    total_cpu += w
                    real = [frames[i] for i in st if frames[i] != "CPU_TIME"]
                    if real:
                        self_t[real[-1]] += w
                    for name in set(real):
                        incl_t[name] += w
    if total_cpu:
        print(f"Managed on-CPU samples (CPU_TIME) are {100 * total_cpu / total_all:.1f}% of all thread time sampled.\n")
        for title, counter in (("exclusive", self_t), ("inclusive", incl_t)):
            print(f"Managed on-CPU, {title} (share of managed on-CPU time):\n```")
            skip = re.compile(r"^(Thread \(|Threads|Process|ROOT|UNMANAGED_CODE_TIME)")
            shown = 0
            for name, v in counter.most_common():
                if skip.match(name):
                    continue
                print(f"{100 * v / total_cpu:6.2f}%  {name[:150]}")
                shown += 1
                if shown >= top:
                    break
            print("```\n")

# ---- perf ----
def perf_samples(path):
    """The samples of a `perf script` output: (thread, [(symbol, library) leaf first]) each."""
    thread, frames = None, None
    for line in gzip.open(path, "rt", errors="replace"):
        if not line.strip():
            if frames is not None:
                yield thread, frames
            thread, frames = None, None
            continue
        if not line.startswith((" ", "\t")):
            m0 = re.match(r"^(.*?)\s+\d+(?:/\d+)?\s+(?:\[\d+\]\s+)?[\d.]+:", line)
            thread, frames = (m0.group(1).strip() if m0 else "?"), []
            continue
        m1 = re.match(r"^\s+[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$", line)
        if frames is not None and m1:
            frames.append((re.sub(r"\+0x[0-9a-f]+$", "", m1.group(1)), os.path.basename(m1.group(2))))
    if frames is not None:
        yield thread, frames

ps = os.path.join(d, "perf.script.gz")
if os.path.exists(ps):
    # (thread, [frames leaf first], [dsos]); an unknown symbol is named by its library
    samples = [(thread, [f"[unknown in {dso}]" if sym == "[unknown]" else sym for sym, dso in frames], [dso for _, dso in frames])
               for thread, frames in perf_samples(ps)]
    n = len(samples) or 1
    pr = runs.get("perf") or {}
    pmsgs = pr.get("relayed") or 1
    ms_total = pr.get("cpu_ms", 0) / pmsgs
    print(f"### perf: on-CPU samples of the Postern process ({len(samples)} samples at 1999 Hz during the perf run of {pmsgs} messages, "
          f"{ms_total:.2f} CPU ms per message)\n")
    print("ms/msg = the share times the run's CPU ms per message. Stacks are walked by frame pointers: JIT code and "
          "libcoreclr keep them, libc and SQLite do not, so a sample whose leaf is in libc or SQLite often has no managed "
          "caller; such samples are classified by their kernel entry (syscall) or library instead. libcoreclr has no symbols "
          "here (GC, allocation helpers, stubs show as [unknown in libcoreclr.so]).\n")

    def clean(sym):
        # perf-map names: "instance void [postern] Postern.Inbound.SmtpSession+<DataAsync>d__53::MoveNext()[OptimizedTier1]"
        sym = re.sub(r"\[(Optimized|OptimizedTier1|Tier0|Tier1|QuickJitted|Instrumented|OSR|PreJIT|Tier-0|Tier-1)[^\]]*\]$", "", sym)
        sym = re.sub(r"^(instance |static )?", "", sym)
        sym = re.sub(r"\(.*$", "", sym)
        # drop the return type: keep from the "[assembly]" on
        m = re.search(r"\[[A-Za-z0-9_.]+\] (.*)$", sym)
        if m and "::" in sym:
            sym = m.group(1)
        return sym[:130]

    def managed(sym):
        return "::" in sym

    selfc, inclc, dsoc, thr, charged = (collections.Counter() for _ in range(5))
    for t, fr, ds in samples:
        thr[re.sub(r"\s*\d+$", "", t)] += 1
        if fr:
            selfc[f"{clean(fr[0])}  ({ds[0]})" if not managed(fr[0]) else clean(fr[0])] += 1
            dsoc[ds[0]] += 1
            # charged to the nearest managed frame (native callees folded into their managed caller)
            mf = next((clean(f) for f in fr if managed(f)), None)
            charged[mf or f"(no managed frame) {ds[0]}"] += 1
        for name in set(clean(f) for f in fr):
            inclc[name] += 1

    def table(title, counter, limit):
        print(f"{title}\n```\n  share  ms/msg  symbol")
        for name, c in counter.most_common(limit):
            print(f"{100 * c / n:6.2f}%  {ms_total * c / n:6.3f}  {name}")
        print("```\n")

    table("By binary (self):", dsoc, 15)
    table("By thread:", thr, 12)
    table(f"Top {top} self (exclusive):", selfc, top)
    table(f"Top {top} self, native callees charged to their nearest managed caller:", charged, top)
    table(f"Top {top} inclusive (the sample's stack contains the symbol):", inclc, top)
    plumbing = re.compile(r"^(System\.Threading\.|System\.Runtime\.CompilerServices\.|System\.Net\.Sockets\.SocketAsyncEngine|"
                          r"System\.Net\.Sockets\.Socket\+AwaitableSocketAsyncEventArgs|System\.Threading\.Tasks\.)")
    useful = collections.Counter({k: v for k, v in inclc.items()
                                  if "::" in k and not plumbing.match(k) and re.match(r"^(Postern\.|Microsoft\.Data\.Sqlite|SQLitePCL|System\.Net\.Security|"
                                                                                       r"System\.Security\.Cryptography|System\.IO\.|System\.Net\.Sockets|DnsClient|System\.Text|System\.Buffer)", k)})
    table(f"Top {top} inclusive, Postern and library methods only (thread-pool and async plumbing left out):", useful, top)

    # Kernel work by what the process asked for: the syscall (or fault, interrupt) at the kernel's entry.
    def kernel_entry(fr, ds):
        if not ds or ds[0] != "[kernel.kallsyms]":
            return None
        for f, d_ in zip(reversed(fr), reversed(ds)):
            if d_ != "[kernel.kallsyms]":
                continue
            if re.match(r"^(__x64_sys_|__ia32_sys_|asm_exc_|asm_sysvec_|asm_common_interrupt|ret_from_fork)", f):
                return re.sub(r"^__x64_sys_", "", f)
        return "(kernel, no entry in the stack)"

    sysc = collections.Counter()
    for t, fr, ds in samples:
        e = kernel_entry(fr, ds)
        if e:
            sysc[e] += 1
    table("Kernel samples by entry (system call, fault or interrupt):", sysc, 15)

    # Areas of the hot path. Postern frames decide first (the innermost one that names an area);
    # then runtime threads, then what the sample was doing natively.
    postern_rules = [
        ("TLS handshake", r"AuthenticateAs(Client|Server)|SmtpClientConnection\+<HandshakeAsync>|SmtpSession\+<StartTlsAsync>"),
        ("TLS record encrypt/decrypt", r"System\.Net\.Security\.SslStream.*(Write|Read|Encrypt|Decrypt)"),
        ("queue: SQLite writes (group commit)", r"SqliteQueueStore::Commit|SqliteQueueStore\+<>c__DisplayClass|GroupCommit|SqliteQueueStore\+<NextIdAsync>"),
        ("queue: SQLite reads (scan, load, body)", r"LoadDueAsync|NextDueAsync|ReadBodyAsync|LoadMessages|SqliteQueueStore::Open"),
        ("inbound DATA (line reader, body buffer)", r"SmtpSession\+<DataAsync>"),
        ("inbound accept (Received header, body copy, enqueue call)", r"AcceptMessageAsync"),
        ("outbound: message transfer (MAIL..DATA, dot-stuffing, replies)", r"SmtpClientConnection\+<SendAsync>|DotStuff|WriteDataAsync|SmtpClientConnection\+<ReadReplyAsync>|SmtpClientConnection\+<CommandAsync>"),
        ("outbound: connection set-up and close (connect, EHLO, QUIT)", r"SmtpClientConnection\+<OpenAsync>|EhloAsync|SmtpClientConnection\+<CloseAsync>|SmtpClientConnection::DisposeAsync|SmtpClientConnection\+<DisposeAsync>"),
        ("outbound: routing, DNS, scheduling", r"Postern\.Outbound\.|Postern\.Dns\."),
        ("inbound session (commands, replies, accept loop)", r"Postern\.Inbound\."),
        ("queue manager (scan loop, recording outcomes)", r"Postern\.Queue\."),
        ("mail log, events, metrics", r"Postern\.Observability\."),
        ("other Postern", r"Postern\."),
    ]
    native_rules = [
        ("GC (background GC thread)", lambda t, fr, ds, e: t.startswith(".NET BGC") or t.startswith(".NET Server GC")),
        ("JIT (tiered compilation)", lambda t, fr, ds, e: t.startswith(".NET Tiered") or "libclrjit.so" in ds),
        ("queue: SQLite engine (native, caller lost)", lambda t, fr, ds, e: "libe_sqlite3.so" in ds or any(re.match(r"^(sqlite3|pcache|btree|wal|yy_|unix[A-Z]|allocateBtree)", f) for f in fr)),
        ("queue: SQLite file I/O (kernel: pread/pwrite/fsync/open)", lambda t, fr, ds, e: e in ("pread64", "pwrite64", "fsync", "fdatasync", "openat", "close", "newfstatat", "fstat", "ftruncate", "unlink", "fcntl") or any(f.startswith(("__libc_pread", "__libc_pwrite", "__GI___libc_open", "fsync", "__fcntl")) for f in fr)),
        ("sockets: send (kernel, caller lost)", lambda t, fr, ds, e: e in ("sendto", "sendmsg", "write") or any(f.startswith(("__send", "__libc_send")) for f in fr)),
        ("sockets: receive (kernel, caller lost)", lambda t, fr, ds, e: e in ("recvfrom", "recvmsg", "read") or any(f.startswith(("__libc_recv", "__recv")) for f in fr)),
        ("sockets: connect/accept/close/shutdown", lambda t, fr, ds, e: e in ("connect", "accept4", "shutdown", "socket", "setsockopt", "getsockname", "bind")),
        ("socket engine (epoll thread)", lambda t, fr, ds, e: t.startswith(".NET Sockets") or e in ("epoll_wait", "epoll_ctl")),
        ("page faults (fresh memory)", lambda t, fr, ds, e: e == "asm_exc_page_fault"),
        ("thread wake-ups, spinning, futex", lambda t, fr, ds, e: e in ("futex", "sched_yield", "membarrier") or any(f.startswith(("__futex", "__GI___lll", "pthread_cond", "__sched_yield")) for f in fr)),
        ("native malloc (SQLite page cache, OpenSSL)", lambda t, fr, ds, e: any(f.startswith(("sysmalloc", "malloc", "_int_malloc", "_int_free", "cfree", "__libc_free")) for f in fr)),
        ("TLS (OpenSSL, caller lost)", lambda t, fr, ds, e: any(x.startswith(("libssl", "libcrypto")) for x in ds)),
        ("runtime: thread pool, async machinery, timers", lambda t, fr, ds, e: any(managed(f) for f in fr)),
        ("runtime (libcoreclr: allocation, GC, stubs)", lambda t, fr, ds, e: "libcoreclr.so" in ds),
    ]
    areac = collections.Counter()
    for t, fr, ds in samples:
        e = kernel_entry(fr, ds)
        pframes = [f for f in fr if "[postern]" in f or f.startswith("Postern.")]
        full = "\n".join(fr)
        area = None
        if pframes:
            for name, rx in postern_rules:
                if re.search(rx, full if name.startswith("TLS") else "\n".join(pframes)):
                    area = name
                    break
        if area is None:
            for name, rule in native_rules:
                if rule(t, fr, ds, e):
                    area = name
                    break
        areac[area or "other (unresolved)"] += 1
    table("By area of the hot path (Postern frames first, then the thread, then the native activity):", areac, 30)

# ---- perf, DWARF call graphs: the native entry points ----
pd = os.path.join(d, "perf-dwarf.script.gz")
if os.path.exists(pd):
    dsamples = [frames for _, frames in perf_samples(pd) if frames]
    nd = len(dsamples) or 1
    # The outermost frame of the native library the sample is in, walking up from the leaf:
    # SQLite API (sqlite3_*), the .NET OpenSSL shim (CryptoNative_*), libSystem.Native (SystemNative_*),
    # else the library's outermost named frame.
    entries = collections.Counter()
    for fr in dsamples:
        if not fr:
            continue
        leaf_dso = fr[0][1]
        if leaf_dso in ("[kernel.kallsyms]",):
            # the kernel: by the user-space function that entered it
            user = next(((f, x) for f, x in fr if x != "[kernel.kallsyms]"), None)
            key = f"kernel, entered from {user[0]} ({user[1]})" if user else "kernel"
            shim = next((f for f, x in fr if x.startswith(("libSystem.Security.Cryptography.Native", "libSystem.Native"))
                         or f.startswith("sqlite3_")), None)
            if shim:
                key += f" via {shim}"
            entries[key] += 1
            continue
        if not (leaf_dso.startswith(("libe_sqlite3", "libcrypto", "libssl", "libc.so", "libSystem."))):
            continue
        outer = None
        for f, x in fr:
            if x.startswith(("libSystem.Security.Cryptography.Native", "libSystem.Native")) or f.startswith("sqlite3_") and x.startswith("libe_sqlite3"):
                outer = f"{f} ({x})"
        entries[outer or f"{fr[0][0]} ({leaf_dso}, no entry point found)"] += 1
    dr = runs.get("perfdwarf") or {}
    dms = (dr.get("cpu_ms", 0) / (dr.get("relayed") or 1))
    print(f"### perf, DWARF call graphs ({len(dsamples)} samples at 499 Hz, {dms:.2f} CPU ms per message): native work by the entry point managed code called\n")
    print("Only samples in libc, SQLite, OpenSSL, the .NET native shims and the kernel; share of all samples.\n```\n  share  ms/msg  entry point")
    for name, c in entries.most_common(top):
        print(f"{100 * c / nd:6.2f}%  {dms * c / nd:6.3f}  {name[:170]}")
    print("```\n")

# ---- strace ----
st = os.path.join(d, "strace.txt")
if os.path.exists(st) and runs.get("strace"):
    sm = runs["strace"]["relayed"] or 1
    calls, errors, files = collections.Counter(), collections.Counter(), collections.defaultdict(collections.Counter)
    nbytes = collections.defaultdict(collections.Counter)
    pending = {}   # pid -> (syscall, file) of a call strace split into "unfinished" and "resumed"
    io = ("pwrite64", "pread64", "write", "read", "sendto", "recvfrom", "fsync", "fdatasync", "ftruncate", "fstat", "newfstatat", "fcntl", "close")

    def where(path):
        if path.startswith(("socket:", "TCP", "UDP", "TCPv6", "UDPv6")):
            return "socket"
        if path.startswith(("anon_inode", "pipe:")):
            return path.split(":")[0]
        return os.path.basename(path)

    def count_bytes(path, name, line):
        r = re.search(r"= (\d+)\s*$", line)
        if r and name in ("pwrite64", "pread64", "write", "read", "sendto", "recvfrom"):
            nbytes[path][name] += int(r.group(1))

    for line in open(st, errors="replace"):
        # "1234  pwrite64(7</path/queue.db-wal>, "..."..., 4096, 1234) = 4096", possibly split by -f into
        # "1234  sendto(9<TCP:[...]>, ... <unfinished ...>" and "1234  <... sendto resumed>...) = 65536".
        m = re.match(r"^(\d+)\s+<\.\.\. ([a-z0-9_]+) resumed>", line)
        if m:
            pid, name = m.group(1), m.group(2)
            if re.search(r"= -1 E", line):
                errors[name] += 1
            p_ = pending.pop(pid, None)
            if p_ and p_[0] == name and p_[1]:
                count_bytes(p_[1], name, line)
            continue
        m = re.match(r"^(\d+)\s+([a-z0-9_]+)\((?:(\d+)<([^>]*)>)?", line)
        if not m:
            continue
        pid, name, path = m.group(1), m.group(2), m.group(4)
        calls[name] += 1
        path = where(path) if path is not None and name in io else None
        if path:
            files[path][name] += 1
        if "<unfinished ...>" in line:
            pending[pid] = (name, path)
            continue
        if re.search(r"= -1 E", line):
            errors[name] += 1
        if path:
            count_bytes(path, name, line)
    print(f"### System calls per message (strace -f during a run of {sm} messages; the run is slowed, the counts are what matter)\n")
    print("| syscall | calls | per message | failed (EAGAIN etc.) |")
    print("| --- | ---: | ---: | ---: |")
    for name, c in calls.most_common(22):
        print(f"| {name} | {c} | {c / sm:.2f} | {errors[name] or ''} |")
    total = sum(calls.values())
    print(f"| total | {total} | {total / sm:.1f} | |\n")
    print("File and socket I/O per message, by file (descriptors named by strace -y):\n")
    print("| file | pwrite64 | pread64 | write/sendto | read/recvfrom | fsync+fdatasync | other | KB written | KB read |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    order = sorted(files, key=lambda f: -sum(files[f].values()))
    for f in order[:12]:
        c = files[f]
        other = sum(v for k, v in c.items() if k not in ("pwrite64", "pread64", "write", "read", "sendto", "recvfrom", "fsync", "fdatasync"))
        wr = (nbytes[f]["pwrite64"] + nbytes[f]["write"] + nbytes[f]["sendto"]) / 1024 / sm
        rd = (nbytes[f]["pread64"] + nbytes[f]["read"] + nbytes[f]["recvfrom"]) / 1024 / sm
        print(f"| {f} | {c['pwrite64'] / sm:.2f} | {c['pread64'] / sm:.2f} | {(c['write'] + c['sendto']) / sm:.2f} | {(c['read'] + c['recvfrom']) / sm:.2f} "
              f"| {(c['fsync'] + c['fdatasync']) / sm:.3f} | {other / sm:.2f} | {wr:.1f} | {rd:.1f} |")
    print()
