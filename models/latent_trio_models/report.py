"""Fills the result tables of models/README.md from the committed manifests,
so that every number there is the one the exporter measured.

Run: python -m latent_trio_models.report   (rewrites the marked tables in place)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PARTS = ("drums", "bass", "melody")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} min"


def results(manifests: dict[str, dict]) -> str:
    rows = []
    for name, manifest in manifests.items():
        training, evaluation = manifest["training"], manifest["evaluation"]
        shipped = evaluation["shipped_graphs"]
        validation = (training.get("last_validation") or {}).get("validation_tf_accuracy", "")
        rows.append(
            [
                f"`{name}`",
                training["train_windows"],
                training["steps"],
                f"{_minutes(training['wall_time_s'])} ({training['hardware']})",
                validation,
                evaluation["heldout_windows"],
                evaluation["teacher_forced_accuracy"],
                evaluation["sampled_accuracy_t1"],
                evaluation["greedy_accuracy"],
                shipped["teacher_forced_accuracy"],
                shipped["greedy_accuracy"],
                f"{manifest['parity_max_abs_diff']:.1e}",
            ]
        )
    header = [
        "Model",
        "Train windows",
        "Steps",
        "Training wall time",
        "Validation TF acc. (last)",
        "Held-out windows",
        "Held-out TF acc.",
        "Sampled acc. (t=1)",
        "Greedy acc.",
        "8-bit TF acc.",
        "8-bit greedy acc.",
        "ONNX parity (float32)",
    ]
    return _table(header, rows)


def baselines(manifests: dict[str, dict]) -> str:
    rows = []
    for name, manifest in manifests.items():
        evaluation = manifest["evaluation"]
        base, nll = evaluation["baselines"], evaluation["nll_per_window"]
        rows.append(
            [
                f"`{name}`",
                base["most_frequent_token_accuracy"],
                base["position_bigram_accuracy"],
                evaluation["teacher_forced_accuracy"],
                evaluation["train_teacher_forced_accuracy"],
                base["position_bigram_nll_per_window"],
                f"{nll['total']} ({nll['reconstruction']} + {nll['kl']})",
            ]
        )
    header = [
        "Model",
        "Most frequent token acc.",
        "Position+bigram acc.",
        "VAE TF acc. (held-out)",
        "VAE TF acc. (train)",
        "Position+bigram NLL / window",
        "VAE reconstruction + KL / window",
    ]
    return _table(header, rows)


def onsets(manifests: dict[str, dict]) -> str:
    rows = []
    for name, manifest in manifests.items():
        found = manifest["evaluation"]["greedy_onsets"]
        if "per_hit_f1" in found:
            classes = ", ".join(f"{k} {v}" for k, v in found["per_class_f1"].items())
            rows.append([f"`{name}`", f"per hit {found['per_hit_f1']}", classes])
        else:
            rows.append([f"`{name}`", f"timing {found['note_on_f1_timing']}", f"with pitch {found['note_on_f1_with_pitch']}"])
    return _table(["Model", "Onset F1", "Detail"], rows)


def refined(manifests: dict[str, dict]) -> str:
    """Each model's held-out scores from the encoder mean beside those from the refined latent."""
    rows = []
    for name, manifest in manifests.items():
        evaluation = manifest["evaluation"]
        found = evaluation.get("refined_latent")
        if found is None:
            continue

        def onset(scores: dict) -> float:
            return scores["per_hit_f1"] if "per_hit_f1" in scores else scores["note_on_f1_with_pitch"]

        nll = evaluation["nll_per_window"]
        for latent, scores, window_nll, kl in (
            ("encoder mean", evaluation, nll["total"], nll["kl"]),
            ("refined", found, found["nll_per_window"], found["kl_per_window"]),
        ):
            rows.append(
                [
                    f"`{name}`",
                    latent,
                    scores["teacher_forced_accuracy"],
                    scores["sampled_accuracy_t1"],
                    scores["greedy_accuracy"],
                    onset(scores["greedy_onsets"]),
                    f"{window_nll} (KL {kl})",
                ]
            )
    header = ["Model", "Latent", "TF acc.", "Sampled acc. (t=1)", "Greedy acc.", "Onset F1 (drums per hit, else with pitch)", "NLL / window"]
    return _table(header, rows)


def harmony(manifests: dict[str, dict]) -> str:
    rows = []
    for name, manifest in manifests.items():
        check = manifest["evaluation"].get("harmony_check")
        if not check:
            continue
        data, samples = check["heldout_data"], check["prior_samples_on_heldout_chords"]
        rows.append(
            [f"`{name}`", data["chord_tone_share"], samples["chord_tone_share"], data["in_key_share"], samples["in_key_share"]]
        )
    header = ["Model", "Chord tones: held-out data", "Chord tones: prior samples", "In key: held-out data", "In key: prior samples"]
    return _table(header, rows)


def attributes(manifests: dict[str, dict]) -> str:
    rows = []
    for name, manifest in manifests.items():
        for attribute, values in manifest["evaluation"]["attribute_check"]["results"].items():
            rows.append([f"`{name}`", attribute, *values.values()])
    return _table(["Model", "Attribute", "t = -2", "-1", "0", "+1", "+2", "Monotonic share"], rows)


def interpolation(manifests: dict[str, dict]) -> str:
    rows = [[f"`{name}`", *m["evaluation"]["interpolation_check"]["hamming"]] for name, m in manifests.items()]
    return _table(["Model", *(f"{t / 10:.1f}" for t in range(11))], rows)


