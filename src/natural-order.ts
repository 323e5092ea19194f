/**
 * Natural name order: runs of digits compare by their value, so `checkpoint-500` comes before
 * `checkpoint-1000` and `run-2` before `run-10`, as a person reading the names expects. Text
 * compares by code unit (no locale), and names equal in that order (`run-01`, `run-1`) fall back to
 * plain code-unit order, so the order is total and the same on every machine.
 */
export function compareNatural(a: string, b: string): number {
  const left = splitRuns(a);
  const right = splitRuns(b);
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const [x, y] = [left[i]!, right[i]!];
    const order = isDigits(x) && isDigits(y) ? compareDigits(x, y) : compareCodeUnits(x, y);
    if (order !== 0) return order;
  }
  return left.length - right.length || compareCodeUnits(a, b);
}

function splitRuns(text: string): string[] {
  return text.match(/\d+|\D+/g) ?? [];
}

function isDigits(run: string): boolean {
  const code = run.charCodeAt(0);
  return code >= 48 && code <= 57;
}

/** Digit runs of any length, by value: no Number overflow for 30-digit names. */
function compareDigits(x: string, y: string): number {
  const a = x.replace(/^0+(?=\d)/, '');
  const b = y.replace(/^0+(?=\d)/, '');
  return a.length - b.length || compareCodeUnits(a, b);
}

function compareCodeUnits(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
