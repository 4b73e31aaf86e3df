// save_worker.ts — a process that saves checkpoints, for test/checkpoint_atomic.test.ts.
//   bun save_worker.ts <path> loop <first-gen>   saves generations first, first+1, ... forever,
//                                                 printing "saved <gen>" after each
//   bun save_worker.ts <path> once <gen>         saves generation <gen> once, then prints "saved <gen>"
//   bun save_worker.ts <path> verify             loads the pair and prints "pair <gen>" or "error <message>"
//   bun save_worker.ts <path> save-verify <gen> <n>  n times: saves a generation, then loads whatever
//                                                 pair is there now (other processes save too) and prints
//                                                 "saved <gen>" and "pair <gen>" or "error <message>"
// Generation g has every parameter and every momentum buffer filled with g and a
// step count of g, so a loaded model and optimizer from different saves disagree.
import { io, nn, optim, tensor, tidy, zeros } from "../../src/index.ts";

const [path, mode, genArg, countArg] = process.argv.slice(2);

function make(): { model: nn.Sequential; opt: optim.SGD } {
  const model = new nn.Sequential(new nn.Linear(512, 1024), new nn.Linear(1024, 512));
  // a 8 MiB buffer (no optimizer state): the model file is 3x the optimizer file, so a
  // file-size limit can let the optimizer file through and stop the model file
  model.registerBuffer("big", zeros([2 * 1024 * 1024]));
  const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  tidy(() => {
    model.forward(zeros([1, 512])).sum().backward(); // one step creates the momentum buffers
    opt.step();
    opt.zeroGrad();
  });
  return { model, opt };
}

function setGeneration(model: nn.Module, opt: optim.SGD, g: number): void {
  for (const t of [...model.parameters(), ...Object.values(opt.stateDict())]) {
    tidy(() => t.copyFrom(tensor(new Float32Array(t.numel).fill(g), { shape: t.shape })));
  }
  opt.stepCount = g;
}

function verify(model: nn.Module, opt: optim.SGD): string {
  try {
    io.load(model, path, { optimizer: opt });
    const values = new Set<number>();
    for (const t of [...model.parameters(), ...Object.values(opt.stateDict())]) for (const v of t.toArray()) values.add(v);
    values.add(opt.stepCount);
    return values.size === 1 ? `pair ${opt.stepCount}` : `error mixed generations ${[...values].join(",")}`;
  } catch (e) {
    return `error ${(e as Error).message}`;
  }
}

const { model, opt } = make();
if (mode === "verify") {
  console.log(verify(model, opt));
} else if (mode === "save-verify") {
  const other = make();
  for (let i = 0; i < Number(countArg); i++) {
    const g = Number(genArg) + i;
    setGeneration(model, opt, g);
    io.save(model, path, { optimizer: opt });
    console.log(`saved ${g}`);
    console.log(verify(other.model, other.opt));
  }
} else {
  let g = Number(genArg);
  do {
    setGeneration(model, opt, g);
    io.save(model, path, { optimizer: opt });
    console.log(`saved ${g}`);
    g++;
  } while (mode === "loop");
}
