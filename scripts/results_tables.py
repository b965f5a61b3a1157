"""The result tables of README.md and docs/results.md, made from the committed result files (never typed in).

    python scripts/results_tables.py            # print every table
    python scripts/results_tables.py --write    # and replace each <!-- NAME:begin --> ... <!-- NAME:end --> block

Tables: table1 (results/table1/, beside the study's figures), noise (CNN_4's cells over seeds: seed 0 in
results/table1/, seeds 1-4 in results/cnn4-seeds/seedN/), sigmoid (the two readings of the study's sigmoid column on
CNN_4, over seeds), readings (both readings, every model, seed 0), tuned (the study's tuned CNN_2,
results/cnn2-tuned.json), search (our search, results/cnn2-search/), shared_search (two workers on PostgreSQL,
results/cnn2-pg/ and cnn2-pg-37/, beside the study's parameters over the same seeds, results/cnn2-study-seeds/),
search_spend (where those searches' worker-minutes went), best (specs/fmnist_best.yaml,
results/fmnist_best.json), attention (specs/fmnist_vit.yaml, results/fmnist_vit.json), best95 (the attempts at 95%, specs/fmnist_95*.yaml over seeds, results/SPEC/seedN.json),
checks (results/spec_checks.json), distributed and scaling (results/distributed_speed.json), data_scan and data_epochs
(results/data_speed.json).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("CNN_1", "CNN_2", "CNN_3", "CNN_4", "CNN_5")
# (title, cell suffix) in the study's column order; its sigmoid column is read as one-vs-all BCE (docs/results.md)
COLUMNS = (("No Augment. Softmax", "noaug-softmax"), ("Augment. Softmax", "aug-softmax"),
           ("No Augment. Sigmoid", "noaug-sigmoid"), ("Augment. Sigmoid", "aug-sigmoid"))
# Issue #24's attempts at 95% in an hour on two CPU cores, in the order they were made (results/SPEC/seedN.json).
ATTEMPTS_95 = ("fmnist_95", "fmnist_95_wide", "fmnist_95_long", "fmnist_95_budget")
# The two-worker PostgreSQL searches of CNN_2: issue #24's, then #37's with a budget per trial (results/NAME/).
SHARED_SEARCHES = ("cnn2-pg", "cnn2-pg-37")
# The study's Table 1 (its published figures, for comparison), in the same column order.
STUDY = {"CNN_1": (89.16, 89.13, 84.11, 83.38), "CNN_2": (90.25, 89.43, 85.85, 86.61),
         "CNN_3": (88.50, 88.37, 81.56, 84.72), "CNN_4": (86.95, 85.59, 81.20, 79.39),
         "CNN_5": (88.23, 88.01, 85.93, 84.98)}
STUDY_TUNED = 92.91
STUDY_TUNED_PARAMS = {"batch_size": 64, "lr": 3.593e-4, "rs": 3.593e-4, "num_epochs": 10}  # its best, as published


DOCUMENTS = (ROOT / "README.md", *(ROOT / "docs" / name for name in ("results.md", "experiments.md", "zoo.md",
                                                                      "performance.md", "data.md")))


def read(path: Path) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result.get("test_acc"), (int, float)) else None


def machine_of(result: dict) -> str:
    machine = result.get("machine", {})
    return f"{machine.get('cpu', '?')} ({machine.get('cpu_class', '?')}), {machine.get('threads', '?')} thread(s)"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def mean_sd(scores: list[float]) -> str:
    """'92.10 ± 0.21' over several scores, '92.10' for one."""
    spread = f" ± {statistics.stdev(scores):.2f}" if len(scores) > 1 else ""
    return f"{statistics.mean(scores):.2f}{spread}"


def table1(folder: Path) -> str:
    cells = {(m, suffix): read(folder / f"{m}-{suffix}.json") for m in MODELS for _, suffix in COLUMNS}
    rows = ["| Model | " + " | ".join(f"{title} (ours / study)" for title, _ in COLUMNS) + " | train s per cell |",
            "|---|" + "---|" * (len(COLUMNS) + 1)]
    missing = []
    for model in MODELS:
        done = [c for (m, _), c in cells.items() if m == model and c]
        seconds = statistics.mean(c["train_seconds"] for c in done) if done else None
        row = []
        for (title, suffix), study in zip(COLUMNS, STUDY[model]):
            cell = cells[(model, suffix)]
            if cell:
                row.append(f"{100 * cell['test_acc']:.2f}% / {study:.2f}%")
            else:
                row.append(f"– / {study:.2f}%")
                missing.append(f"{model}-{suffix} (about {minutes(seconds)} here)" if seconds else f"{model}-{suffix}")
        rows.append(f"| {model} | " + " | ".join(row) + f" | {f'{seconds:.0f}' if seconds else '–'} |")
    machines = sorted({machine_of(c) for c in cells.values() if c})
    text = "\n".join(rows) + f"\n\n{sum(1 for c in cells.values() if c)} of {len(cells)} cells ran, on: {'; '.join(machines)}."
    if missing:
        text += " Not run yet: " + ", ".join(missing) + "."
    return text


def noise(table: Path, seeds: Path) -> str:
    rows = ["| CNN_4 cell | seeds | test accuracy, mean ± sd | min – max | study |", "|---|---|---|---|---|"]
    for (title, suffix), study in zip(COLUMNS, STUDY["CNN_4"]):
        files = [table / f"CNN_4-{suffix}.json", *sorted(seeds.glob(f"seed*/CNN_4-{suffix}.json"))]
        scores = [100 * r["test_acc"] for r in map(read, files) if r]
        if not scores:
            continue
        rows.append(f"| {title} | {len(scores)} | {mean_sd(scores)} | "
                    f"{min(scores):.2f} – {max(scores):.2f} | {study:.2f} |")
    return "\n".join(rows)


def sigmoid(table: Path, seeds: Path) -> str:
    rows = ["| CNN_4 | loss | seeds | test accuracy, mean ± sd | study |", "|---|---|---|---|---|"]
    for augment, study in (("noaug", STUDY["CNN_4"][2]), ("aug", STUDY["CNN_4"][3])):
        for loss, what in (("sigmoid", "sigmoid: one-vs-all BCE"), ("sigmoid-ce", "sigmoid-ce: sigmoid, then cross-entropy")):
            name = f"CNN_4-{augment}-{loss}.json"
            scores = [100 * r["test_acc"] for r in map(read, [table / name, *sorted(seeds.glob(f"seed*/{name}"))]) if r]
            if scores:
                rows.append(f"| {'with' if augment == 'aug' else 'without'} augmentation | {what} | {len(scores)} | "
                            f"{mean_sd(scores)} | {study:.2f} |")
    return "\n".join(rows)


READINGS = (("sigmoid-ce", "sigmoid-ce"), ("sigmoid", "sigmoid (BCE)"))  # (cell suffix, column title)


def readings(table: Path) -> str:
    """Each sigmoid cell under both readings beside the study's, and each reading's mean distance from the study
    over the cells where both ran (seed 0, so one run per cell: see the noise table)."""
    rows = ["| Model | augmentation | " + " | ".join(title for _, title in READINGS) + " | study |",
            "|---|---|" + "---|" * (len(READINGS) + 1)]
    distance = {loss: [] for loss, _ in READINGS}
    for model in MODELS:
        for augment, study in (("noaug", STUDY[model][2]), ("aug", STUDY[model][3])):
            found = {loss: read(table / f"{model}-{augment}-{loss}.json") for loss, _ in READINGS}
            if all(found.values()):
                for loss, result in found.items():
                    distance[loss].append(abs(100 * result["test_acc"] - study))
            cells = [f"{100 * found[loss]['test_acc']:.2f}" if found[loss] else "–" for loss, _ in READINGS]
            rows.append(f"| {model} | {'with' if augment == 'aug' else 'without'} | " + " | ".join(cells) + f" | {study:.2f} |")
    both = len(distance[READINGS[0][0]])
    if both:
        closer = [min(distance, key=lambda loss: distance[loss][i]) for i in range(both)]
        rows.append(f"| mean distance from the study, points ({both} cells with both) | | "
                    + " | ".join(f"{statistics.mean(distance[loss]):.2f}" for loss, _ in READINGS) + " | |")
        rows.append(f"| cells where it is the closer reading (of {both}) | | "
                    + " | ".join(str(closer.count(loss)) for loss, _ in READINGS) + " | |")
    return "\n".join(rows)


def not_run(path: Path) -> str:
    return f"Not run yet (`{path.relative_to(ROOT)}` is missing)."


def outcome(result: dict) -> str:
    """A run's test accuracy, best validation (epoch) and training time, as three table cells."""
    return (f"**{100 * result['test_acc']:.2f}%** | {100 * result['best_val_acc']:.2f}% ({result['best_epoch']}) | "
            f"{minutes(result['train_seconds'])}")


