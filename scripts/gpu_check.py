"""The GPU check (scripts/gpu-check.sh runs it): everything a GPU machine without network, Swift or
compiler checks of MedSeg, from the bundle `make gpu-bundle` built on a CPU machine, against that
machine's own PyTorch. Within a time budget (default 450 s, under the 8 minutes a check may take):

  1. the bundle's launcher finds this machine's torch (same version as the bundle's), `doctor`
     sees the GPU, NCCL and the scan's NVRTC kernels;
  2. every CUDA/GPU/NCCL test of the suite, from the bundled test runner: one that fails or skips
     fails the check (NCCL between 2 ranks on one GPU, world 1, AMP parity, GradScaler,
     channels-last, scan kernels against the CPU kernel, pinned copies, GPU augmentation), and
     the machine's own torchrun starting medseg ranks (libtorch 2 ranks join its agent's store);
  3. a real `medseg train` / `predict` on the device;
  4. benchmarks side by side with this machine's PyTorch on the same device: nnU-Net's plain U-Net
     2D batch 64 (192x160, 4 channels) and 3D batch 2 (128^3), fp32 and AMP (fp16 with loss
     scaling), with and without channels-last; 3D inference; UltraLight VM-UNet training against
     PyTorch with a parallel scan; 3D sliding-window inference;

and writes report.json and report.md to the report folder. With --cpu (make gpu-bundle-check) the
same steps run small on the CPU, where GPU tests may skip: that checks the bundle and this script
on a machine without a GPU.
Usage: python3 scripts/gpu_check.py --bundle ARCHIVE_OR_DIR [--report DIR] [--budget S] [--cpu]"""
import argparse, glob, json, os, platform, re, shutil, subprocess, sys, tarfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# NVIDIA's published nnU-Net figures (DeepLearningExamples, PyTorch nnU-Net, A100 80GB, AMP).
A100 = {"2d-train": 1238.68, "3d-train": 27.48, "3d-infer": 68.45}
GPU_TESTS = re.compile(r"CUDA|GPU|NCCL|SelectiveScanTests/testNVRTCCompilesTheKernels")
# With the machine's own torchrun: ranks of the CUDA engine (libtorch 2) join the agent's store.
TORCHRUN_TEST = "DistributedRunTests/testTorchrunStartsRanksThatTrainAndAgree"


