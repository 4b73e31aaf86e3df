"""torch_serve.py -- torch's side of `bun bench/vs_torch.ts` (side by side in one run).

Builds torch 2.x CPU counterparts of the steps that bench/vs_torch.ts times in
this library, then runs one step per request so that the caller can alternate
torch's steps with its own (both then see the same machine load):

  linear M K N   bf16 nn.Linear(K, N, bias=True): forward of x (M, K), backward of
                 a fixed grad_output (M, N), grads set to None first (as ours: the
                 step inside tidy, grads freed)
  mlp B          the demo's MLP (examples/demo.ts: 784-512-ReLU-512-ReLU-10, bf16
                 weights), batch B: logits.float(), cross entropy, backward,
                 AdamW(lr 1e-3, weight_decay 0).step(), loss.item()

Protocol: argv lists the cases ("linear:M,K,N" or "mlp:B") after --threads T;
once every case is built and warmed up it prints one JSON line (torch version,
threads, case names); then for each "run I" line on stdin it runs case I once
and prints the milliseconds; "quit" or EOF ends it.

    PYTHONPATH=.deps/torch python3 bench/torch_serve.py --threads 2 linear:1024,2048,1024 mlp:128

Install torch as bench/torch_reference.py says:
    pip install --no-deps --target .deps/torch <torch cpu wheel>
"""
import json
import sys
import time

import torch


def linear_case(M, K, N):
    torch.manual_seed(0)
    lin = torch.nn.Linear(K, N, bias=True, dtype=torch.bfloat16)
    x = torch.randn(M, K, dtype=torch.bfloat16, requires_grad=True)
    go = torch.randn(M, N, dtype=torch.bfloat16) * 1e-3

    def step():
        lin.zero_grad(set_to_none=True)
        x.grad = None
        lin(x).backward(go)

    return step


def mlp_case(B):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    ).to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    # the demo builds each batch from host f32 pixels; so does this step
    images = torch.randn(B, 784)
    labels = torch.randint(0, 10, (B,))

    def step():
        opt.zero_grad(set_to_none=True)
        x = images.to(torch.bfloat16)
        loss = torch.nn.functional.cross_entropy(model(x).float(), labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def main():
    args = sys.argv[1:]
    threads = None
    if len(args) >= 2 and args[0] == "--threads":
        threads = int(args[1])
        args = args[2:]
    if threads:
        torch.set_num_threads(threads)
    cases = []
    for a in args:
        kind, _, spec = a.partition(":")
        nums = [int(v) for v in spec.split(",")] if spec else []
        if kind == "linear" and len(nums) == 3:
            cases.append(linear_case(*nums))
        elif kind == "mlp" and len(nums) == 1:
            cases.append(mlp_case(*nums))
        else:
            print(f"torch_serve: bad case {a!r} (linear:M,K,N or mlp:B)", file=sys.stderr)
            sys.exit(2)
    for step in cases:  # warm-up: allocator, oneDNN primitives
        step()
        step()
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "cases": args}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            break
        parts = line.split()
        if len(parts) != 2 or parts[0] != "run" or not parts[1].isdigit() or int(parts[1]) >= len(cases):
            print("error: expected 'run I' or 'quit'", flush=True)
            continue
        t0 = time.perf_counter()
        cases[int(parts[1])]()
        print(f"{(time.perf_counter() - t0) * 1e3:.4f}", flush=True)


if __name__ == "__main__":
    main()
