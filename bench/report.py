#!/usr/bin/env python3
"""Helpers for bench/compare.sh: catalogue SQL extraction and the report.

    report.py sql CONFIG KIND OUT_DIR     write each query's SQL of a config
                                          (KIND: runbook | postgres_exporter |
                                          query_exporter) to OUT_DIR/NAME.sql
    report.py report RESULTS_DIR OUTPUT   compute the numbers from the raw
                                          files compare.sh wrote, print the
                                          table, write the Markdown report

Everything measured is in RESULTS_DIR (see bench/README.md for the layout);
this file only reads it, so a report can be rebuilt from a kept run.
"""

import json
import math
import re
import sys
from pathlib import Path

import yaml

EXPORTERS = ["runbook", "postgres_exporter", "query_exporter"]
TITLES = {
    "runbook": "runbook-exporter",
    "postgres_exporter": "postgres_exporter",
    "query_exporter": "query-exporter",
}


class _Loader(yaml.SafeLoader):
    pass


# query-exporter's !env tag: the value does not matter here.
_Loader.add_constructor("!env", lambda loader, node: loader.construct_scalar(node))


def load_yaml(path):
    with open(path) as f:
        return yaml.load(f, _Loader)


def catalogue_sql(path, kind):
    data = load_yaml(path)
    if kind == "runbook":
        return {name: q["sql"] for name, q in data["queries"].items()}
    if kind == "postgres_exporter":
        return {name: q["query"] for name, q in data.items()}
    if kind == "query_exporter":
        return {name: q["sql"] for name, q in data["queries"].items()}
    raise SystemExit(f"report.py: unknown kind {kind}")