class Check:
    def __init__(self, args):
        self.args = args
        self.start = time.time()
        self.report_dir = os.path.abspath(args.report)
        self.logs = os.path.join(self.report_dir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.device = "cpu" if args.cpu else "cuda"
        self.checks, self.benchmarks, self.info = [], [], {}

    # ---- running things ----
    def elapsed(self):
        return time.time() - self.start

    def say(self, text):
        print(f"[gpu-check {self.elapsed():5.0f}s] {text}", flush=True)

    def run(self, name, cmd, limit, env=None):
        """Runs cmd (output to logs/NAME.log) within `limit` seconds (and the budget); returns
        (exit status or None when it ran out of time, output)."""
        limit = max(5, min(limit, self.args.budget + 60 - self.elapsed()))
        self.say(f"{name}: {' '.join(cmd)}")
        log = os.path.join(self.logs, name + ".log")
        full_env = dict(os.environ, **(env or {}))
        t = time.time()
        with open(log, "w") as out:
            try:
                p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, timeout=limit, cwd=ROOT)
                status = p.returncode
            except subprocess.TimeoutExpired:
                status = None
        text = open(log, errors="replace").read()
        self.say(f"{name}: {'ran past %ds' % limit if status is None else 'exit %d' % status} in {time.time() - t:.1f}s")
        return status, text

    def record(self, name, ok, detail):
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        self.say(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    def medseg(self, *args):
        return [self.launcher] + list(args)

    def last_json(self, text):
        for line in reversed(text.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    pass
        return None

    # ---- the steps ----
    def unpack(self):
        bundle = os.path.abspath(self.args.bundle)
        if os.path.isdir(bundle):
            root = bundle
        else:
            if not os.path.isfile(bundle):
                raise SystemExit(f"gpu-check: error: no bundle at {bundle} (make gpu-bundle builds it)")
            target = os.path.join(self.report_dir, "bundle")
            shutil.rmtree(target, ignore_errors=True)
            with tarfile.open(bundle) as tar:
                tar.extractall(target, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(target)
            root = os.path.join(target, "medseg-gpu-bundle")
        self.launcher = os.path.join(root, "medseg-gpu")
        if not os.path.isfile(self.launcher):
            raise SystemExit(f"gpu-check: error: {root} has no medseg-gpu launcher: not a MedSeg GPU bundle")
        self.info["bundle"] = dict(l.split("=", 1) for l in open(os.path.join(root, "BUILD_INFO")).read().split() if "=" in l)

    def where(self):
        status, text = self.run("where", self.medseg("--where"), 30)
        self.info["where"] = text.strip()
        m = re.search(r"^torch\s+(\S+)", text, re.M)
        self.record("launcher finds this machine's torch", status == 0 and m is not None,
                    (m.group(0) if m else text.strip().splitlines()[-1]) if text.strip() else "no output")
        self.torch_dir = m.group(1) if m else None
        return status == 0

    def doctor(self):
        status, text = self.run("doctor", self.medseg("doctor"), 90)
        self.info["doctor"] = text.strip()
        engine = re.search(r"^engine\s+(.*)$", text, re.M)
        self.record("doctor", status == 0 and "CUDA libtorch" in text, engine.group(1) if engine else text.strip()[-200:])
        if not self.args.cpu:
            cuda = re.search(r"^CUDA\s+(.*)$", text, re.M)
            self.record("doctor sees the GPU", cuda is not None and "cuda:0" in cuda.group(1),
                        cuda.group(1) if cuda else "no CUDA line")
            scan = re.search(r"^selective scan\s+(.*)$", text, re.M)
            self.record("scan kernels on the GPU", scan is not None and "NVRTC CUDA kernels" in scan.group(1),
                        scan.group(1) if scan else "no selective scan line")
            nccl = re.search(r"^NCCL.*$", text, re.M)
            self.record("NCCL available", nccl is not None and "available" in nccl.group(0) and "not" not in nccl.group(0),
                        nccl.group(0) if nccl else "no NCCL line")

    def nvrtc(self):
        """The NVRTC beside this machine's torch (testNVRTCCompilesTheKernels uses it)."""
        if not self.torch_dir:
            return None
        found = sorted(glob.glob(os.path.join(os.path.dirname(self.torch_dir), "nvidia", "*", "lib", "libnvrtc.so.*[0-9]")))
        found = [f for f in found if "builtins" not in f and ".alt." not in f]
        return found[0] if found else None

    def torchrun(self):
        """torchrun of the torch the launcher found (the venv beside it) and the path its
        interpreter needs for that torch, else one on PATH (this interpreter's may be another
        torch, e.g. Debian's 1.13, whose torchrun is too old)."""
        if os.environ.get("MEDSEG_TORCHRUN"):
            return os.environ["MEDSEG_TORCHRUN"], None
        if self.torch_dir:
            prefix = self.torch_dir
            for _ in range(5):
                prefix = os.path.dirname(prefix)
                candidate = os.path.join(prefix, "bin", "torchrun")
                if os.access(candidate, os.X_OK):
                    return candidate, os.path.dirname(self.torch_dir)
        found = shutil.which("torchrun")
        return (found, None) if found else (None, None)

    def tests(self):
        status, text = self.run("list-tests", self.medseg("--tests", "--list-tests"), 60)
        names = [l.strip() for l in text.splitlines() if re.match(r"^\s*\w+\.\w+/test\w+\s*$", l)]
        if self.args.cpu:
            chosen = [n for n in names if GPU_TESTS.search(n) or n.startswith("TorchTests.MixedPrecisionTests/")]
        else:
            chosen = [n for n in names if GPU_TESTS.search(n)]
        self.info["tests_listed"] = len(names)
        if status != 0 or not chosen:
            self.record("GPU tests", False, f"the test runner listed {len(names)} tests, {len(chosen)} GPU tests (exit {status})")
            return
        env = {}
        torchrun, torch_path = self.torchrun()
        if torchrun and any(n.endswith(TORCHRUN_TEST) for n in names):
            env["MEDSEG_TORCHRUN"] = torchrun
            if torch_path:
                env["MEDSEG_TORCHRUN_PYTHONPATH"] = torch_path
            chosen.append(next(n for n in names if n.endswith(TORCHRUN_TEST)))
            self.info["torchrun"] = torchrun
        lib = self.nvrtc()
        if lib:
            env["MEDSEG_NVRTC"] = lib
        status, text = self.run("gpu-tests", self.medseg("--tests", ",".join(chosen)), 300, env)
        results = {}
        for m in re.finditer(r"Test Case '(?:-\[)?([\w.]+)[ /.](\w+)\]?' (passed|failed|skipped)", text):
            results[f"{m.group(1)}/{m.group(2)}"] = m.group(3)
        failed = sorted(k for k, v in results.items() if v == "failed")
        skipped = sorted(k for k, v in results.items() if v == "skipped")
        missing = len(chosen) - len(results)
        self.info["tests"] = {"chosen": chosen, "results": results}
        refused = re.search(r"NCCL refuses two ranks on one GPU: (.*)", text)
        nccl = [v for k, v in results.items() if "NCCL" in k]
        self.info["nccl_two_ranks_one_gpu"] = (
            f"refused by NCCL: {refused.group(1)}" if refused else
            "allowed: 2 ranks on one GPU end with the weights of one process" if nccl == ["passed"] else
            f"not run ({nccl[0] if nccl else 'no NCCL test'})")
        ok = status == 0 and not failed and missing == 0 and (self.args.cpu or not skipped)
        detail = f"{len(results)} of {len(chosen)} run: {len(results) - len(failed) - len(skipped)} passed"
        if failed:
            detail += f", failed: {', '.join(failed)}"
        if skipped:
            detail += f", skipped{' (no GPU here)' if self.args.cpu else ''}: {', '.join(skipped)}"
        if status is None:
            detail += "; the runner ran out of time"
        elif status != 0 and not failed:
            detail += f"; the runner exited with {status} (crash?)"
        self.record("GPU tests", ok, detail)

    def train(self):
        work = os.path.join(self.report_dir, "train")
        shutil.rmtree(work, ignore_errors=True)
        data, run, pred = (os.path.join(work, d) for d in ("data", "run", "pred"))
        status, text = self.run("synth", self.medseg("data", "synth", "--dim", "2", "--cases", "12", "--test-cases", "3", "--out", data), 60)
        if status == 0:
            status, text = self.run("train", self.medseg("train", "--dataset", data, "--preset", "synthetic-2d", "--epochs", "2",
                                                         "--device", self.device, "--out", run, "--profile"), 240)
        if status == 0:
            status, text = self.run("predict", self.medseg("predict", "--run", run, "--input", os.path.join(data, "imagesTs"),
                                                           "--out", pred, "--device", self.device), 120)
        masks = len(glob.glob(os.path.join(pred, "*.png"))) + len(glob.glob(os.path.join(pred, "*.nii.gz")))
        self.record(f"medseg train + predict on {self.device}", status == 0 and masks >= 3,
                    f"{masks} predicted masks" if status == 0 else text.strip().splitlines()[-1] if text.strip() else "no output")
        # --profile's Chrome trace: Kineto's CUDA kernels on a GPU, the operators elsewhere.
        try:
            with open(os.path.join(run, "profile_trace.json")) as f:
                trace = json.load(f)
            events = trace.get("traceEvents", []) if isinstance(trace, dict) else trace
            kernels = sum(1 for e in events if e.get("cat") == "kernel")
            convs = sum(1 for e in events if "convolution" in str(e.get("name", "")))
            ok = convs > 0 and (kernels > 0 or self.args.cpu)
            self.record("train --profile trace", ok, f"{len(events)} events, {convs} convolution ops, {kernels} CUDA kernels")
        except (OSError, ValueError) as e:
            self.record("train --profile trace", False, f"no readable profile_trace.json ({e})")

    def python(self):
        return sys.executable

    def pair(self, key, title, ours_cmd, ref_cmd, limit, a100=None, compare="img_per_s"):
        """Runs MedSeg's and PyTorch's benchmark of the same thing; one row of the report."""
        if self.elapsed() > self.args.budget:
            self.benchmarks.append({"key": key, "title": title, "skipped": "time budget spent"})
            self.say(f"{key}: skipped, the time budget is spent")
            return
        s1, t1 = self.run(key + "-medseg", ours_cmd, limit)
        s2, t2 = self.run(key + "-torch", ref_cmd, limit)
        ours, ref = (self.last_json(t1) if s1 == 0 else None), (self.last_json(t2) if s2 == 0 else None)
        row = {"key": key, "title": title, "medseg": ours, "pytorch": ref, "a100_amp": a100}
        if ours is None:
            row["error"] = "MedSeg: " + (t1.strip().splitlines()[-1] if t1.strip() else f"exit {s1}")
        if ref is None:
            row["error"] = row.get("error", "") + (" PyTorch: " + (t2.strip().splitlines()[-1] if t2.strip() else f"exit {s2}"))
        if ours and ref:
            if compare == "img_per_s":
                row["ratio"] = ours["img_per_s"] / ref["img_per_s"]
            else:   # seconds per volume: lower is better
                row["ratio"] = ref["seconds_per_volume"] / ours["seconds_per_volume"]
        self.benchmarks.append(row)
        if ours is None or ref is None:
            self.record(f"benchmark {key}", False, row["error"].strip())

    def single(self, key, title, cmd, limit):
        """A MedSeg figure without a PyTorch counterpart (the data pipeline)."""
        if self.elapsed() > self.args.budget:
            self.benchmarks.append({"key": key, "title": title, "skipped": "time budget spent"})
            return
        status, text = self.run(key, cmd, limit)
        result = self.last_json(text) if status == 0 else None
        self.benchmarks.append({"key": key, "title": title, "medseg": result, "pytorch": None, "a100_amp": None, "single": True,
                                **({} if result else {"error": text.strip().splitlines()[-1] if text.strip() else f"exit {status}"})})
        if result is None:
            self.record(f"benchmark {key}", False, self.benchmarks[-1]["error"])

    def bench(self):
        q = self.args.cpu
        py, dev = self.python(), self.device
        warm, steps = ("1", "2") if q else ("4", "12")
        plain = [
            # key, dim, batch, size, depth, warm-up and timed steps (3D steps take ~10x longer)
            ("2d", "2", "2" if q else "64", "32,24" if q else "192,160", "3" if q else "6", warm, steps),
            ("3d", "3", "1" if q else "2", "16" if q else "128", "3" if q else "6", warm, "2" if q else "8"),
        ]
        for key, dim, batch, size, depth, warm, steps in plain:
            for prec in ["fp32", "fp16"] if not q else ["fp32", "bf16"]:
                for cl in [False, True]:
                    extra = ["--channels-last"] if cl else []
                    name = f"{key}-train-{prec}{'-cl' if cl else ''}"
                    title = f"plain U-Net {key.upper()} train b{batch} {size.replace(',', 'x')}{'^3' if dim == '3' and ',' not in size else ''} {'AMP fp16' if prec == 'fp16' else prec}{' channels-last' if cl else ''}"
                    common = ["--dim", dim, "--batch-size", batch, "--size", size, "--in-channels", "4", "--classes", "4",
                              "--features", "32" if not q else "4", "--depth", depth, "--precision", prec,
                              "--warmup", warm, "--steps", steps] + extra
                    self.pair(name, title,
                              self.medseg("benchmark", "--model", "plainunet", "--mode", "train", "--device", dev,
                                          "--cudnn-benchmark", "--json", *common),
                              [py, "bench/ref_plain_unet.py", "--device", dev, "--mode", "train", *common],
                              240, A100[f"{key}-train"] if prec == "fp16" and not cl else None)
        # 3D inference (NVIDIA's inference figure: batch 2, 128^3, AMP).
        warm, steps = ("1", "2") if q else ("3", "10")
        dim, batch, size, depth = "3", ("1" if q else "2"), ("16" if q else "128"), ("3" if q else "6")
        common = ["--dim", dim, "--batch-size", batch, "--size", size, "--in-channels", "4", "--classes", "4",
                  "--features", "32" if not q else "4", "--depth", depth, "--precision", "bf16" if q else "fp16",
                  "--warmup", warm, "--steps", steps]
        self.pair("3d-infer-amp", f"plain U-Net 3D inference b{batch} {size}^3 AMP",
                  self.medseg("benchmark", "--model", "plainunet", "--mode", "infer", "--device", dev, "--cudnn-benchmark", "--json", *common),
                  [py, "bench/ref_plain_unet.py", "--device", dev, "--mode", "infer", *common], 180, A100["3d-infer"])
        # UltraLight VM-UNet training: MedSeg's scan kernels against PyTorch with a parallel scan.
        size, batch = ("64", "2") if q else ("256", "8")
        self.pair("ultralight-train", f"UltraLight VM-UNet train b{batch} {size}x{size}",
                  self.medseg("benchmark", "--model", "ultralight_vmunet", "--mode", "train", "--size", size, "--batch-size", batch,
                              "--in-channels", "3", "--warmup", warm, "--steps", steps, "--device", dev, "--cudnn-benchmark", "--json"),
                  [py, "bench/ultralight_ref.py", "--check", "--device", dev, "--size", size, "--batch-size", batch,
                   "--warmup", warm, "--steps", steps], 240)
        # Whole-volume sliding-window inference, nnU-Net's rules (step 0.5, Gaussian, mirroring).
        size, patch, feats, depth = ("32", "16", "4", "3") if q else ("192", "128", "32", "6")
        runs = "1" if q else "2"
        self.pair("3d-sliding-window", f"3D sliding window {size}^3 in {patch}^3 windows, mirroring, fp32",
                  self.medseg("benchmark", "--mode", "sliding-window", "--model", "plainunet", "--dim", "3", "--size", size,
                              "--patch", patch, "--features", feats, "--depth", depth, "--mirror", "--window-batch", "2",
                              "--warmup", "1", "--steps", runs, "--device", dev, "--cudnn-benchmark", "--json"),
                  [py, "bench/sliding_window_ref.py", "3", size, patch, feats, depth, "1", "2", str(os.cpu_count() or 1), "1", runs, dev],
                  240, compare="seconds_per_volume")

        # The training data pipeline (patches + nnU-Net augmentation, 3D 128^3 batch 2): augmented
        # by the loader's workers on the CPU, or on the GPU after the copy.
        size = "32" if q else "128"
        for where in ["cpu", dev] if dev != "cpu" else ["cpu"]:
            self.single(f"loader-{where}", f"data pipeline 3D b2 {size}^3, augmentation on {where}",
                        self.medseg("benchmark", "--mode", "loader", "--dim", "3", "--batch-size", "2", "--size", size,
                                    "--workers", "4", "--warmup", "2", "--steps", "4" if q else "6", "--device", where, "--json"), 120)

    # ---- the report ----
    def write(self):
        ok = all(c["ok"] for c in self.checks)
        report = {"ok": ok, "device": self.device, "elapsed_s": round(self.elapsed(), 1), "host": platform.node(),
                  "python": sys.executable, "info": self.info, "checks": self.checks, "benchmarks": self.benchmarks}
        try:
            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            gpu = ""
        report["gpu"] = gpu or "none"
        with open(os.path.join(self.report_dir, "report.json"), "w") as f:
            json.dump(report, f, indent=1)
        b = self.info.get("bundle", {})
        title = "MedSeg GPU check" + (" (small runs on the CPU: the bundle and the check, not GPU figures)" if self.args.cpu else "")
        lines = [f"# {title}: {'passed' if ok else 'FAILED'}", "",
                 f"- device: {self.device}; GPU: {report['gpu']}",
                 f"- bundle: MedSeg {b.get('MEDSEG_COMMIT', '?')}, built {b.get('BUILT_DATE', '?')} against torch {b.get('BUILT_TORCH', '?')} (CUDA {b.get('BUILT_CUDA', '?')})",
                 f"- {self.info.get('where', '').splitlines()[1] if len(self.info.get('where', '').splitlines()) > 1 else 'torch: not found'}",
                 f"- NCCL, two ranks on one GPU: {self.info.get('nccl_two_ranks_one_gpu', 'not run')}",
                 f"- time: {self.elapsed():.0f} s", "", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c['name']} | {'ok' if c['ok'] else '**FAILED**'} | {c['detail'].replace('|', '/')} |")
        lines += ["", "## Benchmarks (same device, this machine's PyTorch eager)", "",
                  "| benchmark | MedSeg | PyTorch | MedSeg/PyTorch | GPU memory MedSeg / PyTorch (MiB) | A100 AMP (NVIDIA) |",
                  "|---|---|---|---|---|---|"]
        for r in self.benchmarks:
            if "skipped" in r:
                lines.append(f"| {r['title']} | not run: {r['skipped']} | | | | |")
                continue
            m, t = r.get("medseg") or {}, r.get("pytorch") or {}
            unit = "s/volume" if "seconds_per_volume" in m or "seconds_per_volume" in t else "img/s"
            key = "seconds_per_volume" if unit == "s/volume" else "img_per_s"
            fmt = lambda d: f"{d[key]:.3f} {unit}" if key in d else "error"
            mem = lambda d: f"{d['gpu_peak_mem_mb']:.0f}" if d.get("gpu_peak_mem_mb") else (f"{d['peak_mem_mb']:.0f}" if d.get("peak_mem_mb") and self.device == "cuda" else "-")
            ratio = f"{r['ratio']:.2f}x" if "ratio" in r else r.get("error", "")
            theirs = "-" if r.get("single") else fmt(t)
            lines.append(f"| {r['title']} | {fmt(m)} | {theirs} | {ratio} | {mem(m)} / {mem(t)} | {r['a100_amp'] or ''} |")
        lines += ["", "Ratios above 1 mean MedSeg is faster (for sliding windows: PyTorch's seconds over MedSeg's).",
                  "Logs of every step: logs/."]
        with open(os.path.join(self.report_dir, "report.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, help="the archive make gpu-bundle wrote, or its unpacked folder")
    p.add_argument("--report", default=os.path.join(ROOT, "runs", "gpu-check"), help="folder for report.md, report.json, logs/")
    p.add_argument("--budget", type=float, default=450, help="seconds; benchmarks not started by then are reported as not run")
    p.add_argument("--cpu", action="store_true", help="small runs on the CPU (a machine without a GPU: checks the bundle and this script)")
    p.add_argument("--skip-bench", action="store_true")
    args = p.parse_args()
    check = Check(args)
    check.unpack()
    if check.where():
        check.doctor()
        check.tests()
        check.train()
        if not args.skip_bench:
            check.bench()
    ok = check.write()
    print(open(os.path.join(check.report_dir, "report.md")).read())
    check.say(f"{'passed' if ok else 'FAILED'}; report in {check.report_dir}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
