/** Scores shown with four decimals: enough to tell 1 sample in 10,000 apart. */
export function formatScore(score: number): string {
  return Number.isFinite(score) ? score.toFixed(4) : String(score);
}
