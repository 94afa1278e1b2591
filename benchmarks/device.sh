#!/usr/bin/env bash
# The accelerator record in one command: on the machine at hand (a GPU if JAX sees one),
# run `fungrad check` in float32 and float64, the quick test subset, and the benchmarks
# (fit against the raw-JAX floor at batch 32, 1024 and 8192, the matmul limit, restarts at
# R = 1, 16 and 64, the hand-written engines against jax.grad, the whole default job), and
# write what each step found into an output folder:
#
#   device.json   every step (status, exit code, seconds) and the benchmarks' own JSON
#   device.md     a markdown table of the steps, then each step's table
#   device.log    every step's full output
#
#   benchmarks/device.sh [--quick] [--skip STEP,...] [OUT_DIR]
#
# OUT_DIR defaults to $OUT, else device-out. The steps: backend, nvidia-smi, check-float32,
# check-float64, tests-quick, bench, job, scaling; --skip leaves the named ones out.
# A step that fails is recorded as failed and the next one runs; the script exits 1 at the
# end if any step failed. On a CPU-only machine the GPU-only parts (batch 8192, R = 64, the
# large matmul sizes) are skipped and the CPU defaults run instead. --quick runs everything
# at tiny sizes (one trial, one small test file, the benchmarks' quick modes): a smoke run.
# PYTHON picks the interpreter (default: .venv/bin/python if there is one, else python3);
# STEP_TIMEOUT caps each step in seconds (default 900; quick 300).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
out=""
skipped=","
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --skip)
      [ $# -ge 2 ] || { echo "device.sh: --skip needs step names, e.g. --skip job,tests-quick" >&2; exit 2; }
      skipped="$skipped$2,"
      shift
      ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "device.sh: unknown option $1 (expected --quick, --skip STEPS or an output folder)" >&2; exit 2 ;;
    *) out="$1" ;;
  esac
  shift
done
out="${out:-${OUT:-device-out}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [ "$quick" = 1 ]; then step_timeout="${STEP_TIMEOUT:-300}"; else step_timeout="${STEP_TIMEOUT:-900}"; fi
# The checkout's fungrad, installed or not.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: >"$out/device.log"
: >"$work/steps.tsv"

# step NAME COMMAND...: run COMMAND, keep its stdout and stderr for the report and append
# both to device.log; record "NAME status rc seconds" whatever happens.
step() {
  local name="$1"
  shift
  if [[ "$skipped" == *",$name,"* ]]; then
    skip "$name" "--skip"
    return
  fi
  local started rc=0
  started=$(date +%s.%N)
  echo "device.sh: $name ..." >&2
  timeout "$step_timeout" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  {
    printf '\n===== %s: %s\n' "$name" "$*"
    cat "$work/$name.out"
    printf -- '----- %s: stderr\n' "$name"
    cat "$work/$name.err"
  } >>"$out/device.log"
  local status=ok
  if [ "$rc" = 124 ]; then status="timed out after ${step_timeout} s"; elif [ "$rc" != 0 ]; then status=failed; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" \
    "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" \
    >>"$work/steps.tsv"
  echo "device.sh: $name: $status ($rc)" >&2
}

# skip NAME REASON: record a step that does not run here.
skip() { printf '%s\tskipped: %s\t\t\n' "$1" "$2" >>"$work/steps.tsv"; }

step backend "$PYTHON" -c "import jax; print(jax.default_backend()); print(jax.__version__); print(*jax.devices(), sep='\n')"
backend="$(head -n 1 "$work/backend.out" 2>/dev/null || echo unknown)"
case "$backend" in gpu | cuda | rocm) gpu=1 ;; *) gpu=0 ;; esac
if command -v nvidia-smi >/dev/null; then
  step nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
else
  skip nvidia-smi "no nvidia-smi on this machine"
fi

trials=()
[ "$quick" = 1 ] && trials=(--trials 1)
step check-float32 "$PYTHON" -m fungrad check --dtype float32 ${trials[@]+"${trials[@]}"}
step check-float64 "$PYTHON" -m fungrad check --dtype float64 ${trials[@]+"${trials[@]}"}

