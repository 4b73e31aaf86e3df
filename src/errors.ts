// errors.ts — the one error type the package throws for bad input and native failures.

/** An error from a float8 op. `op` names the operation; the message names shapes and dtypes. */
export class Float8Error extends Error {
  readonly op: string;
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = "Float8Error";
    this.op = op;
  }
}
