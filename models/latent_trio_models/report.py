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


def fill(readme: str, manifests: dict[str, dict], humanizers: dict[str, dict]) -> str:
    """`readme` with each `<!-- name:start ... -->` ... `<!-- name:end -->` block
    replaced by its table."""
    for name, build in (
        ("results", lambda: results(manifests)),
        ("baselines", lambda: baselines(manifests)),
        ("onsets", lambda: onsets(manifests)),
        ("harmony", lambda: harmony(manifests)),
        ("attributes", lambda: attributes(manifests)),
        ("interpolation", lambda: interpolation(manifests)),
        ("humanize", lambda: humanize(humanizers)),
    ):
        pattern = re.compile(rf"(<!-- {name}:start[^>]*-->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"models/README.md has no {name} markers")
        readme = pattern.sub(lambda m: m.group(1) + build() + "\n" + m.group(2), readme)
    return readme


def main() -> None:
    models = Path("models")
    manifests = {f"{part}_2bar": json.loads((models / f"{part}_2bar" / "manifest.json").read_text()) for part in PARTS}
    humanizers = {
        f"{part}_humanize": json.loads((models / f"{part}_humanize" / "manifest.json").read_text()) for part in PARTS
    }
    readme = models / "README.md"
    readme.write_text(fill(readme.read_text(), manifests, humanizers))


if __name__ == "__main__":
    main()
