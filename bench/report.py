"""Turn a results JSON into Markdown tables (bench/RESULTS.md beside bench/results.json).

    python -m bench.report bench/results.json        # rewrite the Markdown from the JSON

Every number printed comes from the JSON; a repeated figure reads "median (min-max, n runs)".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import kb, markdown_path, mb, num, rep, table


def _section_head(title: str, sec: dict) -> list[str]:
    la = sec.get("load_average_at_start") or []
    lines = [f"## {title}", "",
             f"Command: `{sec.get('command')}`. Load average at start: {', '.join(f'{x:.2f}' for x in la)} "
             f"(1, 5, 15 min); took {sec.get('seconds')} s.", ""]
    if sec.get("status") != "ok":
        lines += [f"**This section failed:** {sec.get('error')}", ""]
    return lines


def _models(sec: dict) -> list[str]:
    lines = [sec["how"] + ".", ""]
    b1, b2 = (str(b) for b in sec["batch_sizes"])
    rows = []
    for name, d in sec["detectors"].items():
        rows.append([name, d["source"], f"{d['input_size']} px", f"{d['parameters']:,}", mb(d["file_bytes"]),
                     rep(d["ms_per_batch"][b1]), rep(d["ms_per_batch"][b2]), rep(d["images_per_s"][b2])])
    return lines + table(["detector", "source", "input", "parameters", "model.keras",
                           f"ms at batch {b1}", f"ms at batch {b2}", f"images/s at batch {b2}"], rows)


def _training(sec: dict) -> list[str]:
    p, t = sec["pipeline"], sec["train_step"]
    lines = [f"Images: {sec['images']}.", "", f"Input pipeline: {p['how']}.", ""]
    lines += table(["input size", "images/s"], [[k, rep(v)] for k, v in p.items() if k != "how"])
    lines += [f"Training step: {t['how']}.", ""]
    rows = [[k, f"{v['trainable_parameters']:,}", rep(v["ms_per_step"]), rep(v["images_per_s"])]
            for k, v in t.items() if isinstance(v, dict)]
    return lines + table(["model", "trainable parameters", f"ms per step (batch {t['batch_size']})", "images/s"], rows)


def _server(sec: dict) -> list[str]:
    s = sec.get("settings", {})
    lines = [f"Model: {sec['model']}.", "", f"Images sent: {sec['images']}.", "", f"Client: {sec['how']}", "",
             f"Server: {s.get('workers')} worker(s) x {s.get('threads')} threads, batcher max {s.get('batch_max')} "
             f"inputs / {s.get('batch_wait_ms')} ms wait, device {s.get('device')}.", ""]
    rows = []
    for mode, runs in sec["runs"].items():
        for c, r in runs.items():
            if not c.isdigit():
                continue
            lat = r["latency_ms"]
            rows.append([mode, c, num(r["requests_per_s"]), rep(r["requests_per_s_each_second"]), num(lat["p50"]),
                         num(lat["p95"]), num(lat["p99"]), r["requests"], r["errors"], num(r["mean_batch"], 2),
                         ", ".join(num(v) for v in r["worker_rss_mib"].values())])
    lines += table(["micro-batcher", "clients", "requests/s", "requests/s, each second", "p50 ms", "p95 ms", "p99 ms",
                     "answers", "errors", "mean batch", "worker RSS MiB after"], rows)
    ratio = sec["ratio_on_over_off"]
    lines += table(["clients", "requests/s on / off", "p50 latency on / off"],
                    [[c, num(v["requests_per_s"], 2), num(v["p50_latency"], 2)] for c, v in ratio.items()])
    mem = [[mode, ", ".join(num(v) for v in runs["worker_rss_mib_idle"].values()),
            ", ".join(num(v) for v in runs["worker_rss_mib_peak"].values())] for mode, runs in sec["runs"].items()]
    return lines + table(["micro-batcher", "worker RSS MiB when idle (after start)", "worker peak RSS MiB (VmHWM)"], mem)


def _yes_no(x) -> str:
    return "-" if x is None else ("yes" if x else "no")


BROWSER_ROWS = [
    ("classifier files (model.json + shards + metadata.json)", lambda m: kb(m["files"]["total_bytes"])),
    ("classifier weights quantization", lambda m: m["files"]["quantization"]),
    ("classifier input size, px", lambda m: m["input_size"]),
    ("face model files (face/)", lambda m: f"{kb(m['files']['face_total_bytes'])} ({m['files']['face_quantization']})"),
    ("face model input size, px; smallest face judged, px",
     lambda m: f"{m['face_model']['input_size']}; {m['face_model']['min_face_side']}"),
    ("TF.js backend (SIMD)", lambda m: f"{m['backend']['probe']} ({'yes' if m['backend']['simd'] else 'no'}); "
                                         f"extension's own: {m['backend']['extension_offscreen']}"),
    ("wasm backend start, ms", lambda m: num(m["backend_start_ms"])),
    ("classifier load (fetch + loadGraphModel + warm-up), ms", lambda m: rep(m["model_load_ms"])),
    ("face model load (fetch + loadGraphModel + warm-up), ms", lambda m: rep(m["face_model_load_ms"])),
    ("classifier per face crop, median / p95 ms", lambda m: rep(m["inference_ms"], 2, p95=True)),
    ("FACES", None),  # one group of rows per named picture (_picture_rows)
    ("offscreen document cold start to first answer, ms", lambda m: rep(m["offscreen_cold_start_ms"])),
    ("offscreen document check per face picture, median / p95 ms", lambda m: rep(m["offscreen_check_ms"], 1, p95=True)),
    ("  step: decode (createImageBitmap), ms", lambda m: rep(m["check_steps_ms"]["decode_ms"], 2)),
    ("  step: read pixels, ms", lambda m: rep(m["check_steps_ms"]["pixels_ms"], 2)),
    ("  step: find the faces, ms", lambda m: rep(m["check_steps_ms"]["find_ms"], 2)),
    ("  step: crop + classify the faces, ms", lambda m: rep(m["check_steps_ms"]["classify_ms"], 2)),
    ("  step: thumbnail (DOM canvas toDataURL), ms", lambda m: rep(m["check_steps_ms"]["thumbnail_ms"], 2)),
    ("right-click to verdict, first (models loading), ms", lambda m: num(m["right_click_first_ms"])),
    ("right-click to verdict, face found, models loaded, median / p95 ms", lambda m: rep(m["right_click_ms"], p95=True)),
    ("right-click target met (p95 within the target)", lambda m: _yes_no(m["right_click_target_met"])),
    ("right-click to 'No face found', median / p95 ms", lambda m: rep(m["right_click_no_face_ms"], p95=True)),
    ("  no-face candidates left out (the finder saw a face)", lambda m: len(m["no_face_pictures_left_out"])),
    ("feed: badge pass, navigation to last verdict, ms", lambda m: rep(m["feed_pass_ms"])),
    ("feed: navigation to first badge, ms", lambda m: rep(m["feed_first_badge_ms"])),
    ("feed: long tasks (> 50 ms) per pass", lambda m: ", ".join(str(x) for x in m["feed_long_tasks"])
     + ("" if m["feed_longtask_observed"] else " (longtask entries not supported)")),
    ("feed: longest long task per pass, ms", lambda m: ", ".join("none" if x is None else num(x) for x in m["feed_longest_task_ms"])),
    ("feed: largest main-thread stall (timer lateness), ms", lambda m: rep(m["feed_main_thread_stall_ms"])),
    ("image downloads (page img / content script / worker)", lambda m: "{page_img} / {content_script} / {extension_worker}".format(**m["image_fetches"]) if m.get("image_fetches") else "-"),
    ("whole extension build", lambda m: kb(m["extension_bytes"])),
    ("Chromium", lambda m: m["chromium"]),
]


def _picture_rows(key: str, label: str) -> list:
    def face(fn):
        return lambda m: fn(m["faces"][key])

    return [
        (f"**{label}**: faces found (views)", face(lambda p: f"{p['faces_found']} ({p['views']} view{'s' if p['views'] > 1 else ''})"
                                                   + (f", {p['too_small']} too small" if p["too_small"] else ""))),
        ("  decode (createImageBitmap + getImageData), ms", face(lambda p: rep(p["decode_ms"]))),
        ("  find the faces, median / p95 ms", face(lambda p: rep(p["find_ms"], p95=True))),
        ("  find + crop + classify every face, median / p95 ms", face(lambda p: rep(p["check_ms"], p95=True))),
    ]


def _cell(fn, m) -> str:
    """A figure, or '-' where this results file (an older run) lacks it."""
    try:
        return fn(m)
    except (KeyError, TypeError, AttributeError):
        return "-"


def _browser(sec: dict) -> list[str]:
    models = sec["models"]
    lines = [f"Images: {sec['images']}; feed page of {sec['feed_images']} images.", ""]
    lines += [f"- **{k}**: {m['model']}" for k, m in models.items()] + [""]
    target = sec.get("right_click_target_ms")
    for k, m in models.items():
        if target is not None and m.get("right_click_ms"):
            met = "met" if m.get("right_click_target_met") else "NOT met"
            lines.append(f"- **{k}**: right-click to verdict on a picture with a face, p95 {num(m['right_click_ms']['p95'])} ms "
                         f"against the {target} ms target: **{met}**; to 'No face found': p95 "
                         f"{num((m.get('right_click_no_face_ms') or {}).get('p95'))} ms.")
    lines += [""] if target is not None else []
    rows = []
    for label, fn in BROWSER_ROWS:
        if fn is None:
            for key, name in (sec.get("pictures") or {}).items():
                rows += [[lab, *(_cell(f, m) for m in models.values())] for lab, f in _picture_rows(key, name)]
            continue
        rows.append([label, *(_cell(fn, m) for m in models.values())])
    lines += table(["figure", *models], rows)
    files = []
    for k, m in models.items():
        files += [[k, name, kb(n)] for name, n in {**m["files"]["bytes"], **m["files"].get("face_bytes", {})}.items()]
    lines += table(["model", "file", "size"], files)
    lines += ["How each figure was taken:", ""] + [f"- {k}: {v}" for k, v in sec["how"].items()] + [""]
    return lines


def _faces(sec: dict) -> list[str]:
    lines = [sec["how"] + ".", ""]
    port = sec.get("find_ms_keras_port", {})
    lines += table(["picture", "faces found", "find faces, ms (median / p95)", "CPU ms (median / p95)",
                     "the Keras port, eager: ms / CPU ms (medians)"],
                    [[name, sec["faces_found"][name], rep(s, p95=True), rep(sec["find_cpu_ms"][name], p95=True),
                      f"{rep(port[name]['wall'], 1)} / CPU {rep(port[name]['cpu'], 1)}" if name in port else "-"]
                     for name, s in sec["find_ms"].items()])
    pictures = list(next(iter(sec["check_ms"].values())))
    lines += table(["detector", *(f"whole check, {p}, ms / CPU ms (medians)" for p in pictures)],
                    [[name, *(f"{rep(s[p], 1)} / {rep(sec['check_cpu_ms'][name][p], 1)}" for p in pictures)]
                     for name, s in sec["check_ms"].items()])
    for name, t in sec.get("targets", {}).items():
        lines.append(f"- target {name}: at most {t['target']} ms; worst median {t['worst_median_wall']:.1f} ms wall "
                     f"({'met' if t['met_wall'] else 'NOT met'}), {t['worst_median_cpu']:.1f} ms CPU "
                     f"({'met' if t['met_cpu'] else 'NOT met'})")
    lines.append("")
    found = sec.get("faces_v1_found")
    if found:
        lines += [f"A face is found in {found['found']:,} of {found['images']:,} faces-v1 images ({found['share']:.2%}).", ""]
        lines += table(["source", "found", "images", "share"],
                        [[s, v["found"], v["images"], f"{v['share']:.2%}"] for s, v in found["per_source"].items()])
    return lines


def _face_recall(sec: dict) -> list[str]:
    sizes = [str(s) for s in sec["sizes_px"]]
    lines = [f"Scenes: {sec['scenes']}; faces from {sec['faces_from']}. Found = a judged face's box centre inside "
             f"the pasted square. Tiles: the third look (tile side {sec['tile_side']} px) that issue 20 added.", ""]
    lines += table(["search", *(f"{s} px" for s in sizes)],
                    [[name, *(f"{r[s]:.0%}" for s in sizes)] for name, r in sec["recall"].items()]
                    + [["found face's box side (median, px)", *(str(sec["median_box_side_px"][s] or "-") for s in sizes)]])
    places = list(next(iter(sec["recall_by_place"].values())))
    lines += table(["search", *places], [[name, *(f"{r[p]:.0%}" for p in places)] for name, r in sec["recall_by_place"].items()])
    lines += [f"- smallest pasted side from which at least 90% are found at every larger size: "
              + ", ".join(f"{k} {v} px" for k, v in sec["smallest_side_found_90pct"].items()),
              "- face search on a 1200x800 photo without a face, median / p95 ms: "
              + ", ".join(f"{k} {rep(v, p95=True)}" for k, v in sec["no_face_search_ms"].items()), ""]
    return lines


def _face_stability(sec: dict) -> list[str]:
    lines = [f"{sec['how']}; sizes {', '.join(map(str, sec['sizes_px']))} px.", ""]
    for name, m in sec["models"].items():
        lines += [f"Model: bundled {name} ({m['version']}).", ""]
        lines += table(["face", "found", "p(fake) spread: alone", "in the scene", "over all", "largest move from alone at 256 px", "verdicts"],
                       [[n, r["found"], r.get("spread_alone"), r.get("spread_scene"), r["spread"], r["largest_move_from_alone_256"],
                         ", ".join(r["verdicts"])] for n, r in m["faces"].items()])
        lines += [f"- {name}: median spread alone {m.get('median_spread_alone')}, in the scene {m.get('median_spread_scene')}, "
                  f"over all {m['median_spread']} (largest {m['max_spread']}); faces whose verdict changes with size, "
                  f"compression or scene: {m['faces_whose_verdict_changes']} of {len(m['faces'])}", ""]
    return lines


def _video(sec: dict) -> list[str]:
    from bench.video import markdown

    return markdown(sec)


def _provenance(sec: dict) -> list[str]:
    from bench.provenance import markdown

    return markdown(sec)


def _scan(sec: dict) -> list[str]:
    from bench.scan import markdown

    return markdown(sec)


def _soak(sec: dict) -> list[str]:
    lines = [f"Model: {sec['model']}. Images: {sec['images']}.", "", sec["how"] + ".", ""]
    lat = sec.get("latency_ms") or {}
    lines += table(["figure", "value"], [
        ["requests served (200)", f"{sec['served']:,} ({sec['requests_per_s']} /s)"],
        ["answers by status", ", ".join(f"{k}: {v:,}" for k, v in sorted(sec["statuses"].items()))],
        ["5xx answers", sec["server_errors_5xx"]],
        ["connection errors by kind (each retried)", ", ".join(f"{k}: {v}" for k, v in sec["connection_errors"].items()) or "none"],
        ["requests sent again", sec["retried"]],
        ["requests lost (sent, never answered)", sec["lost"]],
        ["latency p50 / p99, ms", f"{lat.get('p50', '-')} / {lat.get('p99', '-')}"],
        ["load average (1 min) during the run", ", ".join(f"{x:.1f}" for x in sec["load_average_during"])],
    ])
    lines += ["Faults: " + "; ".join(f"{e['what']} at {e['at_s']} s" for e in sec["events"]) + ".", ""]
    lines += ["After the run: " + "; ".join(f"{name}: {a['workers']} workers, {a['sharing_redis']} of {a['health_answers']} "
                                            "health answers sharing Redis again (limit and cache)"
                                            + (f", {a['failed_requests_logged']} failed requests logged" if "failed_requests_logged" in a else "")
                                            for name, a in sec["after"].items()) + ".", ""]
    examples = [e for a in sec["after"].values() for e in a.get("error_examples", [])]
    if examples:
        lines += ["Failed requests logged: " + "; ".join(f"`{e}`" for e in examples[:3]), ""]
    c = sec["cache_hit"]
    lines += table(["result cache hit", "median / p95 ms"], [
        ["HTTP round trip of a repeated picture", rep(c["http_round_trip_ms"], 2, p95=True)],
        ["the server's time_ms on a hit", rep(c["server_time_ms"], 2, p95=True)],
        ["the cache's lookup in Redis alone", rep(c["redis_lookup_ms"], 2, p95=True)],
    ])
    t = c["target_p95_ms"]
    lines += [f"- target: a hit under {t['target']} ms at p95 (the server's time): {t['server_time_p95']:.2f} ms, "
              f"{'met' if t['met'] else 'NOT met'}; {c['hits']} hits of {c['requests']} repeats", ""]
    return lines


def _tiny_backbones(sec: dict) -> list[str]:
    from bench.tiny_backbones import markdown

    return markdown(sec)


RENDER = {"models": ("Models: size and CPU inference", _models), "faces": ("Faces: finding them, and the whole check", _faces), "face-recall": ("Faces found, by size and place (composed scenes)", _face_recall), "face-stability": ("One face at many sizes: how far its p(fake) moves", _face_stability), "training": ("Training throughput on the CPU", _training),
          "server": ("Server under load", _server), "soak": ("Soak: two servers, one Redis, a killed worker, Redis restarted", _soak), "browser": ("In the browser (extension, TF.js wasm)", _browser),
          "tiny-backbones": ("Backbones and input sizes for tiny: model files and wasm time per face", _tiny_backbones),
          "video": ("Video checks in the browser (extension, TF.js wasm)", _video),
          "provenance": ("Provenance in the browser: parse cost per picture, and the extension's size", _provenance),
          "scan": ("unmask scan (Apache Beam) against unmask predict, on 1 and 2 worker processes", _scan)}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = ["# Benchmark results" + (" (SMOKE RUN: tiny settings, not figures to quote)" if results.get("smoke") else ""), "",
             f"Written by `{results['command']}` from {results['started']} to {results.get('finished')}. "
             "Every figure below was measured by that run; repeated figures read median (min-max, n runs).", "",
             f"Machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), {m['memory_gib']} GiB memory, "
             f"{m['os']} (kernel {m['kernel']}); Python {m['python']}, Node {m['node']}, {m['chromium']}. "
             "The machine may be shared: each section gives the load average when it started.", "",
             f"Images: {results['data']}.", ""]
    for u in results.get("updates", []):
        lines += [f"Updated later: {', '.join(u['sections'])} by `{u['command']}` at {u['started']} "
                  "(those sections' figures come from that run).", ""]
    for name, sec in results["sections"].items():
        title, render = RENDER[name]
        lines += _section_head(title, sec)
        if sec.get("status") == "ok":
            lines += render(sec)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(results: dict, path: Path) -> Path:
    Path(path).write_text(markdown(results))
    return Path(path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.report RESULTS.json")
    src = Path(sys.argv[1])

    print(write_markdown(json.loads(src.read_text()), markdown_path(src)))