def humanize(humanizers: dict[str, dict]) -> str:
    """Held-out errors of each humanize model beside the baselines without one."""
    rows = []
    for name, manifest in humanizers.items():
        evaluation, training = manifest["evaluation"], manifest["training"]
        runs = [("model", evaluation["model"])] + list(evaluation["baselines"].items())
        for run, errors in runs:
            timing = f"{errors['timing_mae_ms']} ms ({errors['timing_mae_16ths']} 16ths)" if "timing_mae_ms" in errors else "-"
            shipped = training.get("shipped_weights", {}).get("step", training["steps"])
            budget = f"{training['steps']} steps, {_minutes(training['wall_time_s'])}; ships step {shipped}" if run == "model" else ""
            rows.append([f"`{name}`", run, evaluation["onsets"], errors["velocity_mae"], timing, budget])
    header = ["Model", "Velocities and timing from", "Held-out onsets", "Velocity MAE", "Timing MAE", "Training"]
    return _table(header, rows)


def long_results(longs: dict[str, dict]) -> str:
    """Each 16-bar model beside its flat baseline: budget and held-out accuracies."""
    rows = []
    for name, manifest in longs.items():
        training, evaluation = manifest["training"], manifest["evaluation"]
        flat = evaluation.get("flat_baseline")
        budget = f"{training['steps']} steps, {_minutes(training['wall_time_s'])}"
        rows.append(
            [
                f"`{name}`",
                "hierarchical",
                budget,
                evaluation["heldout_windows"],
                evaluation["teacher_forced_accuracy"],
                evaluation["sampled_accuracy_t1"],
                evaluation["greedy_accuracy"],
                evaluation["shipped_graphs"]["teacher_forced_accuracy"],
            ]
        )
        if flat:
            rows.append(
                [
                    f"`{name}_flat`",
                    "flat (baseline)",
                    f"{flat['steps']} steps",
                    evaluation["heldout_windows"],
                    flat["teacher_forced_accuracy"],
                    flat["sampled_accuracy_t1"],
                    flat["greedy_accuracy"],
                    "-",
                ]
            )
    header = ["Model", "Decoder", "Training", "Held-out windows", "TF acc.", "Sampled acc. (t=1)", "Greedy acc.", "8-bit TF acc."]
    return _table(header, rows)


def per_bar(longs: dict[str, dict]) -> str:
    """Accuracy bar by bar: where a long decode loses its way."""
    rows = []
    for name, manifest in longs.items():
        evaluation = manifest["evaluation"]
        runs = [("hierarchical", evaluation["per_bar_accuracy"])]
        if "flat_baseline" in evaluation:
            runs.append(("flat", evaluation["flat_baseline"]["per_bar_accuracy"]))
        for decoder, accuracy in runs:
            for kind in ("teacher_forced", "sampled_t1"):
                rows.append([f"`{name}`", decoder, kind.replace("_", " "), *(f"{v:.2f}" for v in accuracy[kind])])
    return _table(["Model", "Decoder", "Accuracy", *(str(bar) for bar in range(1, 17))], rows)


def structure(longs: dict[str, dict]) -> str:
    """How often a bar repeats the bar 1, 2, 4 and 8 before it, in the data
    and in prior samples."""
    rows = []
    for name, manifest in longs.items():
        check = manifest["evaluation"]["structure_check"]
        for source, found in check.items():
            lags = found["by_lag"]
            rows.append(
                [
                    f"`{name}`",
                    source.replace("_", " "),
                    *(f"{lags[lag]['identical']:.2f} / {lags[lag]['agreement']:.2f}" for lag in ("1", "2", "4", "8")),
                    found.get("matrix_distance", "-"),
                ]
            )
    header = ["Model", "Bars from", "Lag 1", "Lag 2", "Lag 4", "Lag 8", "Self-similarity distance to the data"]
    return _table(header, rows)


def fill(readme: str, manifests: dict[str, dict], humanizers: dict[str, dict], longs: dict[str, dict]) -> str:
    """`readme` with each `<!-- name:start ... -->` ... `<!-- name:end -->` block
    replaced by its table."""
    for name, build in (
        ("results", lambda: results(manifests)),
        ("baselines", lambda: baselines(manifests)),
        ("onsets", lambda: onsets(manifests)),
        ("refined", lambda: refined(manifests)),
        ("harmony", lambda: harmony(manifests)),
        ("attributes", lambda: attributes(manifests)),
        ("interpolation", lambda: interpolation(manifests)),
        ("humanize", lambda: humanize(humanizers)),
        ("long_results", lambda: long_results(longs)),
        ("per_bar", lambda: per_bar(longs)),
        ("structure", lambda: structure(longs)),
        ("long_attributes", lambda: attributes(longs)),
        ("long_interpolation", lambda: interpolation(longs)),
    ):
        pattern = re.compile(rf"(<!-- {name}:start[^>]*-->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"models/README.md has no {name} markers")
        readme = pattern.sub(lambda m: m.group(1) + build() + "\n" + m.group(2), readme)
    return readme


def filled_readme(models: Path = Path("models")) -> str:
    """models/README.md as it reads with every marked table filled from the
    committed manifests."""
    manifests = {f"{part}_2bar": json.loads((models / f"{part}_2bar" / "manifest.json").read_text()) for part in PARTS}
    humanizers = {
        f"{part}_humanize": json.loads((models / f"{part}_humanize" / "manifest.json").read_text()) for part in PARTS
    }
    longs = {
        f"{part}_16bar": json.loads(path.read_text())
        for part in PARTS
        if (path := models / f"{part}_16bar" / "manifest.json").is_file()
    }
    return fill((models / "README.md").read_text(), manifests, humanizers, longs)


def main() -> None:
    readme = Path("models") / "README.md"
    readme.write_text(filled_readme())


if __name__ == "__main__":
    main()
