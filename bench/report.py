#!/usr/bin/env python3
"""Turn the raw measurements of bench/run.sh into results.md / results.json (stdlib only).

Inputs (all written by run.sh into its run directory):
  steps.tsv    tool  step  wall_s  max_rss_kib  user_s  sys_s  sync_s
  sizes.tsv    tool  when  bytes              (when: initial | final)
  meta.tsv     key   value
  corpus-day1.json, corpus-day2.json          summaries printed by corpus.py
The markdown goes to stdout and to OUT/results.md; JSON to OUT/results.json.
Exit status: 0, or 3 when --strict and a target FAILs.
"""

import argparse
import statistics
import json
import os
import sys

STEPS = ("init", "initial", "incremental", "restore")
MB = 1e6
MIB = 1024 * 1024

# (key, label, how the ratio is formed, goal, comparison)
TARGETS = [
    ("initial_throughput", "initial backup throughput", ">=", 1.5),
    ("incremental_speed", "incremental backup speed", ">=", 2.0),
    ("restore_throughput", "restore throughput", ">=", 1.5),
    ("peak_memory", "peak memory (max RSS over all steps)", "<=", 1.0),
    ("repo_size", "repository size", "<=", 1.05),
]


def read_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    rows.append(line.split("\t"))
    return rows


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_json_object(path):
    """The last parseable top-level JSON object in a log file (conservator backup --json)."""
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return None
    dec, found = json.JSONDecoder(), None
    i = text.find("{")
    while i != -1:
        try:
            obj, end = dec.raw_decode(text, i)
            if isinstance(obj, dict):
                found = obj
            i = text.find("{", end)
        except ValueError:
            i = text.find("{", i + 1)
    return found