def tuned(path: Path) -> str:
    result = read(path)
    if not result:
        return not_run(path)
    return (f"| | test accuracy | best validation (epoch) | training |\n|---|---|---|---|\n"
            f"| fmnist ({machine_of(result)}) | {outcome(result)} |\n"
            f"| the study | {STUDY_TUNED:.2f}% | – | – |")


def parameters(chosen: dict) -> str:
    return ", ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in chosen.items())


def study_param_count(model: str) -> int:
    """The study's own parameter count of one of its CNNs, from the spec's `expect:` block."""
    import yaml

    return yaml.safe_load((ROOT / "specs" / f"{model.lower()}.yaml").read_text())["expect"]["params"]["total"]


def search(folder: Path) -> str:
    try:
        found = json.loads((folder / "search.json").read_text())
    except (OSError, ValueError):
        found = None
    best = read(folder / "best.json")
    if not found or not best:
        return not_run(folder / ("best.json" if found else "search.json"))
    budget = f", {found['minutes']:g} min budget" if found.get("minutes") else ""
    return (f"| | trials ({found['pruner']}{budget}) | best trial's parameters | its validation | retrained: test "
            f"accuracy | retrained: best validation (epoch) | retrain |\n|---|---|---|---|---|---|---|\n"
            f"| fmnist search ({machine_of(best)}) | {found['trials']} | {parameters(found['best_params'])} | {100 * found['best_val_acc']:.2f}% | "
            f"{outcome(best)} |\n"
            f"| the study's search | – | {parameters(STUDY_TUNED_PARAMS)} | – | {STUDY_TUNED:.2f}% | – | – |")