def cmd_sql(config, kind, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, sql in catalogue_sql(config, kind).items():
        (out / f"{name}.sql").write_text(sql)


# --- reading raw files ---------------------------------------------------------


def read_kv(path):
    kv = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                kv[k] = v
    return kv


def read_floats(path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().split():
        try:
            out.append(float(line))
        except ValueError:
            pass
    return out


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


def read_stats(path):
    """queryid -> (calls, total_exec_ms) from a pg_stat_statements snapshot."""
    stats = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0]:
                stats[parts[0]] = (int(parts[1]), float(parts[2]))
    return stats


def stats_delta(before, after):
    delta = {}
    for qid, (calls, ms) in after.items():
        c0, m0 = before.get(qid, (0, 0.0))
        if calls - c0 or ms - m0:
            delta[qid] = (calls - c0, ms - m0)
    return delta


def read_queryids(path):
    """name -> queryid."""
    ids = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 2:
                ids[parts[0]] = parts[1]
    return ids


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def wrk_duration(text):
    m = re.match(r"^([0-9.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(path):
    out = {"requests": None, "rps": None, "p50": None, "p99": None, "non2xx": 0, "socket_errors": 0, "duration": None}
    if not path.exists():
        return out
    text = path.read_text()
    m = re.search(r"^\s*([0-9]+) requests in ([0-9.]+)(us|ms|s|m|h)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["duration"] = float(m.group(2)) * UNITS[m.group(3)]
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s*{pct}%\s+([0-9.]+(?:us|ms|s|m|h))\s*$", text, re.M)
        if m:
            out[key] = wrk_duration(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*([0-9]+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
    return out


def read_cpu(path):
    """(exporter, whole machine busy, PostgreSQL, harness children) in clock ticks."""
    vals = read_floats(path)
    return tuple(vals) if len(vals) == 4 else None


def max_sample(path):
    vals = [int(v) for v in read_floats(path)]
    return max(vals) if vals else None


def exporter_errors(name, metrics_text):
    """Failed query executions the exporter itself reports, from its last scrape."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        if name == "runbook" and line.startswith("runbook_exporter_query_errors_total"):
            total += float(line.rsplit(" ", 1)[1])
        elif name == "postgres_exporter" and line.startswith("pg_exporter_last_scrape_error"):
            total += float(line.rsplit(" ", 1)[1])
        elif name == "query_exporter" and line.startswith("queries_total") and 'status="success"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- computing ------------------------------------------------------------------


def analyse(res, name, clk_tck, ncpu):
    d = res / name
    r = {"name": name}
    if not d.is_dir():
        return None
    ids = read_queryids(d / "queryids.tsv")
    catalogue_ids = set(ids.values())
    r["queryids"] = ids

    cold = read_floats(d / "cold.txt")
    r["colds"] = cold
    r["cold"] = sorted(cold)[len(cold) // 2] if cold else None
    wide = read_floats(d / "cold-wide.txt")
    r["colds_wide"] = wide
    r["cold_wide"] = sorted(wide)[len(wide) // 2] if wide else None

    seq = read_floats(d / "seq.txt")
    r["seq_n"] = len(seq)
    r["seq_p50"] = percentile(seq, 50)
    r["seq_p99"] = percentile(seq, 99)

    r["wrk"] = parse_wrk(d / "wrk.txt")
    r["burst_wrk"] = parse_wrk(d / "burst-wrk.txt")

    kv = read_kv(d / "proc.txt")
    r["vmhwm_kb"] = int(kv["VmHWM"]) if kv.get("VmHWM") else None
    r["alive"] = kv.get("alive") == "1"
    r["pid"] = kv.get("pid")

    for phase, scrapes in (("seq", len(seq)), ("wrk", r["wrk"]["requests"] or 0)):
        c0, c1 = read_cpu(d / f"cpu-{phase}-before.txt"), read_cpu(d / f"cpu-{phase}-after.txt")
        if c0 and c1:
            exp, busy, pg, kids = ((b - a) / clk_tck for a, b in zip(c0, c1))
        else:
            exp = busy = pg = kids = None
        r[f"cpu_{phase}"] = exp
        r[f"cpu_per_1000_{phase}"] = exp / scrapes * 1000 if exp is not None and scrapes else None
        r[f"pg_cpu_per_1000_{phase}"] = pg / scrapes * 1000 if pg is not None and scrapes else None
        # Whatever the machine was busy with besides the exporter, PostgreSQL and this harness.
        elapsed = float(read_kv(d / "phases.txt").get(f"{phase}_seconds") or 0)
        r[f"other_cpu_{phase}"] = max(0.0, busy - exp - pg - kids) if busy is not None else None
        r[f"other_cpu_share_{phase}"] = (r[f"other_cpu_{phase}"] / (elapsed * ncpu)) if elapsed and busy is not None else None
        delta = stats_delta(read_stats(d / f"stats-{phase}-before.tsv"), read_stats(d / f"stats-{phase}-after.tsv"))
        cat_calls = sum(c for q, (c, _) in delta.items() if q in catalogue_ids)
        all_calls = sum(c for c, _ in delta.values())
        cat_ms = sum(m for q, (_, m) in delta.items() if q in catalogue_ids)
        r[f"exec_{phase}"] = cat_calls
        r[f"exec_per_scrape_{phase}"] = cat_calls / scrapes if scrapes else None
        r[f"stmts_per_scrape_{phase}"] = all_calls / scrapes if scrapes else None
        r[f"db_ms_per_scrape_{phase}"] = cat_ms / scrapes if scrapes else None
        r[f"per_query_{phase}"] = {qn: delta.get(qid, (0, 0.0))[0] for qn, qid in ids.items()}

    delta = stats_delta(read_stats(d / "stats-burst-before.tsv"), read_stats(d / "stats-burst-after.tsv"))
    r["per_query_burst"] = {qn: delta.get(qid, (0, 0.0))[0] for qn, qid in ids.items()}
    r["conns_wrk"] = max_sample(d / "conns-wrk.txt")
    r["conns_burst"] = max_sample(d / "conns-burst.txt")
    final = d / "final-metrics.txt"
    r["exporter_errors"] = exporter_errors(name, final.read_text()) if final.exists() else None
    return r


# --- formatting -----------------------------------------------------------------


def ms(v, digits=1):
    return "n/a" if v is None else f"{v * 1000:.{digits}f}"


def pct(v):
    return "n/a" if v is None else f"{v * 100:.0f}"


def num(v, digits=1):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header, rows):
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main_table(results, meta):
    names = [r["name"] for r in results]
    header = ["metric"] + [TITLES[n] for n in names]
    seq_n = meta.get("seq_scrapes", "?")
    conc = meta.get("wrk_connections", "?")
    dur = meta.get("wrk_duration", "?")

    def row(label, f):
        return [label] + [f(r) for r in results]

    rows = [
        row(f"cold scrape, ms (first scrape after start; median of {meta.get('cold_starts', '?')} starts)", lambda r: ms(r["cold"])),
        row("cold scrape of each start, ms", lambda r: " / ".join(ms(v) for v in r["colds"])),
        row(f"sequential p50, ms ({seq_n} scrapes)", lambda r: ms(r["seq_p50"], 2)),
        row(f"sequential p99, ms ({seq_n} scrapes)", lambda r: ms(r["seq_p99"], 2)),
        row(f"throughput, scrapes/s (wrk -c {conc} -d {dur}s)", lambda r: num(r["wrk"]["rps"])),
        row("wrk p50, ms", lambda r: ms(r["wrk"]["p50"], 2)),
        row("wrk p99, ms", lambda r: ms(r["wrk"]["p99"], 2)),
        row("scrapes served under wrk", lambda r: num(r["wrk"]["requests"], 0)),
        row("wrk errors (non-2xx + socket)", lambda r: f'{r["wrk"]["non2xx"] + r["wrk"]["socket_errors"]}'),
        row("query failures the exporter reports", lambda r: num(r["exporter_errors"], 0)),
        row("peak RSS, MiB (VmHWM)", lambda r: "n/a" if r["vmhwm_kb"] is None else f'{r["vmhwm_kb"] / 1024:.1f}'),
        row("CPU s / 1000 scrapes, sequential", lambda r: num(r["cpu_per_1000_seq"], 3)),
        row("CPU s / 1000 scrapes, under wrk", lambda r: num(r["cpu_per_1000_wrk"], 3)),
        row("PostgreSQL CPU s / 1000 scrapes, sequential", lambda r: num(r["pg_cpu_per_1000_seq"], 3)),
        row("PostgreSQL CPU s / 1000 scrapes, under wrk", lambda r: num(r["pg_cpu_per_1000_wrk"], 3)),
        row("catalogue executions / scrape, sequential", lambda r: num(r["exec_per_scrape_seq"], 3)),
        row("catalogue executions / scrape, under wrk", lambda r: num(r["exec_per_scrape_wrk"], 3)),
        row("all statements / scrape, under wrk", lambda r: num(r["stmts_per_scrape_wrk"], 3)),
        row("catalogue DB time / scrape, ms, under wrk", lambda r: num(r["db_ms_per_scrape_wrk"], 3)),
        row("connections held, max under wrk", lambda r: num(r["conns_wrk"], 0)),
        row("other processes' CPU, % of the machine, sequential", lambda r: pct(r["other_cpu_share_seq"])),
        row("other processes' CPU, % of the machine, under wrk", lambda r: pct(r["other_cpu_share_wrk"])),
    ]
    return header, rows


def per_query_table(results, ttls, phase):
    header = ["query", "ttl"] + [TITLES[r["name"]] for r in results]
    rows = []
    for q, ttl in ttls.items():
        rows.append([q, ttl] + [str(r[f"per_query_{phase}"].get(q, "n/a")) for r in results])
    key = "wrk" if phase == "wrk" else "burst_wrk"
    rows.append(["(scrapes served)", ""] + [num(r[key]["requests"], 0) for r in results])
    return header, rows


def reading_notes(results, ttls):
    """Remarks that follow from this run's own numbers."""
    by = {r["name"]: r for r in results}
    cached = [q for q, t in ttls.items() if t not in ("0s", "0", "")]
    zero = [q for q in ttls if q not in cached]
    notes = []
    rb = by.get("runbook")
    if rb and rb["exec_wrk"] is not None and rb["wrk"]["requests"]:
        per = sum(rb["per_query_wrk"].get(q) or 0 for q in zero) / len(zero) / rb["wrk"]["requests"] if zero else 0
        notes.append(
            f"- runbook-exporter ran each ttl-0 query {per:.3f} times per scrape under wrk: concurrent scrapes share "
            "one execution (single-flight). Its cached queries ran "
            + ", ".join(f"{q} {rb['per_query_wrk'].get(q)}" for q in cached)
            + " times during the wrk run"
            + (" (their TTL had not run out since the warm-up)." if all(not rb["per_query_wrk"].get(q) for q in cached)
               else " (a TTL of 30 s or more runs out at most once in the run).")
            + " Each execution is 5 "
            "statements (`BEGIN READ ONLY; SET LOCAL statement_timeout; SET LOCAL lock_timeout`, the query, "
            "`ROLLBACK`), sent together in one round trip after the pool's check of the connection (an empty "
            "query), hence \"all statements\" ≈ 5 × catalogue executions.")
    pg = by.get("postgres_exporter")
    if pg:
        over = {q: pg["per_query_burst"].get(q) for q in cached if (pg["per_query_burst"].get(q) or 0) > 1}
        if over:
            notes.append(
                "- postgres_exporter's `cache_seconds` is not single-flight: in the cold burst, concurrent scrapes that "
                "found a query's cache empty each ran it ("
                + ", ".join(f"{q} {c}" for q, c in over.items()) + " executions within one TTL window).")
        notes.append(
            "- postgres_exporter holds one connection, so concurrent scrapes queue behind each other's queries: "
            f"its p50 under wrk is {ms(pg['wrk']['p50'])} ms against {ms(pg['seq_p50'])} ms for one scrape at a time.")
    qe = by.get("query_exporter")
    if qe:
        notes.append(
            "- query-exporter's cold scrape runs only its on-scrape queries (ttl 0); those with an `interval` start on "
            "its timer when it starts, beside or before the first scrape, so its cold scrape does less work than the "
            "other two's.")
    if notes:
        return ["## Reading the numbers", ""] + notes + [""]
    return []


# Issues 11 and 14: at least 10× postgres_exporter's throughput (the best peer in every run so far).
THROUGHPUT_TARGET = 10


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def parallel_note(timings_parallel, pool, cold):
    """What the limit would be with the server's default settings (parallel workers allowed), for reference."""
    if not timings_parallel or cold is None:
        return ""
    slowest = max(timings_parallel.values())
    floor = max(slowest, sum(timings_parallel.values()) / pool)
    return (f" With the server's defaults (parallel workers allowed; runbook-exporter's sessions never start any) "
            f"the same queries give a limit of {floor * 1000:.1f} ms, which the cold scrape is "
            f"{num(cold / floor, 2)}× of.")


def read_timings(path):
    """Median seconds per query, and every run's seconds, from a timings TSV (query, ms); empty when missing."""
    runs = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        q, v = line.split("\t")
        runs.setdefault(q, []).append(float(v) / 1000)
    return {q: sorted(vs)[len(vs) // 2] for q, vs in runs.items()}, runs


def targets(results, timings, ttls, meta, timings_parallel=None):
    by = {r["name"]: r for r in results}
    rb = by.get("runbook")
    peers = [r for r in results if r["name"] != "runbook"]
    out = []
    if rb is None or not peers:
        return ["Targets need runbook-exporter and at least one peer in the same run."]

    # 1. throughput and p99 under wrk.
    best_rps_peer = max(peers, key=lambda r: r["wrk"]["rps"] or 0)
    best_p99_peer = min(peers, key=lambda r: r["wrk"]["p99"] if r["wrk"]["p99"] is not None else float("inf"))
    tr = ratio(rb["wrk"]["rps"], best_rps_peer["wrk"]["rps"])
    pr = ratio(rb["wrk"]["p99"], best_p99_peer["wrk"]["p99"])
    met = tr is not None and tr >= THROUGHPUT_TARGET
    out.append(
        f"- **Throughput under {meta.get('wrk_connections')} concurrent scrapers ≥ {THROUGHPUT_TARGET}× the best peer's: "
        f"{'met' if met else 'missed'}.** runbook-exporter {num(rb['wrk']['rps'])} scrapes/s, best peer "
        f"{TITLES[best_rps_peer['name']]} {num(best_rps_peer['wrk']['rps'])} scrapes/s: "
        f"{num(tr, 1)}× (target {THROUGHPUT_TARGET}×; "
        + (f"by a margin of {num(tr / THROUGHPUT_TARGET, 2)}×" if met else
           f"short by {num(THROUGHPUT_TARGET - tr if tr else None, 1)}×") + ")."
    )
    met = pr is not None and pr <= 0.2
    out.append(
        f"- **p99 latency under {meta.get('wrk_connections')} concurrent scrapers ≤ ⅕ of the best peer's: "
        f"{'met' if met else 'missed'}.** runbook-exporter {ms(rb['wrk']['p99'], 2)} ms, best peer "
        f"{TITLES[best_p99_peer['name']]} {ms(best_p99_peer['wrk']['p99'], 2)} ms: ratio {num(pr, 4)} "
        f"(target ≤ 0.2{'; ' + num(0.2 / pr, 1) + '× better than needed' if met and pr else ''})."
    )

    # 2. executions per query per TTL window under concurrency.
    cached = [q for q, t in ttls.items() if t not in ("0s", "0", "")]
    burst = rb["per_query_burst"]
    counts = {q: burst.get(q) for q in cached}
    met = bool(cached) and all(c == 1 for c in counts.values())
    peer_txt = "; ".join(
        f"{TITLES[p['name']]}: " + ", ".join(f"{q} {p['per_query_burst'].get(q)}" for q in cached) for p in peers
    )
    dur = meta.get("burst_duration")
    out.append(
        f"- **Database executions per cached query per TTL window under {meta.get('wrk_connections')} concurrent "
        f"scrapers = exactly 1: {'met' if met else 'missed'}.** Cold start, then `wrk -c {meta.get('wrk_connections')} "
        f"-d {dur}s` (shorter than every TTL, so exactly one window): runbook-exporter "
        + ", ".join(f"{q} {c}" for q, c in counts.items())
        + f" over {num(rb['burst_wrk']['requests'], 0)} scrapes. Peers: {peer_txt}."
    )
    zero = [q for q, t in ttls.items() if q not in cached]
    rb_zero = sum(burst.get(q) or 0 for q in zero)
    scr = rb["burst_wrk"]["requests"] or 0
    out.append(
        f"  Queries with ttl 0 (single-flight only): runbook-exporter ran them {rb_zero} times in all for {scr} scrapes "
        f"({num(rb_zero / len(zero) / scr if scr and zero else None, 3)} executions per query per scrape); "
        + "; ".join(
            f"{TITLES[p['name']]} {sum(p['per_query_burst'].get(q) or 0 for q in zero)} for "
            f"{num(p['burst_wrk']['requests'], 0)} scrapes "
            f"({num(sum(p['per_query_burst'].get(q) or 0 for q in zero) / len(zero) / p['burst_wrk']['requests'] if p['burst_wrk']['requests'] and zero else None, 3)})"
            for p in peers
        )
        + "."
    )

    # 3. cold scrape vs its physical limit: the slowest query, or all of them shared by the pool.
    if timings:
        slowest_q, slowest = max(timings.items(), key=lambda kv: kv[1])
        total = sum(timings.values())
        pool = int(meta.get("rb_max_connections") or 1)
        floor = max(slowest, total / pool)
        limit = 1.1 * floor
        met = rb["cold"] is not None and rb["cold"] <= limit
        out.append(
            f"- **Cold scrape ≤ 1.1 × its physical limit, max(slowest query, all queries ÷ pool size): "
            f"{'met' if met else 'missed'}.** runbook-exporter's first scrape after start took {ms(rb['cold'])} ms "
            f"(median of {len(rb['colds'])} starts: " + " / ".join(ms(v) for v in rb["colds"]) + " ms). "
            f"Each query alone (median of {meta.get('timing_runs')} runs, each in a fresh psql session set up as "
            f"runbook-exporter sets up its own, without parallel workers): the slowest, "
            f"{slowest_q}, takes {slowest * 1000:.1f} ms; all {len(timings)} one after another {total * 1000:.1f} ms, "
            f"which --database.max-connections {pool} runs at most {pool} at a time: {total / pool * 1000:.1f} ms. "
            f"The limit is {floor * 1000:.1f} ms, 1.1× of it {limit * 1000:.1f} ms: "
            + (f"{ms(limit - rb['cold'])} ms to spare ({num(rb['cold'] / floor, 2)}× the limit)." if met else
               f"over by {ms(rb['cold'] - limit)} ms ({num(rb['cold'] / floor, 2)}× the limit).")
            + (f" For comparison only, with --database.max-connections {meta.get('runbook_wide_connections')} (one per "
               f"query) the cold scrape took {ms(rb['cold_wide'])} ms (median of {len(rb['colds_wide'])} starts: "
               + " / ".join(ms(v) for v in rb["colds_wide"]) + f" ms), {num(rb['cold_wide'] / slowest, 2)}× the slowest query."
               if rb.get("cold_wide") is not None else "")
            + parallel_note(timings_parallel, pool, rb["cold"])
        )
    # 4. RSS.
    pg = by.get("postgres_exporter")
    if pg and rb["vmhwm_kb"] and pg["vmhwm_kb"]:
        rr = rb["vmhwm_kb"] / pg["vmhwm_kb"]
        met = rr <= 0.5
        out.append(
            f"- **Peak RSS under load ≤ ½ of postgres_exporter's: {'met' if met else 'missed'}.** "
            f"runbook-exporter {rb['vmhwm_kb'] / 1024:.1f} MiB, postgres_exporter {pg['vmhwm_kb'] / 1024:.1f} MiB: "
            f"ratio {rr:.2f} (target ≤ 0.50{'; ' + format(0.5 / rr, '.1f') + '× under' if met else ''})."
        )
    return out


# The section bench/statements.sh writes.
STATEMENTS_HEADING = "## pg_stat_statements ranked without query text"


def kept_section(path, heading):
    """The lines of `path`'s section `heading` (up to the next `## ` heading), written by another script
    (bench/scale.sh writes "## Scaling"), so that rewriting the file keeps it; [] if there is none."""
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text().splitlines()
    if heading not in lines:
        return []
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end] + ([""] if lines[end - 1].strip() else [])


def cmd_report(res_dir, output):
    res = Path(res_dir)
    meta = read_kv(res / "meta.txt")
    clk_tck = float(meta.get("clk_tck", "100"))
    names = [n for n in meta.get("exporters", ",".join(EXPORTERS)).split(",") if n]
    results = [r for r in (analyse(res, n, clk_tck, int(meta.get("nproc", "1"))) for n in names) if r]

    ttls = {}
    for line in (res / "ttls.tsv").read_text().splitlines() if (res / "ttls.tsv").exists() else []:
        q, t = line.split("\t")
        ttls[q] = t
    timings, runs = read_timings(res / "timings.tsv")
    timings_parallel, _ = read_timings(res / "timings-parallel.tsv")

    header, rows = main_table(results, meta)
    print(text_table(header, rows))
    tgt = targets(results, timings, ttls, meta, timings_parallel)

    md = []
    md.append("# Benchmarks: runbook-exporter, postgres_exporter, query-exporter")
    md.append("")
    md.append(
        "Written by `bench/compare.sh` (see `bench/README.md`); every number below comes from one run of it. "
        "The three exporters serve the same catalogue (`queries.yaml`, translated for the peers into "
        "`bench/peers/`) from the same seeded Ignition database on a throwaway PostgreSQL, one exporter at a time."
    )
    md.append("")
    md.append(f"- Date: {meta.get('date')}" + (" (**--quick mode**: small seed, short runs; not for comparison)" if meta.get("quick") == "1" else ""))
    md.append(f"- Machine: {meta.get('nproc')} CPUs ({meta.get('cpu_model')}), {meta.get('mem')} memory, {meta.get('os')}, Linux {meta.get('kernel')}")
    md.append(f"- PostgreSQL: {meta.get('pg_version')}, on 127.0.0.1, settings: `{meta.get('pg_settings')}`")
    md.append(f"- Data: `examples/ignition/schema.sql` + `{meta.get('seed')}` ({meta.get('activity_events')} activity events, database {meta.get('db_size')}), loaded in {meta.get('load_seconds')} s, then `VACUUM (ANALYZE)`")
    md.append(f"- Load average (1, 5, 15 min) when the run started: {meta.get('load_start')}; the machine is shared with other work, which competes for the same CPUs")
    md.append(f"- Load generator: {meta.get('wrk_version')}; scrapes with curl {meta.get('curl_version')}; all on the same {meta.get('nproc')} CPUs as PostgreSQL and the exporter")
    md.append("")
    md.append("## Versions and settings")
    md.append("")
    md.append(md_table(["exporter", "version", "command line (DSN user, port and paths as run)"], [
        [TITLES[n], meta.get(f"{n}_version", "n/a"), f"`{meta.get(f'{n}_cmd', 'n/a')}`"] for n in names
    ]))
    md.append("")
    md.append("Each exporter has its own login role (member of `pg_monitor`, SELECT on the Ignition tables): "
              "`bench_runbook`, `bench_pgexp`, `bench_qe`. Its statements are told apart in `pg_stat_statements` "
              "by that role's userid, its connections in `pg_stat_activity` by that role's name. "
              "The peers' roles also have `default_transaction_read_only = on`, `statement_timeout = 15s` and "
              "`lock_timeout = 1s` (runbook-exporter sets these itself, per query).")
    md.append("")
    md.append("How each peer runs the catalogue:")
    md.append("")
    md.append("- **postgres_exporter**: `--extend.query-path bench/peers/postgres_exporter.yaml` (present in this "
              "version, not deprecated). Its built-in collectors are switched off (`--disable-default-metrics "
              "--disable-settings-metrics --no-collector.database --no-collector.bgwriter`) so that it runs the "
              "catalogue and nothing else, like runbook-exporter; it still sends its own `SELECT version()` "
              "(counted under \"all statements\", not \"catalogue executions\"). The SQL is the catalogue's, "
              "byte for byte; queries with a ttl have `cache_seconds` = ttl. Metric names are "
              "`<query>_<column>` (its naming); NULL values give NaN samples; every label column labels every "
              "metric of a query. It holds one connection (its database/sql pool is limited to one).")
    md.append("- **query-exporter**: `bench/peers/query_exporter.yaml`. Its columns must be named after its "
              "metrics, so each catalogue query is wrapped unchanged in `SELECT ... AS <metric> FROM (<sql>) AS q` "
              "(timestamps through `extract(epoch ...)`). Queries with ttl 0 have no `interval`: query-exporter 5 "
              "runs those on every scrape. It has no cache for on-scrape queries, so a query with a ttl gets "
              "`interval` = ttl instead: it runs on query-exporter's timer (at start, then every ttl) and scrapes "
              "serve its last result, which is at most ttl old, as with runbook-exporter's cache; the difference "
              "is that it runs even when nobody scrapes. Connection pool size 2 (runbook-exporter's default "
              "`--database.max-connections`), `PROMETHEUS_DISABLE_CREATED_SERIES=True` (no `_created` series). "
              "NULL values become 0. SQLAlchemy checks each connection out with `SELECT 1` and wraps each query "
              "in BEGIN/COMMIT (counted under \"all statements\").")
    md.append("")
    md.append("Scrapes are plain `GET /metrics` without `Accept` or `Accept-Encoding` headers (text format, no gzip) "
              "for all three.")
    md.append("")
    md.append("Method, per exporter in turn (the others are not running): start it; the **cold scrape** is the first "
              f"scrape once its port accepts connections (median of {meta.get('cold_starts')} starts, stopping it in between); "
              f"{meta.get('warmup_scrapes')} warm-up scrapes; **{meta.get('seq_scrapes')} sequential scrapes** with "
              "curl (latency = curl's `time_total`; percentiles nearest-rank); "
              f"**`{meta.get('wrk_cmd')}`** (p50/p99 from `--latency`); peak RSS = `VmHWM` from "
              "`/proc/PID/status` after the wrk run; CPU = `utime + stime` deltas from `/proc/PID/stat` over the "
              "sequential run and over the wrk run, also summed over the PostgreSQL server's processes (\"PostgreSQL CPU\"); "
              "\"other processes' CPU\" is the machine's busy time from `/proc/stat` over the same run minus the exporter, "
              "PostgreSQL and the harness's own children (curl, wrk, psql), as a share of all CPUs: what the rest of the "
              "machine took while this exporter was measured; database executions = `pg_stat_statements` `calls` deltas of the "
              "exporter's role, restricted to the catalogue's statements (matched by queryid, from `EXPLAIN (VERBOSE)` of "
              "each query as that exporter sends it), divided by the scrapes served (wrk's completed requests; up to "
              f"{meta.get('wrk_connections')} requests cut off at the end of the run are not counted but may have run "
              "queries); connections = count in `pg_stat_activity` for the exporter's role, sampled every 0.2 s during "
              "the wrk run, maximum. Then the exporter is stopped, started again and hit at once with "
              f"`wrk -c {meta.get('wrk_connections')} -d {meta.get('burst_duration')}s` (**cold burst**) to count "
              "executions per query within one TTL window.")
    md.append("")
    md.append("## Results")
    md.append("")
    md.append(md_table(header, rows))
    md.append("")
    md.append("Times are wall-clock as the client sees them. \"CPU\" is the exporter process's own; \"PostgreSQL CPU\" is "
              "summed over the server's processes (the exporter's backends, and the server's background processes); "
              "\"catalogue DB time\" is `pg_stat_statements` execution time of the catalogue's statements. Load average before the sequential run → after the wrk run: " + "; ".join(
                  f"{TITLES[r['name']]} {meta.get(r['name'] + '_load_before')} → {meta.get(r['name'] + '_load_after')}" for r in results) + "; share of the CPUs busy (all processes, over 3 s) just before each exporter started: " + "; ".join(
                  f"{TITLES[r['name']]} {meta.get(r['name'] + '_busy_before')} %" for r in results) + ". "
              "An exporter is measured again (at most twice) when other processes took over 25 % of the CPUs during its "
              "sequential or wrk run; attempts used: " + "; ".join(
                  f"{TITLES[r['name']]} {meta.get(r['name'] + '_attempts', '1')}" for r in results) + ".")
    md.append("")
    md += reading_notes(results, ttls)
    md.append("## Targets")
    md.append("")
    md += tgt
    md.append("")
    md.append("## Each catalogue query alone")
    md.append("")
    md.append(f"psql `\\timing`, as role `bench_timing`, each run in a fresh session (like an exporter's first "
              f"execution on a new connection); {meta.get('timing_runs')} runs, median. \"As runbook-exporter runs it\": "
              f"`SET max_parallel_workers_per_gather = 0` first, as the exporter's sessions do; \"server defaults\": "
              f"parallel workers allowed, as psql or a peer exporter would run it.")
    md.append("")
    md.append(md_table(["query", "ttl", "median ms, as runbook-exporter runs it", "runs ms",
                        "median ms, server defaults"], [
        [q, ttls.get(q, ""), f"{timings[q] * 1000:.2f}", ", ".join(f"{v * 1000:.2f}" for v in runs[q]),
         f"{timings_parallel[q] * 1000:.2f}" if q in timings_parallel else ""] for q in timings
    ]))
    md.append("")
    md.append("## Executions per query")
    md.append("")
    md.append(f"Under `{meta.get('wrk_cmd')}` after warm-up:")
    md.append("")
    h, rws = per_query_table(results, ttls, "wrk")
    md.append(md_table(h, rws))
    md.append("")
    md.append(f"Cold burst (fresh start, `wrk -c {meta.get('wrk_connections')} -d {meta.get('burst_duration')}s` at once):")
    md.append("")
    h, rws = per_query_table(results, ttls, "burst")
    md.append(md_table(h, rws))
    md.append("")
    md.append("Connections held, max during the cold burst: " + ", ".join(
        f"{TITLES[r['name']]} {num(r['conns_burst'], 0)}" for r in results) + ".")
    md.append("")
    issues = [l for l in (res / "issues.txt").read_text().splitlines() if l.strip()] if (res / "issues.txt").exists() else []
    md.append("## Observations during the run")
    md.append("")
    if issues:
        md += [f"- {l}" for l in issues]
    else:
        md.append("- None: every exporter stayed up, answered every scrape with 200 and reported no failed query.")
    md.append("")
    md += kept_section(output, "## Scaling")
    md += kept_section(output, STATEMENTS_HEADING)
    Path(output).write_text("\n".join(md))
    print()
    print("\n".join(tgt))
    json.dump(results, open(res / "results.json", "w"), indent=1, default=str)


def main(argv):
    if len(argv) >= 5 and argv[1] == "sql":
        cmd_sql(argv[2], argv[3], argv[4])
    elif len(argv) >= 4 and argv[1] == "report":
        cmd_report(argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
