"""ONNX Runtime's CPU inference of a file `medseg export` wrote, timed as `medseg benchmark --mode infer`
times MedSeg's: random input of BATCH x channels x SIZE, WARMUP untimed runs, then the mean of STEPS runs.
Usage: python3 bench/onnx_ref.py MODEL.onnx THREADS SIZE [BATCH] [WARMUP] [STEPS]   (SIZE comma-separated)
Prints one JSON object (img_per_s, step_ms, threads, onnxruntime's version)."""
import json, sys, time
import numpy as np
import onnxruntime as ort

model, threads, size = sys.argv[1], int(sys.argv[2]), [int(v) for v in sys.argv[3].split(",")]
batch, warmup, steps = (int(v) for v in (sys.argv[4:7] + ["1", "2", "3"][len(sys.argv[4:7]):]))
options = ort.SessionOptions()
# One operator at a time on THREADS threads, as libtorch runs MedSeg's network.
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
image = session.get_inputs()[0]
dtype = np.float16 if image.type == "tensor(float16)" else np.float32
x = np.random.default_rng(0).standard_normal([batch, image.shape[1]] + size).astype(dtype)
for _ in range(warmup):
    session.run(None, {"image": x})
start = time.perf_counter()
for _ in range(steps):
    session.run(None, {"image": x})
seconds = (time.perf_counter() - start) / steps
print(json.dumps({"img_per_s": batch / seconds, "step_ms": seconds * 1000, "threads": threads, "onnxruntime": ort.__version__}))