def over_seeds(results: list[dict]) -> str:
    """Test accuracy over seeds as two table cells: mean ± sd, and each seed's."""
    scores = [100 * r["test_acc"] for r in results]
    seeds = ", ".join(f"{score:.2f} (seed {r['hparams']['seed']})" for score, r in zip(scores, results))
    return f"**{mean_sd(scores)}%** | {seeds}"


def study_param_runs(study_seeds: Path) -> list[Path]:
    """The study's tuned parameters run here: seed 0 is results/cnn2-tuned.json, the other seeds grid cells."""
    return [study_seeds.parent / "cnn2-tuned.json", *sorted(study_seeds.glob("seed*/CNN_2-aug-softmax.json"))]


def search_settings(folder: Path) -> dict:
    """A shared search's settings from its search.json (one written before --fidelity judged by epochs)."""
    found = json.loads((folder / "search.json").read_text()) if (folder / "search.json").exists() else {}
    return {"pruner": found.get("pruner", "?"), "fidelity": found.get("fidelity", "epochs"),
            "budget": found.get("budget_per_trial")}


def search_label(folder: Path) -> str:
    """'cnn2-pg-37: halving by images, 23 min per trial' or 'cnn2-pg: hyperband by epochs, epochs searched'."""
    settings = search_settings(folder)
    length = f"{settings['budget']:g} min per trial" if settings["budget"] else "epochs searched"
    return f"`{folder.name}`: {settings['pruner']} by {settings['fidelity']}, {length}"


def retrain_files(folder: Path) -> list[Path]:
    """A search's best trial retrained: best.json (its first seed), then best-seedS.json."""
    return [folder / "best.json", *sorted(folder.glob("best-seed*.json"))]


def shared_trials(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((folder / "trials").glob("trial-*.json"))]


