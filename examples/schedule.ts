// schedule.ts — the step-decay learning-rate schedule shared by the examples
// (set each step with `opt.lr = base * lrFactor(step, steps)`).

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
