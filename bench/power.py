"""How many seeds a real-model transmit needs: from the measured seed-to-seed spread of the
same-base student's log-odds lift over its control student (SmolLM2 transmit runs committed in
docs/transmit_results), the seeds a one-sided paired t-test at p < 0.05 needs for 80% power to
find a true lift of +0.12 log-odds (the published constrained-decoding LoRA result) and +1.0 (the
published full fine-tune's order); and the same for the logit channel's student (docs/runs).
Run: python bench/power.py > bench/power.md"""
import json
from pathlib import Path

import numpy as np

from ecosim.analysis.stats import power, seeds_needed

ROOT = Path(__file__).resolve().parent.parent / "docs" / "transmit_results"
RUNS = {"CPU, 96 lists per student": "transmit_smollm2_seeds3.json",
        "H200, 10,000 lists, 1 epoch": "transmit_smollm2_gpu_seeds3.json",
        "H200, 4,000 lists, 3 epochs": "transmit_smollm2_gpu_3epochs_seeds3.json"}
EFFECTS = (0.12, 1.0)
# the logit channel's student against its own control (configs/transmit_smollm2_logit.yaml)
LOGIT_RUNS = {"logit v2: top 256 labels, batches of 8": "transmit_smollm2_logit_v2/transmit_seeds3.json",
              "logit v5: list-token labels, batches of 4": "transmit_smollm2_logit_v5/transmit_seeds3.json"}


def lifts(path: Path, student: str = "student_same_base", control: str = "control") -> list[float]:
    d = json.loads(path.read_text())
    return [s["scores"][student]["readouts"]["owl_logodds"] - s["scores"][control]["readouts"]["owl_logodds"]
            for s in d["per_seed"]]


def main() -> None:
    print("# Seeds for 80% power (SmolLM2 transmit, owl log-odds lift of the same-base student)\n")
    print("`python bench/power.py`: one-sided paired t at p < 0.05 (the test `ecosim transmit` reports), "
          "power from the noncentral t (`ecosim.analysis.stats.seeds_needed`), with the seed-to-seed "
          "standard deviation of the lift measured in each committed run.\n")
    print("| run | lifts per seed | sd | seeds for +0.12 | seeds for +1.0 | power of 3 seeds at +0.12 / +1.0 |")
    print("|---|---|---|---|---|---|")
    pooled = []
    for name, f in RUNS.items():
        x = lifts(ROOT / f)
        pooled.append(np.asarray(x) - np.mean(x))
        sd = float(np.std(x, ddof=1))
        print(f"| {name} | {', '.join(f'{v:+.3f}' for v in x)} | {sd:.3f} | {seeds_needed(0.12, sd)} | "
              f"{seeds_needed(1.0, sd)} | {power(3, 0.12, sd):.2f} / {power(3, 1.0, sd):.2f} |")
    r = np.concatenate(pooled)
    sd = float(np.sqrt((r ** 2).sum() / (len(r) - len(pooled))))  # pooled within-run sd
    print(f"| pooled ({len(r)} seeds, {len(pooled)} runs) | | {sd:.3f} | {seeds_needed(0.12, sd)} | "
          f"{seeds_needed(1.0, sd)} | {power(3, 0.12, sd):.2f} / {power(3, 1.0, sd):.2f} |")
    print("\n# The logit student (student_logit over control_logit, docs/runs)\n")
    print("| run | lifts per seed | sd | seeds for +0.12 | seeds for +1.0 | power of 3 seeds at +0.12 / +1.0 |")
    print("|---|---|---|---|---|---|")
    for name, f in LOGIT_RUNS.items():
        x = lifts(ROOT.parent / "runs" / f, "student_logit", "control_logit")
        sd = float(np.std(x, ddof=1))
        print(f"| {name} | {', '.join(f'{v:+.3f}' for v in x)} | {sd:.3f} | {seeds_needed(0.12, sd)} | "
              f"{seeds_needed(1.0, sd)} | {power(3, 0.12, sd):.2f} / {power(3, 1.0, sd):.2f} |")


if __name__ == "__main__":
    main()
