// schedule.ts — the step-decay learning-rate schedule shared by the examples.
import { optim } from "../src/index.ts";

/**
 * Step decay: the base lr for the first half, then x0.3, x0.1 and x0.03 from
 * 50 %, 75 % and 90 % of the steps. Ending on a small lr settles each run
 * near a minimum, so that runs compare by their recipe more than by where
 * the last few noisy steps left them.
 */
export function lrFactor(step: number, steps: number): number {
  const f = step / steps;
  return f < 0.5 ? 1 : f < 0.75 ? 0.3 : f < 0.9 ? 0.1 : 0.03;
}

/**
 * AdamW at a new lr with `opt`'s moments and step count (optim has no lr
 * setter yet, so a schedule swaps optimizers; the state moves, nothing is copied).
 */
export function withLr(opt: optim.AdamW, lr: number): optim.AdamW {
  const next = new optim.AdamW(opt.params, { lr, betas: opt.betas, eps: opt.eps, weightDecay: opt.weightDecay });
  const from = opt.stateDict(), to = next.stateDict();
  for (const [k, t] of Object.entries(from)) {
    to[k].assign(t);
    t.dispose();
  }
  next.stepCount = opt.stepCount;
  return next;
}
