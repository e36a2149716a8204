#!/usr/bin/env bash
# Issue 17's GPU session as one call: the diagnosis, then the reference run on the training path its verdict
# names (gpu_reference.py's default path, CUDA graphs without Inductor, where the verdict names none).
#
#   CODE_VERSION=SHA benchmarks/gpu_session.sh PACK OUT SECONDS
#
# SECONDS is the whole call's budget; the diagnosis gets DIAGNOSIS_SECONDS of it (default 290), the run the
# rest. DIAGNOSE_ARGS and RUN_ARGS add arguments to each script (tests/test_gpu_diagnose.py makes both tiny
# on a CPU). Each script writes its JSON record and log under OUT as it goes, so a call cut short keeps what
# was measured. The reference run runs even when the diagnosis failed; the exit status is 1 if either failed.
set -u -o pipefail
pack=$1 out=$2 seconds=$3
here=$(cd "$(dirname "$0")" && pwd)
started=$(date +%s)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}"
# the caller's word first: a copy of the repository on a lent machine may carry another commit's .git
code_version=${CODE_VERSION:-$(git -C "$here/.." rev-parse HEAD 2>/dev/null || echo unknown)}

# shellcheck disable=SC2086 - the extra arguments are meant to split
python3 "$here/gpu_diagnose.py" --pack "$pack" --out "$out/gpu-diagnosis.json" --code-version "$code_version" \
    --wall-seconds "${DIAGNOSIS_SECONDS:-290}" ${DIAGNOSE_ARGS:-} 2>&1 | tee "$out/gpu-diagnosis.log"
diagnosis_status=$?

flags=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["verdict"]["flags"] or "")' \
        "$out/gpu-diagnosis.json" 2>/dev/null)
left=$(( seconds - ($(date +%s) - started) ))
echo "reference run: ${flags:-the default path (the verdict named none)}; ${left} s left in the call"
# shellcheck disable=SC2086
python3 "$here/gpu_reference.py" --mode run --pack "$pack" --out "$out/gpu-run.json" --code-version "$code_version" \
    --pad-multiple 400 --reserve-seconds 40 --wall-minutes "$(python3 -c "print(max($left, 60) / 60)")" \
    $flags ${RUN_ARGS:-} 2>&1 | tee "$out/gpu-run.log"
run_status=$?
echo "diagnosis exited with $diagnosis_status, reference run with $run_status"
[ "$diagnosis_status" = 0 ] && [ "$run_status" = 0 ]
