"""flipless against PyTorch eager + transformers on the same checkpoint and sentences.

Run by bench/vs_pytorch.sh (which makes the virtual environment and builds the worker). The
flipless side is bench/vs_pytorch_worker (C++, flipless's FeatureExtractor and training loop),
a separate process driven over a pipe; both sides are interleaved round by round (A B, then
B A) so that load on the machine hits them alike. First the embeddings are checked equal within
1e-4; then:
  - batch-1 latency at 1 thread: tokenise + encode + mean-pool one sentence (p50, p90);
  - batch-64 throughput at 2 threads: all sentences, length-sorted batches of 64 (sentences/s);
  - fine-tuning examples/s: one epoch over the same N sentences, batch 32, MiniLM + a linear head
    on the pooler output, AdamW, length-sorted batches on both sides;
each in fp32 and in bf16 (autocast on both sides). Prints a table and the ratios
(PyTorch time / flipless time for latency: above 1 means flipless is faster).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the checkpoint is a local folder
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
import transformers
from safetensors.torch import load_file


def pctl(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Worker:
    def __init__(self, binary, model):
        self.p = subprocess.Popen([binary, "--model", model], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self.p.stdout.readline().split()

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer.startswith("error") or not answer:
            sys.exit(f"worker: {line!r}: {answer or 'no answer'}")
        return answer

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


class Torch:
    def __init__(self, model_dir):
        self.tok = transformers.AutoTokenizer.from_pretrained(model_dir)
        self.model = transformers.AutoModel.from_pretrained(model_dir).eval()
        self.model_dir = model_dir

    def _ctx(self, precision):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def embed(self, sentences):
        enc = self.tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
        out = self.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return (out * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def latency(self, sentences, precision):
        times = []
        with torch.inference_mode(), self._ctx(precision):
            for s in sentences:
                t = time.perf_counter()
                self.embed([s])
                times.append((time.perf_counter() - t) * 1e3)
        return times

    def throughput(self, batches, precision):
        t = time.perf_counter()
        with torch.inference_mode(), self._ctx(precision):
            for b in batches:
                self.embed(b)
        return time.perf_counter() - t

    def finetune(self, batches, precision):
        encoder = transformers.AutoModel.from_pretrained(self.model_dir)
        head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(encoder.config.hidden_size, 2))
        params = list(encoder.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
        encoder.train()
        head.train()
        t = time.perf_counter()
        for sentences, labels in batches:
            enc = self.tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
            with self._ctx(precision):
                logits = head(encoder(**enc).pooler_output)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--model", required=True, help="checkpoint folder (config.json, model.safetensors, vocab.txt)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-n", type=int, default=100, help="sentences per latency round")
    ap.add_argument("--finetune-n", type=int, default=128)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--skip-finetune", action="store_true")
    a = ap.parse_args()

    w = Worker(a.worker, a.model)
    ours = Torch(a.model)
    tmp = tempfile.mkdtemp(prefix="flipless-vs-pytorch-")
    w.ask(f"sentences {tmp}/s.jsonl")
    with open(f"{tmp}/s.jsonl") as f:
        sentences = [json.loads(line) for line in f]
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"flipless worker: OpenBLAS kernels {w.ready[1]}, libtorch {w.ready[2]}; PyTorch {torch.__version__} "
          f"(MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}), transformers {transformers.__version__}")
    print(f"{len(sentences)} sentences, {a.rounds} rounds interleaved\n")

    # 1. The same embeddings first.
    torch.set_num_threads(os.cpu_count())
    w.ask(f"embed {tmp}/e.safetensors")
    flip = load_file(f"{tmp}/e.safetensors")["embeddings"]
    with torch.inference_mode():
        ref = torch.cat([ours.embed(sentences[i:i + 64]) for i in range(0, len(sentences), 64)])
    diff = (flip - ref).abs().max().item()
    print(f"embeddings: max |flipless - transformers| = {diff:.2e} (limit 1e-4)")
    if diff > 1e-4:
        sys.exit("embeddings differ: not the same computation, stopping")

    lengths = [len(ours.tok(s)["input_ids"]) for s in sentences]
    order = sorted(range(len(sentences)), key=lambda i: lengths[i])
    batches64 = [[sentences[i] for i in order[s:s + 64]] for s in range(0, len(order), 64)]
    ft_rows = sorted(range(min(a.finetune_n, len(sentences))), key=lambda i: lengths[i])
    ft_batches = [([sentences[i] for i in ft_rows[s:s + 32]], torch.tensor([i % 2 for i in ft_rows[s:s + 32]]))
                  for s in range(0, len(ft_rows), 32)]

    rows = []
    for precision in a.precisions.split(","):
        lat = {"flipless": [], "pytorch": []}
        thr = {"flipless": [], "pytorch": []}
        fin = {"flipless": [], "pytorch": []}
        for r in range(a.rounds):
            sides = ["flipless", "pytorch"] if r % 2 == 0 else ["pytorch", "flipless"]
            for side in sides:
                if side == "flipless":
                    lat[side] += [float(x) for x in w.ask(f"latency 1 {precision} {a.latency_n}").split()]
                    thr[side].append(float(w.ask(f"throughput 2 {precision}")))
                    if not a.skip_finetune:
                        fin[side].append(float(w.ask(f"finetune 2 {precision} {len(ft_rows)}")))
                else:
                    torch.set_num_threads(1)
                    lat[side] += ours.latency(sentences[:a.latency_n], precision)
                    torch.set_num_threads(2)
                    thr[side].append(ours.throughput(batches64, precision))
                    if not a.skip_finetune:
                        fin[side].append(ours.finetune(ft_batches, precision))
        n = len(sentences)
        f50, f90, p50, p90 = pctl(lat["flipless"], .5), pctl(lat["flipless"], .9), pctl(lat["pytorch"], .5), pctl(lat["pytorch"], .9)
        rows.append((precision, "batch-1 latency, 1 thread, p50 (ms)", f50, p50, p50 / f50))
        rows.append((precision, "batch-1 latency, 1 thread, p90 (ms)", f90, p90, p90 / f90))
        ft_, pt_ = n / statistics.median(thr["flipless"]), n / statistics.median(thr["pytorch"])
        rows.append((precision, "batch-64 throughput, 2 threads (sentences/s)", ft_, pt_, ft_ / pt_))
        if not a.skip_finetune:
            fe, pe = len(ft_rows) / statistics.median(fin["flipless"]), len(ft_rows) / statistics.median(fin["pytorch"])
            rows.append((precision, "fine-tuning, 2 threads, batch 32 (examples/s)", fe, pe, fe / pe))
    w.close()
    load = os.getloadavg()
    print(f"\n| precision | measurement | flipless | PyTorch + transformers | flipless advantage |")
    print("|---|---|---:|---:|---:|")
    for precision, what, f, p, ratio in rows:
        print(f"| {precision} | {what} | {f:.1f} | {p:.1f} | {ratio:.2f}x |")
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("flipless advantage: PyTorch's latency / flipless's, or flipless's rate / PyTorch's (above 1: flipless ahead)")


if __name__ == "__main__":
    main()