def shared_search(folders: list[Path], study_seeds: Path) -> str:
    """Each two-worker PostgreSQL search: its trials (from the per-trial files), its best retrained over seeds, and
    the study's own parameters over the same seeds."""
    if not (searched := {folder: trials for folder in folders if (trials := shared_trials(folder))}):
        return not_run(folders[0] / "trials")
    rows = ["| | trials | parameters | best validation | test accuracy, mean ± sd | each seed | training per run |",
            "|---|---|---|---|---|---|---|"]
    for folder, trials in searched.items():
        states = {state: sum(t["state"] == state for t in trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
        workers = len({t["worker"] for t in trials})
        best = max((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
        budget = search_settings(folder)["budget"]
        chosen = parameters(best["params"]) + (f", budget {budget:g} min" if budget else "")
        retrains = [r for r in map(read, retrain_files(folder)) if r]
        found = f"{len(trials)} ({states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed) by {workers} workers"
        if retrains:
            rows.append(f"| {search_label(folder)}; best trial {best['number']} retrained ({machine_of(retrains[0])}) | "
                        f"{found} | {chosen} | {100 * best['value']:.2f}% | {over_seeds(retrains)} | "
                        f"{minutes(statistics.mean(r['train_seconds'] for r in retrains))} |")
        else:
            rows.append(f"| {search_label(folder)}; best trial {best['number']} (not retrained yet) | {found} | "
                        f"{chosen} | {100 * best['value']:.2f}% | – | – | – |")
    reruns = [r for r in map(read, study_param_runs(study_seeds)) if r]
    if reruns:
        rows.append(f"| the study's parameters, rerun here ({machine_of(reruns[0])}) | – | {parameters(STUDY_TUNED_PARAMS)} | – | "
                    f"{over_seeds(reruns)} | {minutes(statistics.mean(r['train_seconds'] for r in reruns))} |")
    rows.append(f"| the study | – | {parameters(STUDY_TUNED_PARAMS)} | – | {STUDY_TUNED:.2f}% (one run) | – | – |")
    return "\n".join(rows)


def judged_at(trial: dict, settings: dict) -> str:
    """Where a trial was last judged, in its search's resource: 'after epoch 3', 'after 5,555 training images'."""
    if not trial["val_acc_per_epoch"]:
        return "before its first judgement"
    last = trial.get("judged_at", range(1, len(trial["val_acc_per_epoch"]) + 1))[-1]
    if settings["fidelity"] == "images":
        return f"after {last:,} training images"
    return f"after {last / 1000:.0f} s of training" if settings["budget"] else f"after epoch {last}"


def search_spend(folders: list[Path]) -> str:
    """Where each shared search's worker-minutes went: complete trials, and the others by where they were stopped
    (by the pruner, or by the worker's --minutes)."""
    if not (searched := {folder: trials for folder in folders if (trials := shared_trials(folder))}):
        return not_run(folders[0] / "trials")
    rows = ["| search | trials that | trials | worker-minutes | share |", "|---|---|---|---|---|"]
    for folder, trials in searched.items():
        settings, label = search_settings(folder), search_label(folder)
        groups: dict[str, list[float]] = {}
        for trial in sorted(trials, key=lambda t: (t["state"] != "COMPLETE", len(t["val_acc_per_epoch"]))):
            ended = ("completed" if trial["state"] == "COMPLETE" else
                     f"{trial['state'].lower()} {judged_at(trial, settings)}")
            groups.setdefault(ended, []).append(trial["seconds"] or 0.0)
        spent = sum(sum(group) for group in groups.values())
        for ended, seconds in groups.items():
            rows.append(f"| {label} | {ended} | {len(seconds)} | {sum(seconds) / 60:.0f} | "
                        f"{100 * sum(seconds) / spent:.0f}% |")
        rows.append(f"| {label} | **all** | {len(trials)} | {spent / 60:.0f} | 100% |")
    return "\n".join(rows)


def best_spec(path: Path) -> str:
    result = read(path)
    if not result:
        return not_run(path)
    return (f"| spec | params | epochs | test accuracy | best validation (epoch) | training | machine |\n"
            f"|---|---|---|---|---|---|---|\n"
            f"| {result['name']} | {result['params']:,} | {len(result['epochs'])} | {outcome(result)} | {machine_of(result)} |\n"
            f"| the study's best (CNN_2 tuned) | {study_param_count('CNN_2'):,} | {STUDY_TUNED_PARAMS['num_epochs']} | "
            f"{STUDY_TUNED:.2f}% | – | – | – |")


def attention(results: Path) -> str:
    """The small attention spec (results/fmnist_vit.json) beside fmnist_best and CNN_2's best Table 1 cell."""
    vit = read(results / "fmnist_vit.json")
    if not vit:
        return not_run(results / "fmnist_vit.json")
    cells = [(cell, result) for cell in sorted((results / "table1").glob("CNN_2-*.json")) if (result := read(cell))]
    rows = ["| spec | params | epochs | test accuracy | best validation (epoch) | training | machine |",
            "|---|---|---|---|---|---|---|"]
    for label, result in (("fmnist_vit (attention)", vit), ("fmnist_best", read(results / "fmnist_best.json")),
                          *((f"CNN_2, best Table 1 cell ({cell.stem[6:]})", result)
                            for cell, result in [max(cells, key=lambda item: item[1]["test_acc"])] if cells)):
        if result:
            rows.append(f"| {label} | {result['params']:,} | {len(result['epochs'])} | {outcome(result)} | {machine_of(result)} |")
    return "\n".join(rows)


def seed_runs(folder: Path) -> list[dict]:
    """One spec's runs over seeds, folder/seedN.json, in seed-file order."""
    return [r for r in map(read, sorted(folder.glob("seed*.json"))) if r]


def best95(results: Path) -> str:
    """The attempts at 95% (ATTEMPTS_95, results/SPEC/seedN.json): each seed, each spec's mean ± sd, the target, the commands."""
    attempts = {spec: runs for spec in ATTEMPTS_95 if (runs := seed_runs(results / spec))}
    if not attempts:
        return not_run(results / ATTEMPTS_95[0] / "seed0.json")
    rows = ["| spec | seed | params | epochs | test accuracy | best validation (epoch) | training | machine |",
            "|---|---|---|---|---|---|---|---|"]
    for spec, runs in attempts.items():
        rows += [f"| {r['name']} | {r['hparams']['seed']} | {r['params']:,} | {epochs_trained(r)} | {outcome(r)} | "
                 f"{machine_of(r)} |" for r in runs]
        if len(runs) > 1:
            rows.append(f"| {spec}, mean ± sd | {len(runs)} seeds | | | **{mean_sd([100 * r['test_acc'] for r in runs])}%** | | | |")
    rows.append("| the target (issue #24) | one seed | | | ≥ 95.00% | | ≤ 60 min | 2 CPU cores |")
    rows.append("| the target (issue #37) | mean of 3 seeds | | | ≥ 95.00% | | a 60 min budget | 2 CPU cores |")
    commands = "\n".join(f"- `{r['command']}`" for runs in attempts.values() for r in runs)
    return "\n".join(rows) + f"\n\nCommands, as recorded in the result files:\n\n{commands}"


def epochs_trained(result: dict) -> str:
    """'70', or for a budgeted run what its budget bought: '71.42 (60 min budget)'."""
    budget = result.get("budget")
    return f"{budget['epochs']:.2f} ({budget['minutes']:g} min budget)" if budget else str(len(result["epochs"]))


def probes95(folder: Path) -> str:
    """Short budgeted runs of candidate changes to the 95% spec, results/probe95/NAME.json: each the same budget on
    the same machine, so what a change buys in a fixed time is compared directly."""
    runs = {path.stem: r for path in sorted(folder.glob("*.json")) if (r := read(path))}
    if not runs:
        return not_run(folder / "baseline.json")
    rows = ["| probe | params | epochs bought | test accuracy | best validation (epoch) | training | machine |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| {name} | {r['params']:,} | {epochs_trained(r)} | {outcome(r)} | {machine_of(r)} |"
             for name, r in runs.items()]
    commands = "\n".join(f"- {name}: `{r['command']}`" for name, r in runs.items())
    return "\n".join(rows) + f"\n\nCommands, as recorded in the result files:\n\n{commands}"


def checks(path: Path) -> str:
    if not path.is_file():
        return not_run(path)
    result = json.loads(path.read_text())
    machine = result["machine"]
    where = (f"{machine['cpu']} ({machine.get('cpu_class', '?')}), {machine['cores']} cores, torch {machine['torch']}, "
             f"`{path.relative_to(ROOT)}`")
    rows = [f"| command ({where}) | seconds, median of {result['repeat']} | peak memory |", "|---|---|---|"]
    rows += [f"| `{row['command']}` | {row['seconds']:.2f} | {row['peak_mb']:,} MB |" for row in result["checks"]]
    return "\n".join(rows)


def distributed(path: Path) -> str:
    """One process against two on this machine (results/distributed_speed.json, benchmarks/distributed_speed.py)."""
    if not path.is_file():
        return not_run(path)
    result = json.loads(path.read_text())
    machine = result["machine"]
    rows = [f"| spec, images ({machine['cpu']} ({machine['cpu_class']}), {machine['cores']} cores, torch "
            f"{machine['torch']}) | 1 process x 2 threads | 2 processes x 1 thread | ratio | 2 x 1, batch norm not "
            f"synchronised | gradient | gloo all-reduce | share of a step |", "|---|---|---|---|---|---|---|---|"]
    rows += [f"| {row['spec']}, {row['images']:,} | {row['one_process_two_threads_s']:.2f} s | "
             f"{row['two_processes_one_thread_s']:.2f} s | {row['ratio']:.2f} | "
             f"{'–' if row.get('two_processes_no_sync_bn_s') is None else format(row['two_processes_no_sync_bn_s'], '.2f') + ' s'} | "
             f"{row['gradient_mb']} MB | "
             f"{row['all_reduce_ms']:.2f} ms ({row['gloo_gbps']} GB/s) | {100 * row['all_reduce_share']:.1f}% of "
             f"{row['step_ms']:.1f} ms |" for row in result["measured"]]
    return "\n".join(rows)


def scaling(path: Path) -> str:
    """The expected scaling on 8 GPUs and 2 nodes, on paper (the same file's on_paper and assumed)."""
    if not path.is_file():
        return not_run(path)
    result = json.loads(path.read_text())
    rows = ["| model | params | gradient | compute / step | 8 GPUs: all-reduce, efficiency | 2 nodes x 8: all-reduce, "
            "efficiency |", "|---|---|---|---|---|---|"]
    for row in result["on_paper"]:
        cells = [f"{row[f'{where}_all_reduce_ms']:.3f} ms, {100 * row[f'{where}_efficiency_no_overlap']:.0f}–"
                 f"{100 * row[f'{where}_efficiency_overlapped']:.0f}%" for where in ("node_8", "nodes_2x8")]
        rows.append(f"| {row['model']} | {row['params']:,} | {row['gradient_mb']} MB | {row['compute_ms']:.2f} ms | "
                    f"{cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def _machine_words(machine: dict) -> str:
    return f"{machine['cpu']} ({machine['cpu_class']}), {machine['cores']} cores, torch {machine['torch']}"


def data_scan(path: Path) -> str:
    """Scanning, checking and decoding a folder (results/data_speed.json, benchmarks/data_speed.py)."""
    if not path.is_file():
        return not_run(path)
    result = json.loads(path.read_text())
    scan = result["scan"]
    rows = [f"| step ({_machine_words(result['machine'])}) | figure |", "|---|---|",
            f"| list {scan['images']:,} small images | {scan['list_s']:.1f} s |",
            f"| check them (every image's header) | {scan['check_headers_s']:.1f} s |",
            f"| peak memory of both | {scan['peak_mb']:,} MB |"]
    names = {"png28": "28-px PNG", "jpeg256": "256-px JPEG"}
    rows += [f"| decode {names[row['images']]}, {row['processes']} process(es) | {row['per_process_per_s']:,.0f} images/s "
             f"per process |" for row in result["decode"]]
    return "\n".join(rows)


def data_epochs(path: Path) -> str:
    """An epoch from RAM, read from the cache file by index, and through a memory map of it (the same file); and
    random batches under a memory limit, read by index and through the map."""
    if not path.is_file():
        return not_run(path)
    result = json.loads(path.read_text())
    rows = [f"| spec, training images ({_machine_words(result['machine'])}) | from RAM | read by index | ratio | "
            f"memory map | ratio |", "|---|---|---|---|---|---|"]
    rows += [f"| {row['spec']}, {row['images']:,} | {row['ram_s']:.2f} s | {row['disk_s']:.2f} s | {row['disk_ratio']:.3f} "
             f"| {row['map_s']:.2f} s | {row['map_ratio']:.3f} |" for row in result["epochs"] if row]
    limited = result.get("under_a_limit")
    if limited:
        rows += ["", f"| under a {limited['limit_mb']} MB memory limit, a {limited['cache_gb']} GB cache of 3x256x256 "
                     f"images | random batches of 64 |", "|---|---|",
                 f"| read by index (what training does) | {limited['disk_images_per_s']:,} images/s |",
                 f"| through a memory map | {limited['map_images_per_s']:,} images/s |",
                 f"| ratio | {limited['ratio']:.1f}x |"]
    return "\n".join(rows)


def headline(results: Path) -> str:
    """The README's results: the study's best beside ours, each with its result file."""
    def link(path: Path) -> str:
        relative = path.relative_to(ROOT)
        return f"[`{relative}`]({relative})"

    def seeds_of(files: list[Path]) -> str:
        return scores_of([r for r in map(read, files) if r])

    def scores_of(found: list[dict]) -> str:
        if not found:
            return "not run yet"
        return f"{mean_sd([100 * r['test_acc'] for r in found])}% ({len(found)} seed{'s' * (len(found) > 1)})"

    def attempt_95(spec: str) -> str:
        runs = seed_runs(results / spec)
        took = minutes(statistics.mean(r["train_seconds"] for r in runs)) if runs else "not run yet"
        return (f"| `specs/{spec}.yaml` ({took} on 2 CPU cores; the target is ≥ 95.00%) | "
                f"{scores_of(runs)} | {link(results / spec)} |")

    def searched(folder: Path) -> str:
        return (f"| CNN_2 tuned by our search ({search_label(folder)}): two workers, one PostgreSQL study | "
                f"{seeds_of(retrain_files(folder))} | {link(folder)} |")

    rows = ["| result | test accuracy | result files |", "|---|---|---|",
            f"| the study's best: CNN_2 tuned by its search | {STUDY_TUNED:.2f}% (one run) | – |",
            f"| the study's parameters, rerun here | {seeds_of(study_param_runs(results / 'cnn2-study-seeds'))} | "
            f"{', '.join(link(path) for path in (results / 'cnn2-tuned.json', results / 'cnn2-study-seeds') if path.exists())} |",
            *(searched(results / name) for name in SHARED_SEARCHES if (results / name).is_dir()),
            f"| `specs/fmnist_best.yaml` (14 min on 2 CPU cores) | {seeds_of([results / 'fmnist_best.json'])} | "
            f"{link(results / 'fmnist_best.json')} |",
            *(attempt_95(spec) for spec in ATTEMPTS_95 if (results / spec).is_dir())]
    if vit := read(results / "fmnist_vit.json"):
        rows.append(f"| `specs/fmnist_vit.yaml`, attention: a small ViT with a conv stem ({minutes(vit['train_seconds'])} "
                    f"on 2 CPU cores) | {scores_of([vit])} | {link(results / 'fmnist_vit.json')} |")
    return "\n".join(rows)


def tables() -> dict[str, str]:
    results = ROOT / "results"
    return {"table1": table1(results / "table1"), "noise": noise(results / "table1", results / "cnn4-seeds"),
            "sigmoid": sigmoid(results / "table1", results / "cnn4-seeds"), "readings": readings(results / "table1"),
            "tuned": tuned(results / "cnn2-tuned.json"), "search": search(results / "cnn2-search"),
            "shared_search": shared_search([results / name for name in SHARED_SEARCHES], results / "cnn2-study-seeds"),
            "search_spend": search_spend([results / name for name in SHARED_SEARCHES]),
            "best": best_spec(results / "fmnist_best.json"), "best95": best95(results), "attention": attention(results),
            "probes95": probes95(results / "probe95"),
            "headline": headline(results), "checks": checks(results / "spec_checks.json"),
            "distributed": distributed(results / "distributed_speed.json"),
            "scaling": scaling(results / "distributed_speed.json"),
            "data_scan": data_scan(results / "data_speed.json"), "data_epochs": data_epochs(results / "data_speed.json")}


def write(path: Path, made: dict[str, str]) -> None:
    text = path.read_text()
    for name, table in made.items():
        text = re.sub(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", lambda m: m.group(1) + table + "\n" + m.group(2),
                      text, flags=re.S)
    path.write_text(text)


def print_or_write(description: str, make, documents, argv=None) -> int:
    """Print every table `make()` gives; with --write, also replace its marked block in each of `documents`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help="replace the marked blocks in " +
                        ", ".join(str(path.relative_to(ROOT)) for path in documents))
    args = parser.parse_args(argv)
    made = make()
    for name, table in made.items():
        print(f"<!-- {name} -->\n{table}\n")
    if args.write:
        for path in documents:
            write(path, made)
    return 0


if __name__ == "__main__":
    sys.exit(print_or_write(__doc__.splitlines()[0], tables, DOCUMENTS))
