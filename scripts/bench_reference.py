#!/usr/bin/env python3
"""Reference speeds for `fenliu bench models`: the same models, files, texts and thread counts
run by the reference implementations, so the ratio between them is measured, not guessed.

- MiniLM on sentence-transformers (PyTorch CPU): sentences/s at each batch size over the texts in
  agents/models/src/bench/sentences.txt (the ones `fenliu bench models` embeds).
- Gemma 3 270M on llama.cpp (llama-cpp-python): prompt and greedy-decode tokens/s on the original
  GGUF in models/, with the same prompt length and number of decoding steps.

A maintainer's tool, not part of the product or CI. Install the references from PyPI into a
virtualenv first (large: PyTorch with its CUDA libraries is several GB; llama-cpp-python compiles
llama.cpp from source, ~10 minutes on 2 cores):

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install sentence-transformers llama-cpp-python
    /tmp/ref/bin/python scripts/bench_reference.py --threads 1,2 --runs 5

Prints one JSON object per figure (model, metric, threads, batch, unit, median, best, worst), the
shape `fenliu bench models --json` uses for its measurements.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ROOT / "agents/models/src/bench/sentences.txt"
FILLER = (
    "The customer asked where the parcel is and whether it can be delivered to the office instead. "
)


def figure(model, metric, threads, unit, values, batch=None):
    best, worst = (min(values), max(values)) if unit == "s" else (max(values), min(values))
    row = {
        "model": model,
        "metric": metric,
        "threads": threads,
        "unit": unit,
        "median": round(statistics.median(values), 2),
        "best": round(best, 2),
        "worst": round(worst, 2),
        "runs": len(values),
    }
    if batch is not None:
        row["batch"] = batch
    print(json.dumps(row), flush=True)


def bench_minilm(models: Path, threads: int, runs: int, batches):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    texts = SENTENCES.read_text(encoding="utf-8").splitlines()
    name = "sentence-transformers:all-MiniLM-L6-v2"
    loads = []
    for _ in range(runs):
        started = time.perf_counter()
        model = SentenceTransformer(str(models / "all-minilm-l6-v2"), device="cpu")
        loads.append(time.perf_counter() - started)
    figure(name, "load", threads, "s", loads)
    for batch in batches:
        model.encode(texts[:batch], batch_size=batch)  # warm-up, as the Rust bench does
        rates = []
        for _ in range(runs):
            started = time.perf_counter()
            vectors = model.encode(texts, batch_size=batch, normalize_embeddings=True)
            rates.append(len(vectors) / (time.perf_counter() - started))
        figure(name, "embed", threads, "sentences/s", rates, batch)


def bench_gemma(models: Path, threads: int, runs: int, prompt_tokens: int, decode_tokens: int):
    from llama_cpp import Llama

    path = models / "gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
    name = "llama.cpp:gemma-3-270m-q4_k_m"
    loads = []
    llm = None
    for _ in range(runs):
        llm = None
        started = time.perf_counter()
        llm = Llama(model_path=str(path), n_ctx=1024, n_threads=threads, n_batch=512,
                    verbose=False)
        loads.append(time.perf_counter() - started)
    figure(name, "load", threads, "s", loads)

    ids = [llm.token_bos()]
    while len(ids) < prompt_tokens:
        ids.extend(llm.tokenize(FILLER.encode(), add_bos=False))
    ids = ids[:prompt_tokens]
    prompt_rates, decode_rates = [], []
    for _ in range(runs):
        llm.reset()
        started = time.perf_counter()
        llm.eval(ids)
        prompt_rates.append(len(ids) / (time.perf_counter() - started))
        started = time.perf_counter()
        for _ in range(decode_tokens):
            token = llm.sample(temp=0.0)
            llm.eval([token])
        decode_rates.append(decode_tokens / (time.perf_counter() - started))
    figure(name, "prompt", threads, "tokens/s", prompt_rates)
    figure(name, "decode", threads, "tokens/s", decode_rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--only", choices=["gemma", "minilm"])
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    for t in threads:
        if args.only != "minilm":
            bench_gemma(args.models_dir, t, args.runs, args.prompt_tokens, args.decode_tokens)
        if args.only != "gemma":
            bench_minilm(args.models_dir, t, args.runs, batches)


if __name__ == "__main__":
    main()
