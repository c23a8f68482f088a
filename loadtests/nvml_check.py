"""Check the NVML path on a GPU host: find the card of the process on a port by its PID, and sample it.

    .venv/bin/python loadtests/nvml_check.py --port 8188            # your running ComfyUI
    .venv/bin/python loadtests/nvml_check.py --hold-gib 4            # no ComfyUI: a torch process holds 4 GiB

With --hold-gib a child process (PyTorch) allocates that much on its CUDA device, keeps it busy for a while
and listens on a loopback port, so the whole path is checked against memory whose size is known. Prints the
GPU map, the card matched and how, NVML's per-process figure for the PID, the samples (memory, temperature,
utilisation, power) and the sampler's CPU cost; exit 1 when the process is not found by its PID, or NVML does
not see the memory it holds, or (with --hold-gib) the memory is not back after the process ends.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from comfycheck.config.units import GiB
from comfycheck.polling import DeadlineExceeded, wait_until
from comfycheck.probes.gpu import NvmlSource, Sampler, gpu_map_rows, inventory, load_nvml, match_device
from comfycheck.probes.process import listening_process

HOLDER = """
import socket, sys, time, torch
x = torch.ones(int({gib} * 2**30), dtype=torch.uint8, device="cuda")
a = torch.randn(4096, 4096, device="cuda")
srv = socket.create_server(("127.0.0.1", {port}))
print("ready", flush=True)
end = time.monotonic() + {busy_s}
while time.monotonic() < end:   # keep the card busy: utilisation, power and temperature move
    a = (a @ a).clamp_(-1, 1)
torch.cuda.synchronize()
sys.stdin.read()                # hold the memory until the parent closes our stdin
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def per_process_bytes(nvml, gpu, pid: int) -> int | None:
    h = nvml.nvmlDeviceGetHandleByIndex(gpu.nvml_index)
    try:
        procs = nvml.nvmlDeviceGetComputeRunningProcesses(h)
    except Exception:  # noqa: BLE001 - no per-process data here (WSL, some containers)
        return None
    return next((int(p.usedGpuMemory) for p in procs if p.pid == pid and p.usedGpuMemory is not None), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--hold-gib", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=8.0, help="how long to sample")
    ap.add_argument("--hz", type=float, default=10.0)
    args = ap.parse_args()
    nvml = load_nvml()
    h0 = nvml.nvmlDeviceGetHandleByIndex(0)
    before = int(nvml.nvmlDeviceGetMemoryInfo(h0).used)
    holder = None
    problems: list[str] = []
    if args.hold_gib:
        args.port = free_port()
        holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(gib=args.hold_gib, port=args.port,
                                                                        busy_s=args.seconds * 0.6)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdin is not None
        line = holder.stdout.readline().strip()
        if line != "ready":
            print(f"the holder process did not start (said {line!r}, exit {holder.poll()})")
            return 2
    proc = listening_process(args.port)
    if proc is None:
        print(f"no process listens on port {args.port} (or it is not visible to this user)")
        return 2
    gpus = inventory(nvml)
    gpu, how = match_device(gpus, pids=[proc.pid])
    gpu.service = "comfyui"
    for row in gpu_map_rows(gpus):
        print("GPU map:", row, "pids", next(g.pids for g in gpus if g.nvml_index == row["nvml"]))
    print(f"process on port {args.port}: pid {proc.pid}; matched {gpu.name} (nvml {gpu.nvml_index}, {gpu.uuid}) "
          f"by {how}")
    if not how.startswith("PID"):
        problems.append(f"pid {proc.pid} was not found among any card's compute processes ({how})")
    held = per_process_bytes(nvml, gpu, proc.pid)
    print(f"NVML per-process memory of pid {proc.pid}: {held / GiB:.2f} GiB" if held is not None
          else "NVML gives no per-process memory here")
    if args.hold_gib and (held is None or held < args.hold_gib * GiB):
        problems.append(f"NVML attributes {held} bytes to pid {proc.pid}, less than the {args.hold_gib} GiB it holds")
    with tempfile.TemporaryDirectory() as tmp:
        sampler = Sampler(NvmlSource(nvml, gpu), Path(tmp) / "samples.csv", args.hz).start()
        wanted = int(args.hz * args.seconds)
        wait_until(lambda: sampler.count >= wanted, timeout=args.seconds * 3, interval=0.2, what=f"{wanted} samples")
        sampler.stop()
        rows = (Path(tmp) / "samples.csv").read_text().splitlines()
    peak = sampler.peak
    if peak is None:
        print(f"no sample was taken ({sampler.errors} errors, last: {sampler.last_error})")
        return 1
    print(f"sampled {sampler.count} times in {sampler.wall_s:.1f} s ({sampler.errors} errors): peak memory "
          f"{peak.mem_used_bytes / GiB:.2f} of {peak.mem_total_bytes / GiB:.1f} GiB ({peak.used_pct:.1f} %), "
          f"reserved {(peak.mem_reserved_bytes or 0) / GiB:.2f} GiB, max temperature {sampler.max_temp} °C")
    print(f"first sample: {rows[1] if len(rows) > 1 else '-'}")
    print(f"last sample:  {rows[-1]}")
    print(f"sampler thread CPU {sampler.cpu_s:.3f} s = {100 * sampler.cpu_share_of_one_core:.2f} % of one core "
          f"({1000 * sampler.cpu_s / max(1, sampler.count):.2f} ms per sample)")
    if args.hold_gib:
        grew = peak.mem_used_bytes - before
        print(f"card memory before the holder {before / GiB:.2f} GiB, peak {peak.mem_used_bytes / GiB:.2f} GiB: "
              f"+{grew / GiB:.2f} GiB for {args.hold_gib} GiB held")
        if grew < 0.95 * args.hold_gib * GiB:
            problems.append(f"the card's memory grew by {grew / GiB:.2f} GiB, not the {args.hold_gib} GiB held")
        assert holder is not None and holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        source = NvmlSource(nvml, gpu)
        try:
            _, waited = wait_until(lambda: source.sample().mem_used_bytes - before < 0.5 * GiB, timeout=20,
                                   interval=0.1, what="memory released after the holder ended")
            print(f"memory back within 0.5 GiB of before {waited:.2f} s after the holder ended")
        except DeadlineExceeded as exc:
            problems.append(str(exc))
    for p in problems:
        print("PROBLEM:", p)
    print("NVML path: " + ("FAIL" if problems else "pass"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