# The quick subset. On a GPU every xdist worker is a process with its own CUDA context: no
# worker may take the default share of the GPU's memory, and a few workers suffice.
if [ "$quick" = 1 ]; then
  step tests-quick "$PYTHON" -m pytest -q -p no:cacheprovider -n 0 -m "not slow" tests/test_activations.py
elif [ "$gpu" = 1 ]; then
  step tests-quick env XLA_PYTHON_CLIENT_PREALLOCATE=false \
    "$PYTHON" -m pytest -q -p no:cacheprovider -n 4 -m "not slow"
else
  step tests-quick "$PYTHON" -m pytest -q -p no:cacheprovider -m "not slow"
fi

if [ "$quick" = 1 ]; then
  step bench "$PYTHON" benchmarks/run.py --quick --restart-runs 1,2 --json "$work/bench.json"
elif [ "$gpu" = 1 ]; then
  step bench "$PYTHON" benchmarks/run.py --batches 32,1024,8192 --restart-runs 1,16,64 \
    --matmul-sizes 1024,2048,4096,8192 --json "$work/bench.json"
else
  skip bench-gpu-sizes "batch 8192, R = 64 and matmuls above 2048 are GPU-only; the CPU defaults run"
  step bench "$PYTHON" benchmarks/run.py --json "$work/bench.json"
fi

if [ "$quick" = 1 ]; then
  skip job "the whole-job benchmark starts 4 processes: not in the quick mode"
else
  step job "$PYTHON" benchmarks/job.py --runs 3 --json "$work/job.json"
fi

devices="$("$PYTHON" -c "import jax; print(jax.device_count())" 2>/dev/null || echo 1)"
if [ "$gpu" = 1 ] && [ "$devices" -gt 1 ]; then
  counts="1,2"
  [ "$devices" -gt 2 ] && counts="$counts,$devices"
  step scaling "$PYTHON" benchmarks/scaling.py --devices "$counts"
else
  skip scaling "data-parallel scaling needs more than one GPU ($devices device(s), $backend)"
fi

"$PYTHON" - "$work" "$out" "$quick" "$backend" <<'EOF'
"""Assemble device.json and device.md from the steps' records and outputs."""
import datetime
import json
import pathlib
import sys

work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
quick, backend = sys.argv[3] == "1", sys.argv[4]
MARKDOWN = ("bench", "job", "scaling")  # steps whose stdout is a markdown report


def text(name, kind):
    path = work / f"{name}.{kind}"
    return path.read_text(errors="replace") if path.exists() else ""


steps = []
for line in (work / "steps.tsv").read_text().splitlines():
    name, status, rc, seconds = line.split("\t")
    step = {"name": name, "status": status, "exit_code": int(rc) if rc else None,
            "seconds": float(seconds) if seconds else None}
    if status != "ok" and not status.startswith("skipped"):
        step["stderr_tail"] = text(name, "err").splitlines()[-30:]
    steps.append(step)
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "mode": "quick" if quick else "full",
    "backend": backend,
    "failed": [s["name"] for s in steps if "stderr_tail" in s],
    "steps": steps,
}
for name in ("bench", "job"):
    path = work / f"{name}.json"
    if path.exists():
        try:
            report[name] = json.loads(path.read_text())
        except ValueError as error:
            report[name] = {"unreadable": str(error)}
(out / "device.json").write_text(json.dumps(report, indent=2, default=float))

lines = [
    f"# Device record ({report['mode']}, backend {backend}, {report['date']})",
    "",
    "| step | status | exit code | seconds |",
    "|---|---|---|---|",
]
for s in steps:
    seconds = "" if s["seconds"] is None else f"{s['seconds']:.1f}"
    code = "" if s["exit_code"] is None else s["exit_code"]
    lines.append(f"| {s['name']} | {s['status']} | {code} | {seconds} |")
for s in steps:
    if s["status"].startswith("skipped"):
        continue
    body = text(s["name"], "out").splitlines()
    lines += ["", f"## {s['name']}", ""]
    if s["name"] in MARKDOWN and "stderr_tail" not in s:
        # One level down, under this step's heading.
        lines += ["#" + line if line.startswith("#") else line for line in body]
    else:
        shown = body[-40:] + s.get("stderr_tail", [])
        lines += ["```", *shown, "```"]
(out / "device.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines[: 4 + len(steps)]))
sys.exit(1 if report["failed"] else 0)
EOF