def fmt(v, nd=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="run directory of run.sh")
    ap.add_argument("--out", required=True)
    ap.add_argument("--strict", action="store_true")
    a = ap.parse_args()

    meta = {k: v for k, v in read_tsv(os.path.join(a.run, "meta.tsv"))}
    day1 = load_json(os.path.join(a.run, "corpus-day1.json")) or {}
    day2 = load_json(os.path.join(a.run, "corpus-day2.json")) or {}
    bytes1, bytes2 = day1.get("total_bytes"), day2.get("total_bytes")
    tools_order = meta.get("tools", "").split()

    # With BENCH_ROUNDS > 1 every step was measured once per round: each figure is the median
    # over the rounds (the spread is kept as *_all), so one noisy disk flush decides nothing.
    samples = {}
    for tool, step, wall, rss, user, sys_, sync in read_tsv(os.path.join(a.run, "steps.tsv")):
        samples.setdefault((tool, step), []).append((float(wall), int(rss), float(user), float(sys_), float(sync)))
    tools = {}
    for (tool, step), xs in samples.items():
        med = lambda i: statistics.median(x[i] for x in xs)
        t = tools.setdefault(tool, {"steps": {}})
        t["steps"][step] = {"wall_s": med(0), "max_rss_kib": int(med(1)),
                            "max_rss_mib": med(1) * 1024 / MIB, "user_s": med(2),
                            "sys_s": med(3), "sync_after_s": med(4), "rounds": len(xs),
                            "wall_s_all": [x[0] for x in xs], "max_rss_mib_all": [round(x[1] / 1024, 1) for x in xs]}
    sizes = {}
    for tool, when, b in read_tsv(os.path.join(a.run, "sizes.tsv")):
        sizes.setdefault((tool, when), []).append(int(b))
    for (tool, when), bs in sizes.items():
        tools.setdefault(tool, {"steps": {}})["repo_bytes_" + when] = int(statistics.median(bs))
    for tool in tools_order:
        tools.setdefault(tool, {"steps": {}})
    for tool, t in tools.items():
        st = t["steps"]

        def wall(step):
            return st.get(step, {}).get("wall_s")
        t["initial_MBps"] = bytes1 / MB / wall("initial") if bytes1 and wall("initial") else None
        t["incremental_MBps"] = bytes2 / MB / wall("incremental") if bytes2 and wall("incremental") else None
        t["restore_MBps"] = bytes2 / MB / wall("restore") if bytes2 and wall("restore") else None
        rss = [s["max_rss_mib"] for k, s in st.items() if k in ("initial", "incremental", "restore")]
        t["peak_rss_mib"] = max(rss) if rss else None
        if tool == "conservator":
            for step in ("initial", "incremental"):
                obj = last_json_object(os.path.join(a.out, "logs", f"conservator-{step}.log"))
                if obj is not None:
                    t.setdefault("backup_json", {})[step] = obj

    comparison = []
    c, r = tools.get("conservator"), tools.get("restic")
    if c and r:
        def w(t, step):
            return t["steps"].get(step, {}).get("wall_s")

        def ratio(x, y):
            return x / y if x is not None and y not in (None, 0) else None
        values = {
            "initial_throughput": (c["initial_MBps"], r["initial_MBps"], "MB/s",
                                   ratio(c["initial_MBps"], r["initial_MBps"])),
            "incremental_speed": (w(c, "incremental"), w(r, "incremental"), "s",
                                  ratio(w(r, "incremental"), w(c, "incremental"))),
            "restore_throughput": (c["restore_MBps"], r["restore_MBps"], "MB/s",
                                   ratio(c["restore_MBps"], r["restore_MBps"])),
            "peak_memory": (c["peak_rss_mib"], r["peak_rss_mib"], "MiB",
                            ratio(c["peak_rss_mib"], r["peak_rss_mib"])),
            "repo_size": (c.get("repo_bytes_final") and c["repo_bytes_final"] / MB,
                          r.get("repo_bytes_final") and r["repo_bytes_final"] / MB, "MB",
                          ratio(c.get("repo_bytes_final"), r.get("repo_bytes_final"))),
        }
        for key, label, op, goal in TARGETS:
            cv, rv, unit, rat = values[key]
            ok = None if rat is None else (rat >= goal if op == ">=" else rat <= goal)
            comparison.append({"target": key, "label": label, "conservator": cv, "restic": rv,
                               "unit": unit, "ratio": rat, "goal": f"{op} {goal}x",
                               "result": None if ok is None else ("PASS" if ok else "FAIL")})
        for step in ("initial", "incremental", "restore"):
            cm = c["steps"].get(step, {}).get("max_rss_mib")
            rm = r["steps"].get(step, {}).get("max_rss_mib")
            comparison.append({"target": f"memory_{step}", "label": f"peak RSS, {step} (info)",
                               "conservator": cm, "restic": rm, "unit": "MiB",
                               "ratio": ratio(cm, rm), "goal": "info", "result": None})

    # ---------------------------------------------------------------- markdown
    md = []
    md.append(f"# conservator benchmark ({meta.get('date', '?')})\n")
    md.append(f"Corpus: {fmt(bytes1 and bytes1 / MB, 1)} MB in {day1.get('files', '?')} files "
              f"(scale {meta.get('scale')}, seed {meta.get('seed')}); after the day-2 change "
              f"{fmt(bytes2 and bytes2 / MB, 1)} MB in {day2.get('files', '?')} files "
              f"(+{day2.get('new_media_files', '?')} media files / "
              f"{fmt(day2.get('new_media_bytes', 0) / MB, 1)} MB, "
              f"{day2.get('rewritten_media_files', '?')} rewritten / "
              f"{fmt(day2.get('rewritten_media_bytes', 0) / MB, 1)} MB, dump "
              f"{day2.get('sql_changed_lines', '?')}/{day2.get('sql_lines', '?')} INSERT lines changed, "
              f"{day2.get('sql_appended_lines', '?')} appended).  ")
    md.append(f"Machine: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores, {meta.get('mem', '?')}; "
              f"page cache dropped before each timed step: {meta.get('drop_caches', '?')}.  ")
    md.append("Versions: " + "; ".join(f"{k[8:]} `{v}`" for k, v in meta.items() if k.startswith("version_"))
              + ".  ")
    rounds = max((st.get("rounds", 1) for t in tools.values() for st in t["steps"].values()), default=1)
    md.append(f"MB = 10^6 bytes; RSS in MiB (`/usr/bin/time %M`); times are wall-clock seconds; every figure is the median of {rounds} round(s) (per-round values in results.json).\n")
    md.append("| tool | initial backup s | initial MB/s | incremental s | restore s | restore MB/s "
              "| repo size MB | peak RSS initial MiB | peak RSS incremental MiB | peak RSS restore MiB |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = [t for t in tools_order if t in tools] + [t for t in tools if t not in tools_order]
    for tool in order:
        t = tools[tool]
        st = t["steps"]

        def g(step, k):
            return st.get(step, {}).get(k)
        md.append(f"| {tool} | {fmt(g('initial', 'wall_s'))} | {fmt(t['initial_MBps'], 1)} | "
                  f"{fmt(g('incremental', 'wall_s'))} | {fmt(g('restore', 'wall_s'))} | "
                  f"{fmt(t['restore_MBps'], 1)} | {fmt(t.get('repo_bytes_final') and t['repo_bytes_final'] / MB, 1)} | "
                  f"{fmt(g('initial', 'max_rss_mib'), 0)} | {fmt(g('incremental', 'max_rss_mib'), 0)} | "
                  f"{fmt(g('restore', 'max_rss_mib'), 0)} |")
    md.append("")
    if comparison:
        md.append("## conservator vs restic\n")
        md.append("| target | conservator | restic | ratio | goal | result |")
        md.append("|---|---:|---:|---:|---|---|")
        for row in comparison:
            u = row["unit"]
            md.append(f"| {row['label']} | {fmt(row['conservator'], 1)} {u} | {fmt(row['restic'], 1)} {u} | "
                      f"{fmt(row['ratio'])}x | {row['goal']} | {row['result'] or ''} |")
        md.append("")
        md.append("Ratios: throughput = conservator MB/s / restic MB/s; incremental speed = restic s / "
                  "conservator s; memory and size = conservator / restic (size: final repository, "
                  "`du -sb`, after both backups).\n")
    else:
        md.append("(no conservator-vs-restic comparison: both tools must be in BENCH_TOOLS)\n")
    md.append("<details><summary>details</summary>\n")
    md.append("| tool | step | wall s | user s | sys s | sync after s | max RSS MiB |")
    md.append("|---|---|---:|---:|---:|---:|---:|")
    for tool in order:
        for step in STEPS:
            s = tools[tool]["steps"].get(step)
            if s:
                md.append(f"| {tool} | {step} | {fmt(s['wall_s'])} | {fmt(s['user_s'])} | {fmt(s['sys_s'])} | "
                          f"{fmt(s['sync_after_s'])} | {fmt(s['max_rss_mib'], 0)} |")
    md.append("")
    md.append("| tool | repo after initial MB | repo after incremental MB | growth MB |")
    md.append("|---|---:|---:|---:|")
    for tool in order:
        t = tools[tool]
        i, f_ = t.get("repo_bytes_initial"), t.get("repo_bytes_final")
        md.append(f"| {tool} | {fmt(i and i / MB, 1)} | {fmt(f_ and f_ / MB, 1)} | "
                  f"{fmt(i and f_ and (f_ - i) / MB, 1)} |")
    md.append("\n</details>\n")
    text = "\n".join(md)

    results = {"meta": meta, "corpus": {"day1": day1, "day2": day2}, "tools": tools,
               "comparison": comparison,
               "all_targets_pass": (all(r["result"] == "PASS" for r in comparison if r["result"])
                                    if comparison else None)}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(text)
    if a.strict and results["all_targets_pass"] is False:
        sys.exit(3)


if __name__ == "__main__":
    main()
