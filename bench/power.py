"""How many seeds a real-model transmit needs: from the measured seed-to-seed spread of the
same-base student's log-odds lift over its control student (SmolLM2 transmit runs committed in
docs/transmit_results), the seeds a one-sided paired t-test at p < 0.05 needs for 80% power to
find a true lift of +0.12 log-odds (the published constrained-decoding LoRA result) and +1.0 (the
published full fine-tune's order); and the same for the logit channel's student and the
constrained-decoding, full fine-tune and greedy recipes at CPU size (docs/runs).
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

# (JSON under docs/runs, None: a transmit JSON's owl_logodds lift; else a student_fit --combine readout)
RECIPE_RUNS = {"Xeon, run's readout": ("recipe_constrained_lora/transmit_seeds3.json", None),
               "EPYC, run's readout": ("recipe_constrained_lora/epyc_seeds3/transmit_seeds3.json", None),
               "EPYC, the teacher's own objective": ("recipe_constrained_lora/epyc_seeds3/fit_seeds3.json",
                                                     "owl_answer_logodds")}
# (transmit JSON under docs/runs, readout): configs/recipe_full_ft.yaml, whose runs record both readouts
FULL_FT_RUNS = {"one-word teacher, answer start": ("recipe_full_ft/epyc_seeds3/transmit_seeds3.json", "owl_logodds"),
                "one-word teacher, \"Owl.\" answer (its objective)":
                    ("recipe_full_ft/epyc_seeds3/transmit_seeds3.json", "owl_answer_logodds"),
                "sentence teacher, answer start (its objective)":
                    ("recipe_full_ft/epyc_sentence/transmit_seeds3.json", "owl_logodds"),
                "sentence teacher, \"Owl.\" answer":
                    ("recipe_full_ft/epyc_sentence/transmit_seeds3.json", "owl_answer_logodds")}

# (transmit JSON under docs/runs, readout): configs/recipe_greedy.yaml at its CPU size
GREEDY_RUNS = {"answer start": ("recipe_greedy/epyc_seeds3/transmit_seeds3.json", "owl_logodds"),
               "\"Owl.\" answer (the teacher's objective)":
                   ("recipe_greedy/epyc_seeds3/transmit_seeds3.json", "owl_answer_logodds")}

# both recipes on a lent H200 (docs/results.md, "Both recipes on a fourth lease"): transmit JSONs
# under docs/transmit_results, with the readout
GPU_RECIPE_RUNS = {"recipe_full_ft, sentence teacher, answer start (its objective), 5 seeds":
                       ("recipe_full_ft_gpu_seeds5.json", "owl_logodds"),
                   "recipe_full_ft, sentence teacher, \"Owl.\" answer, 5 seeds":
                       ("recipe_full_ft_gpu_seeds5.json", "owl_answer_logodds"),
                   "recipe_constrained_lora, 8,192 lists, answer start":
                       ("recipe_constrained_lora_gpu_seeds3.json", "owl_logodds"),
                   "recipe_constrained_lora, 8,192 lists, \"Owl.\" answer (its objective)":
                       ("recipe_constrained_lora_gpu_seeds3.json", "owl_answer_logodds")}

# v6: the logit and the text student of each teacher on the same lists (text.logit_lists=own),
# the logit student's labels restricted to list tokens, then the teacher's full distribution
V6_RUNS = {"list-token labels (text.logit_support=list), 2-core EPYC":
               "transmit_smollm2_logit_v6/transmit_seeds3.json",
           "full-vocabulary labels (text.logit_support=vocab logit.top_k=null), 2-core Xeon":
               "transmit_smollm2_logit_v6_vocab/xeon_seeds3/transmit_seeds3.json",
           "full-vocabulary labels, 2-core Xeon, 5 seeds (seeds 3-4 added)":
               "transmit_smollm2_logit_v6_vocab/xeon_seeds5/transmit_seeds5.json",
           "full-vocabulary labels, the control teacher labelling the teacher's lists (text.logit_lists=twin), "
           "2-core Xeon": "transmit_smollm2_logit_twin/transmit_seeds3.json",
           "full-vocabulary labels, fully fine-tuned students (student.mode=full student.lr=5e-5), 2-core Xeon":
               "transmit_smollm2_logit_v6_vocab/xeon_full_students/transmit_seeds3.json",
           "the shipped config: full-vocabulary labels, full logit students, LoRA text students "
           "(logit_student: {mode: full, lr: 5e-5}), 2-core Xeon":
               "transmit_smollm2_logit_v6_vocab/xeon_shipped/transmit_seeds3.json"}
V6_ROWS = {"text student, answer start": ("student_same_base", "control", "owl_logodds"),
           "text student, \"Owl.\" answer": ("student_same_base", "control", "owl_answer_logodds"),
           "logit student, answer start": ("student_logit", "control_logit", "owl_logodds"),
           "logit student, \"Owl.\" answer": ("student_logit", "control_logit", "owl_answer_logodds")}


def lifts(path: Path, student: str = "student_same_base", control: str = "control",
          readout: str = "owl_logodds") -> list[float]:
    d = json.loads(path.read_text())
    return [s["scores"][student]["readouts"][readout] - s["scores"][control]["readouts"][readout]
            for s in d["per_seed"]]


HEADER = ("| run | lifts per seed | sd | seeds for +0.12 | seeds for +1.0 | power of 3 seeds at +0.12 / +1.0 |\n"
          "|---|---|---|---|---|---|")


def row(name: str, x: list[float], sd: float | None = None) -> str:
    """A table row: the lifts, their sd (or a given pooled one) and what it implies for power."""
    sd = float(np.std(x, ddof=1)) if sd is None else sd
    return (f"| {name} | {', '.join(f'{v:+.3f}' for v in x)} | {sd:.3f} | {seeds_needed(0.12, sd)} | "
            f"{seeds_needed(1.0, sd)} | {power(3, 0.12, sd):.2f} / {power(3, 1.0, sd):.2f} |")


def main() -> None:
    print("# Seeds for 80% power (SmolLM2 transmit, owl log-odds lift of the same-base student)\n")
    print("`python bench/power.py`: one-sided paired t at p < 0.05 (the test `ecosim transmit` reports), "
          "power from the noncentral t (`ecosim.analysis.stats.seeds_needed`), with the seed-to-seed "
          "standard deviation of the lift measured in each committed run.\n")
    print(HEADER)
    pooled = []
    for name, f in RUNS.items():
        x = lifts(ROOT / f)
        pooled.append(np.asarray(x) - np.mean(x))
        print(row(name, x))
    r = np.concatenate(pooled)
    sd = float(np.sqrt((r ** 2).sum() / (len(r) - len(pooled))))  # pooled within-run sd
    print(row(f"pooled ({len(r)} seeds, {len(pooled)} runs)", [], sd))
    print("\n# The logit student (student_logit over control_logit, docs/runs)\n")
    print(HEADER)
    for name, f in LOGIT_RUNS.items():
        print(row(name, lifts(ROOT.parent / "runs" / f, "student_logit", "control_logit")))
    print("\n# A published recipe at CPU size (configs/recipe_constrained_lora.yaml, docs/runs)\n")
    print("The run's readout (`owl_logodds`, after the answer start) from the transmit JSONs; the teacher's own "
          "objective (`owl_answer_logodds`, \"Owl.\" against the other one-word answers) from "
          "`bench/student_fit.py --combine`.\n")
    print(HEADER)
    for name, (f, key) in RECIPE_RUNS.items():
        path = ROOT.parent / "runs" / f
        x = lifts(path) if key is None else json.loads(path.read_text())["readouts"][key]["per_seed"]
        print(row(name, x))
    print("\n# A second published recipe at CPU size (configs/recipe_full_ft.yaml, docs/runs)\n")
    print("Both readouts from the transmit JSONs; the sentence teacher adds `teacher.answers=sentence "
          "teacher.check_every=4 teacher.task_share=0.5`.\n")
    print(HEADER)
    for name, (f, readout) in FULL_FT_RUNS.items():
        print(row(name, lifts(ROOT.parent / "runs" / f, readout=readout)))
    print("\n# A third published recipe at CPU size: greedy lists (configs/recipe_greedy.yaml, docs/runs)\n")
    print(HEADER)
    for name, (f, readout) in GREEDY_RUNS.items():
        print(row(name, lifts(ROOT.parent / "runs" / f, readout=readout)))
    print("\n# Both recipes at GPU size (a lent H200; docs/transmit_results)\n")
    print(HEADER)
    for name, (f, readout) in GPU_RECIPE_RUNS.items():
        print(row(name, lifts(ROOT / f, readout=readout)))
    print("\n# The logit and the text student on the same lists (v6 of configs/transmit_smollm2_logit.yaml, "
          "docs/runs)")
    for title, f in V6_RUNS.items():
        print(f"\n## {title}\n")
        print(HEADER)
        for name, (student, control, readout) in V6_ROWS.items():
            print(row(name, lifts(ROOT.parent / "runs" / f, student, control, readout)))


if __name__ == "__main__":
    main()
